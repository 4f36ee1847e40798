"""ImageNet (or any data set in its layout) from class folders, with torchvision's reference presets.

``data_path/train/<class>/<image>`` and ``data_path/val/<class>/<image>``: the validation split
is held out of ``train/`` (10 images per class by default), the test split is ``val/``.
Images are decoded and augmented in loader processes; the random choices of each image are
seeded by (seed, epoch, position in the epoch), so they do not depend on the number of workers
and a resumed epoch repeats them exactly.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from repro.data.registry import DatasetInfo, DataSplits, LoadOptions, register_dataset
from repro.data.splits import (check_start_step, choose_splits, eval_shard, generator, num_train_batches,
                               train_order)
from repro.errors import ReproError

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
CROP = 224  # pixels
VAL_PER_CLASS = 10


def scan(folder: Path) -> tuple[list[tuple[str, int]], list[str]]:
    """(path, class index) of every image in ``folder``'s class folders, and the class names."""
    from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes, make_dataset

    expected = f"expected class folders of images ({folder}/<class>/<image>.JPEG)"
    if not folder.is_dir():
        raise ReproError(f"{expected}, but {folder} is not a folder")
    try:
        classes, class_to_idx = find_classes(folder)
        return make_dataset(folder, class_to_idx, extensions=IMG_EXTENSIONS), classes
    except FileNotFoundError as error:  # no class folder, or a class folder without images
        raise ReproError(f"{expected}; {' '.join(str(error).split())}") from None


def transforms(options: LoadOptions, train: bool):
    """torchvision's reference presets (references/classification/presets.py)."""
    from torchvision import transforms as T

    mode = T.InterpolationMode(options.interpolation)
    if not train:
        steps = [T.Resize(options.val_resize, interpolation=mode), T.CenterCrop(CROP)]
    else:
        steps = [T.RandomResizedCrop(CROP, interpolation=mode), T.RandomHorizontalFlip()]
        policies = {"ta_wide": T.TrivialAugmentWide, "ra": T.RandAugment}
        if options.auto_augment:
            if options.auto_augment not in policies:
                raise ReproError(f"unknown auto_augment {options.auto_augment!r}; choose from: "
                                 f"{', '.join(policies)}")
            steps.append(policies[options.auto_augment](interpolation=mode))
    steps += [T.PILToTensor(), T.ConvertImageDtype(torch.float32), T.Normalize(MEAN, STD)]
    if train and options.random_erase > 0:
        steps.append(T.RandomErasing(p=options.random_erase))
    return T.Compose(steps)


class ImageFiles(Dataset):
    """Items are (sample index, seed): the transform's random draws come from that seed."""

    def __init__(self, samples: list[tuple[str, int]], transform, random: bool):
        self.samples, self.transform, self.random = samples, transform, random

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, item: tuple[int, int]) -> tuple[Tensor, int]:
        from torchvision.datasets.folder import default_loader

        index, seed = item
        path, label = self.samples[index]
        image = default_loader(path)
        if not self.random:
            return self.transform(image), label
        # torchvision transforms draw from the global RNG: seed it, and restore it after
        # (with workers=0 this runs in the training process).
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return self.transform(image), label


class EpochItems(Sampler):
    """The (index, seed) items of the current epoch; set before each epoch. The loader
    keeps this sampler, so its persistent workers survive from one epoch to the next."""

    def __init__(self):
        self.items: list[tuple[int, int]] = []

    def __iter__(self):
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


class LoaderBatches:
    """Batches from a DataLoader; training shuffles per epoch and shards by rank."""

    def __init__(self, files: ImageFiles, options: LoadOptions, train: bool):
        self.train, self.options = train, options
        self.batch_size = options.batch_size if train else options.eval_batch_size
        n = len(files)
        if train:
            self.steps = num_train_batches(n, self.batch_size, options.world_size, options.where)
            self.shard = None
        else:
            self.shard = eval_shard(n, options.rank, options.world_size)
            self.steps = -(-len(self.shard) // self.batch_size)
        self.sampler = EpochItems()
        workers = options.workers
        # Its own generator: the loader draws the workers' base seed from it, not from the
        # global RNG (the items' seeds make the workers' own seeds irrelevant).
        self.loader = DataLoader(files, batch_size=self.batch_size, sampler=self.sampler, num_workers=workers,
                                 pin_memory=options.device.type == "cuda", persistent_workers=workers > 0,
                                 generator=torch.Generator().manual_seed(0))
        self.size = n
        self.memory_format = torch.channels_last if options.channels_last else torch.contiguous_format

    def __len__(self) -> int:
        return self.steps

    def epoch(self, epoch: int = 0, start_step: int = 0) -> Iterator[tuple[Tensor, Tensor]]:
        """One epoch; one at a time (the loader's workers serve a single iterator)."""
        check_start_step(start_step, self.steps)
        o = self.options
        if self.train:
            order = train_order(self.size, self.batch_size, o.seed, epoch, o.rank, o.world_size)
            seeds = torch.randint(0, 2 ** 62, (len(order),), generator=generator(o.seed, epoch, o.rank, "augment"))
        else:
            order, seeds = self.shard, torch.zeros(len(self.shard), dtype=torch.int64)
        skip = start_step * self.batch_size
        self.sampler.items = list(zip(order[skip:].tolist(), seeds[skip:].tolist()))
        for images, labels in self.loader:
            images = images.to(o.device, non_blocking=True).contiguous(memory_format=self.memory_format)
            yield images, labels.to(o.device, non_blocking=True)


@register_dataset("imagenet", "ImageNet-1k (ILSVRC 2012) from data_path/{train,val}/<class>/ folders",
                  train_images=1_271_167)
def imagenet(options: LoadOptions) -> DataSplits:
    if not options.data_path:
        raise ReproError("imagenet needs --data-path: a folder with train/ and val/ class folders")
    root = Path(options.data_path).expanduser()
    train_samples, classes = scan(root / "train")
    test_samples, test_classes = scan(root / "val")
    if test_classes != classes:
        raise ReproError(f"{root / 'val'} has {len(test_classes)} class folders and {root / 'train'} has "
                         f"{len(classes)}; expected the same class folder names in both")
    labels = torch.tensor([label for _, label in train_samples], dtype=torch.int64)
    train, val, test = choose_splits(labels, len(test_samples), options, VAL_PER_CLASS * len(classes))
    augment_tf, eval_tf = transforms(options, train=options.augment), transforms(options, train=False)

    def files(samples, index, transform, random):
        return ImageFiles([samples[i] for i in index.tolist()], transform, random)

    info = DatasetInfo(options.name, len(classes), 3, CROP, MEAN, STD, len(train), len(val), len(test))
    return DataSplits(
        info,
        train=LoaderBatches(files(train_samples, train, augment_tf, options.augment), options, train=True),
        val=LoaderBatches(files(train_samples, val, eval_tf, False), options, train=False),
        test=LoaderBatches(files(test_samples, test, eval_tf, False), options, train=False))
