"""The data-set registry and ``load_data``, the one entry point of the training engine.

A data set is registered as a function ``(LoadOptions) -> DataSplits``. Each split is a
``Batches``: an object that yields one epoch of device-resident, normalised batches,
deterministically, so that a run interrupted mid-epoch resumes on exactly the same data.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator, Protocol

import torch
from torch import Tensor

from repro.errors import ReproError
from repro.registry import Registry


@dataclass(frozen=True)
class DatasetInfo:
    """What a model needs to know about a data set, and the split sizes as loaded."""

    name: str
    num_classes: int
    in_channels: int
    image_size: int  # pixels (square) of the images the model sees
    mean: tuple[float, ...]  # per channel, of pixel values scaled to [0, 1]
    std: tuple[float, ...]
    train_size: int  # images in each split, over all ranks
    val_size: int
    test_size: int
    sources: tuple[tuple[str, str], ...] = ()  # (file, sha256) the images were read from, where known


class Batches(Protocol):
    """One split, iterated once per epoch."""

    def __len__(self) -> int:
        """Batches per epoch on this rank."""

    def epoch(self, epoch: int, start_step: int = 0) -> Iterator[tuple[Tensor, Tensor]]:
        """Yields (images, labels): float32 normalised NCHW and int64, on the device.

        The same (seed, epoch) gives the same batches; ``start_step=k`` yields exactly the
        batches k, k+1, ... of the uninterrupted epoch.
        """


@dataclass
class DataSplits:
    info: DatasetInfo
    train: Batches  # shuffled, augmented (unless augment=False), incomplete last batch dropped
    val: Batches  # held-out training images for model selection; fixed order, not augmented
    test: Batches  # the official test set (what tables report); fixed order, not augmented


@dataclass(frozen=True)
class LoadOptions:
    """The arguments of ``load_data``, checked; passed to the registered loader."""

    name: str
    batch_size: int  # per rank
    eval_batch_size: int  # per rank
    device: torch.device
    seed: int
    data_path: str | None
    train_subset: int | None
    test_subset: int | None
    val_size: int | None  # None: the data set's default
    augment: bool
    workers: int  # loader processes (folder data sets only)
    rank: int
    world_size: int
    channels_last: bool
    # imagenet only (torchvision reference presets)
    auto_augment: str | None = None
    random_erase: float = 0.0  # probability
    interpolation: str = "bilinear"
    val_resize: int = 256  # pixels, before the 224-px centre crop
    # fake only
    fake_shape: tuple[int, int, int] | None = None  # (C, H, W)
    fake_sizes: tuple[int, int, int] | None = None  # images in (train, val, test)
    fake_num_classes: int | None = None

    @property
    def where(self) -> str:
        return f"data set {self.name}"


@dataclass(frozen=True)
class DatasetEntry:
    name: str
    load: Callable[[LoadOptions], DataSplits]
    description: str
    train_images: int  # one epoch's training images with the default validation hold-out


DATASETS: Registry[DatasetEntry] = Registry("data set")


def register_dataset(name: str, description: str, *, train_images: int):
    """Decorator registering ``fn(options: LoadOptions) -> DataSplits`` under ``name``."""
    return DATASETS.register(name, lambda fn: DatasetEntry(name, fn, description, train_images))


def load_data(name: str, *, batch_size: int, eval_batch_size: int | None = None, device="cpu",
              seed: int = 0, data_path: str | None = None, train_subset: int | None = None,
              test_subset: int | None = None, val_size: int | None = None, augment: bool = True,
              workers: int = 4, rank: int = 0, world_size: int = 1, channels_last: bool = False,
              auto_augment: str | None = None, random_erase: float = 0.0,
              interpolation: str = "bilinear", val_resize: int = 256,
              fake_shape: tuple[int, int, int] | None = None,
              fake_sizes: tuple[int, int, int] | None = None,
              fake_num_classes: int | None = None) -> DataSplits:
    """The train, val and test splits of a registered data set, as ``Batches`` on ``device``.

    batch_size, eval_batch_size: images per batch on each rank (eval default: batch_size).
    val_size: training images held out for validation, the same for every seed (default:
      5000 for fashion_mnist/cifar*, 10 per class for imagenet, 64 for fake).
    train_subset / test_subset: keep only the first N training / test images (smoke runs).
    workers: loader processes for folder data sets; in-memory data sets need none.
    auto_augment ("ta_wide" | "ra"), random_erase, interpolation, val_resize: imagenet only.
    fake_*: shape (C, H, W), split sizes and class count of the ``fake`` data set.
    """
    entry = DATASETS.get(name)
    options = LoadOptions(
        name=name, batch_size=batch_size, eval_batch_size=batch_size if eval_batch_size is None else eval_batch_size,
        device=torch.device(device), seed=seed, data_path=data_path, train_subset=train_subset,
        test_subset=test_subset, val_size=val_size, augment=augment, workers=workers, rank=rank,
        world_size=world_size, channels_last=channels_last, auto_augment=auto_augment,
        random_erase=random_erase, interpolation=interpolation, val_resize=val_resize,
        fake_shape=fake_shape, fake_sizes=fake_sizes, fake_num_classes=fake_num_classes)
    check_options(options)
    return entry.load(options)


def check_options(o: LoadOptions) -> None:
    """One-line errors for arguments that no data set accepts."""
    positive = {"batch_size": o.batch_size, "eval_batch_size": o.eval_batch_size,
                "world_size": o.world_size, "train_subset": o.train_subset,
                "test_subset": o.test_subset, "val_size": o.val_size}
    for label, value in positive.items():
        if value is not None and value < 1:
            raise ReproError(f"{label} must be at least 1, got {value} ({o.where})")
    if not 0 <= o.rank < o.world_size:
        raise ReproError(f"rank must be in 0..{o.world_size - 1} for world_size {o.world_size}, got {o.rank}")
    if o.workers < 0:
        raise ReproError(f"workers must be >= 0, got {o.workers}")
    if o.name != "fake":
        given = [k for k in ("fake_shape", "fake_sizes", "fake_num_classes") if getattr(o, k) is not None]
        if given:
            raise ReproError(f"{', '.join(given)} apply to the fake data set only, not {o.name}")
    if o.name != "imagenet" and (o.auto_augment or o.random_erase):
        raise ReproError(f"auto_augment and random_erase apply to imagenet only, not {o.name}")
