"""CIFAR-10 and CIFAR-100 through torchvision (downloaded once into a cache folder)."""
from __future__ import annotations

from pathlib import Path

import torch

from repro.data.memory import ImageSet, memory_splits
from repro.data.registry import DataSplits, LoadOptions, register_dataset
from repro.errors import ReproError

# Per-channel mean and standard deviation of the training pixels in [0, 1].
STATS = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}


def read_cifar(name: str, data_path: str | None = None) -> ImageSet:
    """The whole of CIFAR-10 or CIFAR-100 from ``data_path`` (the folder holding
    ``cifar-10-batches-py`` / ``cifar-100-python``, or that folder itself), downloaded there
    (default ``~/.cache/adn-repro/<name>``) if missing."""
    from torchvision import datasets

    cls = datasets.CIFAR10 if name == "cifar10" else datasets.CIFAR100
    root = Path(data_path or f"~/.cache/adn-repro/{name}").expanduser()
    if root.name == cls.base_folder:
        root = root.parent
    try:
        train, test = (cls(str(root), train=t, download=True) for t in (True, False))
    except Exception as error:  # offline, bad checksum, unreadable pickle: all "not available"
        raise ReproError(f"{name} is not in {root / cls.base_folder} and could not be downloaded there "
                         f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}); "
                         f"pass --data-path to a folder holding {cls.base_folder}") from None
    mean, std = STATS[name]

    def images(part):  # (N, 32, 32, 3) HWC numpy -> (N, 3, 32, 32) tensor
        return torch.from_numpy(part.data).permute(0, 3, 1, 2).contiguous()

    return ImageSet(images(train), torch.tensor(train.targets, dtype=torch.int64), images(test),
                    torch.tensor(test.targets, dtype=torch.int64), len(train.classes), mean, std)


@register_dataset("cifar10", "CIFAR-10: 32x32 colour images, 10 classes, 50k train / 10k test",
                  train_images=45_000)
def cifar10(options: LoadOptions) -> DataSplits:
    return memory_splits(read_cifar("cifar10", options.data_path), options, default_val_size=5000)


@register_dataset("cifar100", "CIFAR-100: 32x32 colour images, 100 classes, 50k train / 10k test",
                  train_images=45_000)
def cifar100(options: LoadOptions) -> DataSplits:
    return memory_splits(read_cifar("cifar100", options.data_path), options, default_val_size=5000)
