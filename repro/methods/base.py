"""What a training method is: how it builds its model and what one training step does.

The training loop (repro/train.py) owns data, optimiser, schedule, AMP, EMA and
checkpoints; a method only turns one batch into backward passes. Methods live in one
registry, ``METHODS``, so baselines plug in without touching the loop.
"""
from __future__ import annotations

import dataclasses
import hashlib
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from repro.errors import ReproError
from repro.registry import Registry
from repro.skip import SkipConfig
from repro.specs import MethodOptions, RunSpec


@dataclass
class StepContext:
    """What a training step may use besides the batch."""

    model: nn.Module  # call this (it is DDP-wrapped when distributed)
    module: nn.Module  # the underlying AdaptiveDepthNetwork / FixedDepthNetwork (its attributes)
    options: MethodOptions
    criterion: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # CE on labels (smoothing, mixup)
    backward: Callable[[torch.Tensor], None]  # loss.backward(), scaled under fp16 AMP
    autocast: Callable[[], AbstractContextManager]
    seed: int
    global_step: int
    state: object = None  # what the method's ``prepare`` returned (e.g. a teacher network)

    def generator(self) -> torch.Generator:
        """Random choices of this step: seeded by (seed, step), the same on every rank and
        after a resume."""
        digest = hashlib.sha256(f"{self.seed}:{self.global_step}".encode()).digest()
        return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little"))


@dataclass
class StepResult:
    losses: dict[str, torch.Tensor]  # detached scalars by part, logged per epoch
    logits: dict[str, torch.Tensor]  # detached, by role (e.g. "teacher", "student"), for train accuracy


@dataclass(frozen=True)
class Method:
    name: str
    summary: str  # one line, for ``python cli.py methods``
    reads: frozenset[str]  # the MethodOptions fields it uses
    build_model: Callable[[RunSpec, object], nn.Module]  # (spec, DatasetInfo) -> model
    train_step: Callable[[torch.Tensor, torch.Tensor, StepContext], StepResult]
    monitor_configs: Callable[[nn.Module], list[SkipConfig]]  # validated every epoch
    check: Callable[[RunSpec], None] = lambda spec: None
    # (spec, DatasetInfo, results_dir, device) -> state passed to every step (e.g. a teacher)
    prepare: Callable | None = None
    recipe_defaults: tuple[tuple[str, object], ...] = ()  # recipe settings the method implies
    # spec -> N: the method's own evaluation re-estimates BatchNorm statistics per
    # sub-network on N training images (AlphaNet: its norms are not updated in training)
    eval_bn_images: Callable[[RunSpec], int] | None = None


METHODS: Registry[Method] = Registry("training method")


def check_options(spec: RunSpec) -> None:
    """Refuses options the method does not read (so a typo cannot silently change nothing)."""
    method = METHODS.get(spec.method)
    defaults = MethodOptions()
    for f in dataclasses.fields(MethodOptions):
        if getattr(spec.options, f.name) != getattr(defaults, f.name) and f.name not in method.reads:
            raise ReproError(f"option {f.name.replace('_', '-')} does not apply to method {spec.method}")
    method.check(spec)


def super_and_base(model: nn.Module) -> list[SkipConfig]:
    return [SkipConfig.super_net(model.num_stages), SkipConfig.base_net(model.num_stages)]
