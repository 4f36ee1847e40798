"""Which images go where: the fixed validation hold-out, subsets, per-epoch order, rank shards.

Every choice is a pure function of its arguments (a local ``torch.Generator``, never the
global RNG), so all runs, seeds and ranks agree on it and a resumed run repeats it exactly.
"""
from __future__ import annotations

import hashlib

import torch
from torch import Tensor

from repro.errors import ReproError

SPLIT_SEED = 0  # the validation hold-out is the same for every run of every seed


def derived_seed(*parts: int | str) -> int:
    """A 63-bit seed determined by ``parts`` (stable across processes, unlike ``hash``)."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def generator(*parts: int | str) -> torch.Generator:
    return torch.Generator().manual_seed(derived_seed(*parts))


def interleaved_order(labels: Tensor) -> Tensor:
    """All indices in a fixed random order that cycles through the classes.

    The k-th image of every class (in a fixed permutation) comes before the (k+1)-th of any,
    so every prefix is class-balanced: 10 per class for ImageNet's 10,000-image hold-out, a
    balanced 2,000-image subset for smoke runs.
    """
    n = len(labels)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(SPLIT_SEED))
    shuffled = labels[perm]
    by_class = torch.sort(shuffled, stable=True).indices
    counts = torch.bincount(shuffled)
    starts = torch.cumsum(counts, 0) - counts
    rank_in_class = torch.empty_like(perm)
    rank_in_class[by_class] = torch.arange(n) - starts[shuffled[by_class]]
    return perm[torch.argsort(rank_in_class * n + torch.arange(n))]


def choose_splits(train_labels: Tensor, num_test: int, options, default_val_size: int
                  ) -> tuple[Tensor, Tensor, Tensor]:
    """Sorted indices of the (train, val) images into the training set, and of the test
    images into the test set, after the hold-out and the subsets of ``options``."""
    n = len(train_labels)
    val_size = options.val_size or default_val_size
    if val_size >= n:
        raise ReproError(f"val_size {val_size} leaves no training images: {options.where} has "
                         f"{n} training images")
    order = interleaved_order(train_labels)
    val, rest = order[:val_size], order[val_size:]
    if options.train_subset is not None:
        if options.train_subset > len(rest):
            raise ReproError(f"train_subset {options.train_subset} is larger than the {len(rest)} training "
                             f"images left after holding out {val_size} for validation ({options.where})")
        rest = rest[: options.train_subset]
    test = torch.arange(num_test)
    if options.test_subset is not None:
        if options.test_subset > num_test:
            raise ReproError(f"test_subset {options.test_subset} is larger than the {num_test} test images "
                             f"of {options.where}")
        test = test[: options.test_subset]
    return rest.sort().values, val.sort().values, test


def train_order(n: int, batch_size: int, seed: int, epoch: int, rank: int, world_size: int) -> Tensor:
    """This rank's indices (into n training images) for one epoch, a whole number of batches.

    All ranks draw the same permutation and take disjoint, equal-length strides of it; the
    remainder is dropped so every rank runs the same number of steps.
    """
    perm = torch.randperm(n, generator=generator(seed, epoch, "order"))
    per_rank = n // world_size
    mine = perm[rank::world_size][:per_rank]
    return mine[: per_rank // batch_size * batch_size]


def num_train_batches(n: int, batch_size: int, world_size: int, where: str) -> int:
    steps = n // world_size // batch_size
    if steps < 1:
        raise ReproError(f"batch_size {batch_size} is larger than the {n // world_size} training images "
                         f"each of {world_size} process(es) gets per epoch ({where})")
    return steps


def eval_shard(n: int, rank: int, world_size: int) -> Tensor:
    """This rank's evaluation indices: disjoint strides covering all n images, none dropped."""
    return torch.arange(rank, n, world_size)


def check_start_step(start_step: int, steps: int) -> None:
    if not 0 <= start_step <= steps:
        raise ReproError(f"start_step {start_step} is outside the epoch's {steps} steps")
