"""Accuracy of sub-networks on a data split.

All requested sub-networks are evaluated on each batch as it is read (the data is read
once), depth-first: with ``shared_prefixes`` every stage output is computed once per
distinct prefix of skip flags and reused by all configs sharing it. The results equal
evaluating each sub-network on its own, exactly.
"""
from __future__ import annotations

from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Callable, Iterator

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from repro.errors import ReproError
from repro.models import ARCHS, is_adaptive
from repro.skip import SkipConfig


@dataclass(frozen=True)
class SubnetResult:
    skip: SkipConfig
    acc1_pct: float
    acc5_pct: float
    loss: float  # mean cross-entropy (nats)
    images: int

    def as_row(self) -> dict:
        return {"skip": str(self.skip), "acc1_pct": self.acc1_pct, "acc5_pct": self.acc5_pct,
                "loss": self.loss, "images": self.images}


def topk_correct(logits: torch.Tensor, targets: torch.Tensor, ks=(1, 5)) -> list[int]:
    """Number of samples whose label is among the top-k logits, for each k."""
    if targets.dim() > 1:  # soft (mixup) targets: their most likely class
        targets = targets.argmax(dim=1)
    k_max = min(max(ks), logits.shape[1])
    top = logits.topk(k_max, dim=1).indices
    hits = top.eq(targets[:, None])
    return [int(hits[:, : min(k, k_max)].any(dim=1).sum()) for k in ks]


class PrefixCache:
    """Stage outputs of the sub-networks run on one batch, keyed by (stage, skip flags up
    to and including that stage): sub-networks whose leading flags agree compute the same
    output there, so the later ones reuse it (an adaptive network's ``Selection.stage_cache``)."""

    def __init__(self):
        self.outputs: dict[tuple[int, tuple[bool, ...]], torch.Tensor] = {}

    def lookup(self, stage: int, flags: tuple[bool, ...]) -> torch.Tensor | None:
        # Keep only the outputs the running sub-network can reuse: memory stays at S tensors.
        # (Stage 0 is looked up first in every forward pass, so stale outputs go at once.)
        self.outputs = {k: v for k, v in self.outputs.items() if k[1] == flags[: k[0] + 1]}
        return self.outputs.get((stage, flags[: stage + 1]))

    def store(self, stage: int, flags: tuple[bool, ...], output: torch.Tensor) -> None:
        self.outputs[(stage, flags[: stage + 1])] = output


@contextmanager
def shared_prefixes(model: nn.Module) -> Iterator[PrefixCache]:
    """Within this block, sub-networks of ``model`` (an ``AdaptiveDepthNetwork``) run on
    the *same input* reuse the output of every stage whose leading flags they share
    (depth-first evaluation). Callers must leave the block before feeding a different batch."""
    cache = PrefixCache()
    model.selection.stage_cache = cache
    try:
        yield cache
    finally:
        model.selection.stage_cache = None


def evaluate(model: nn.Module, batches, configs: list[SkipConfig] | None = None, *,
             share_prefixes: bool = True,
             before_each: Callable[[SkipConfig], None] | None = None) -> list[SubnetResult]:
    """Top-1/top-5 accuracy (%) and loss of each config over all batches of one split.

    ``before_each(config)``, if given, runs before each config's forward pass (to load its
    own BatchNorm statistics: ``evaluate_recalibrated``). With torch.distributed
    initialised, each rank evaluates its shard and the counts are summed, so every rank
    returns the totals.
    """
    configs = configs or model.configs()
    # per config: correct@1, correct@5, loss sum, count
    totals = torch.zeros(len(configs), 4, dtype=torch.float64)
    was_training = model.training
    model.eval()
    shared = share_prefixes and len(configs) > 1 and is_adaptive(model)
    with torch.inference_mode():
        for images, targets in batches.epoch(0):
            with shared_prefixes(model) if shared else nullcontext():
                for i, config in enumerate(configs):
                    if before_each is not None:
                        before_each(config)
                    logits = model(images, config).float()
                    c1, c5 = topk_correct(logits, targets)
                    loss = F.cross_entropy(logits, targets, reduction="sum").item()
                    totals[i] += torch.tensor([c1, c5, loss, len(targets)], dtype=torch.float64)
    model.train(was_training)
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(totals)
    rows = []
    for config, (c1, c5, loss, n) in zip(configs, totals.tolist()):
        n = max(n, 1)
        rows.append(SubnetResult(config, 100 * c1 / n, 100 * c5 / n, loss / n, int(n)))
    return rows


RECALIBRATED = ("acc1_pct", "acc5_pct", "loss")  # the columns that get a ``_recalibrated`` twin


def evaluate_recalibrated(model: nn.Module, splits: dict, configs: list[SkipConfig], recalibration) -> dict:
    """Results per split of each config evaluated with BatchNorm statistics re-estimated
    for it on ``recalibration`` (a list of image batches,
    ``repro.recalibrate.recalibration_images``); ``model`` is never changed.

    The results equal evaluating each config on its own ``recalibrated`` copy, while stage
    outputs are shared as in ``evaluate``: re-estimation runs in train mode (each norm
    normalises with its batch's statistics), so the statistics of the stem and of stages
    0..k depend on the skip flags of stages 0..k only, and configs that agree there compute
    the same outputs there. (Exactly the same where the re-estimation is deterministic, as
    on the CPU; tests/test_recalibrate.py checks it.)"""
    from repro.recalibrate import RecalibratedCopy

    prepared = RecalibratedCopy(model, configs, recalibration)
    return {name: evaluate(prepared.model, batches, configs, before_each=prepared.use)
            for name, batches in splits.items()}


def evaluation_table(model: nn.Module, splits: dict[str, list[SubnetResult]], input_shape: tuple[int, ...],
                     recalibrated: dict[str, list[SubnetResult]] | None = None):
    """One row per (split, sub-network): accuracy next to GFLOPs and parameters (millions);
    with ``recalibrated`` results, also ``acc1_pct_recalibrated, acc5_pct_recalibrated,
    loss_recalibrated`` (BatchNorm statistics re-estimated per sub-network)."""
    import pandas as pd

    from repro.measure.flops import subnetwork_costs

    configs = [row.skip for row in next(iter(splits.values()))]
    costs = {c.skip: c for c in subnetwork_costs(model, input_shape, configs)}
    again = {(split, row.skip): row for split, rows in (recalibrated or {}).items() for row in rows}
    rows = []
    for split, results in splits.items():
        for row in results:
            out = {"split": split, **row.as_row(), "gflops": costs[row.skip].gflops,
                   "params_m": costs[row.skip].params_m}
            if recalibrated is not None:
                other = again[split, row.skip].as_row()
                out.update({f"{key}_recalibrated": other[key] for key in RECALIBRATED})
            rows.append(out)
    return pd.DataFrame(rows)


def check_model_fits_data(model: nn.Module, info, source: str) -> None:
    """One clear error when a model cannot read a data set's images or labels."""
    config = model.config
    if config.num_classes != info.num_classes:
        raise ReproError(f"{source} has {config.num_classes} classes, but {info.name} has {info.num_classes}")
    if config.in_channels != info.in_channels:
        raise ReproError(f"{source} takes {config.in_channels}-channel images, but {info.name} has "
                         f"{info.in_channels} channels")
    ARCHS.get(config.arch).check_input(info.in_channels, info.image_size, where=f"data set {info.name}")


def evaluate_on_dataset(model: nn.Module, dataset: str, *, split: str = "test", data_path: str | None = None,
                        batch_size: int = 256, test_subset: int | None = None,
                        device: str | torch.device = "cpu", configs=None, source: str = "the model",
                        recalibrate_bn: int | None = None):
    """``skip,acc1_pct,acc5_pct,loss,gflops,params_m,images`` of every sub-network of
    ``model`` on one split of a registered data set (all configs per batch, prefixes
    shared). ``recalibrate_bn=N`` adds ``acc1_pct_recalibrated, acc5_pct_recalibrated,
    loss_recalibrated``: each sub-network again, on a copy whose BatchNorm statistics are
    re-estimated on the data set's first N (un-augmented) training images."""
    from repro.data import load_data
    from repro.recalibrate import recalibration_images

    if split not in ("val", "test"):
        raise ReproError(f"split {split!r}: choose val or test")
    if recalibrate_bn is not None and recalibrate_bn < 1:
        raise ReproError(f"--recalibrate-bn {recalibrate_bn}: need at least one image")
    data = load_data(dataset, batch_size=batch_size, device=device, data_path=data_path, augment=False,
                     test_subset=test_subset)
    check_model_fits_data(model, data.info, source)
    model = model.to(device)
    parsed = [model.parse_skip(c) for c in configs] if configs else model.configs()
    results = {split: evaluate(model, getattr(data, split), parsed)}
    again = None
    if recalibrate_bn:
        again = evaluate_recalibrated(model, {split: getattr(data, split)}, parsed,
                                      recalibration_images(data.train, recalibrate_bn))
    info = data.info
    table = evaluation_table(model, results, (info.in_channels, info.image_size, info.image_size), again)
    return table.drop(columns="split")
