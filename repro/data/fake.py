"""Random images of any shape, for smoke tests and timing (the role of torchvision's FakeData).

Generated directly as uint8 tensors from a fixed seed (FakeData would build one PIL image
per sample, seconds for a few hundred 224-px images), so they take the same in-memory path
as Fashion-MNIST. Labels are random too: nothing can be learned beyond memorisation.
"""
from __future__ import annotations

import torch

from repro.data.memory import ImageSet, memory_splits
from repro.data.registry import DataSplits, LoadOptions, register_dataset
from repro.data.splits import generator
from repro.errors import ReproError

SHAPE = (3, 224, 224)  # (C, H, W)
SIZES = (256, 64, 64)  # images in (train, val, test)
NUM_CLASSES = 1000
UNIFORM_STD = 12 ** -0.5  # of pixels uniform on [0, 1]


def make_fake(shape: tuple[int, int, int] = SHAPE, num_train: int = SIZES[0] + SIZES[1],
              num_test: int = SIZES[2], num_classes: int = NUM_CLASSES) -> ImageSet:
    """Uniformly random uint8 images and labels, the same on every call."""
    gen = generator("fake", *shape, num_train, num_test, num_classes)

    def images(n):
        return torch.randint(0, 256, (n, *shape), generator=gen, dtype=torch.uint8)

    def labels(n):
        return torch.randint(0, num_classes, (n,), generator=gen)

    c = shape[0]
    return ImageSet(images(num_train), labels(num_train), images(num_test), labels(num_test), num_classes,
                    (0.5,) * c, (UNIFORM_STD,) * c)


@register_dataset("fake", "random images of any shape (default 3x224x224, 1000 classes) for smoke tests",
                  train_images=192)
def fake(options: LoadOptions) -> DataSplits:
    shape = tuple(options.fake_shape or SHAPE)
    sizes = tuple(options.fake_sizes or SIZES)
    num_classes = options.fake_num_classes or NUM_CLASSES
    if len(shape) != 3 or min(shape) < 1 or shape[1] != shape[2]:
        raise ReproError(f"fake_shape must be (channels, size, size) with positive sizes, got {shape}")
    if len(sizes) != 3 or min(sizes) < 1 or num_classes < 1:
        raise ReproError(f"fake_sizes must be 3 positive (train, val, test) image counts and fake_num_classes "
                         f"positive, got {sizes} and {num_classes}")
    train, val, test = sizes
    data = make_fake(shape, train + val, test, num_classes)
    return memory_splits(data, options, default_val_size=val)
