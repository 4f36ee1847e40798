"""Where the stages of a network are, declared as data, and the blocks they list.

Each architecture file builds an unmodified torchvision model and declares its stages
(``Layout``): which ``nn.Sequential`` holds each stage's blocks and how many of them are
mandatory (paper Sec. 3; the official split rule is ``default_mandatory``). ``stage_blocks``
lists the blocks for code that looks inside a network (``model.blocks()``: the probes of
``repro.measure.probes``, stochastic depth's per-block drop).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

from torch import nn


@dataclass(frozen=True)
class Stage:
    """One residual stage, declared as data.

    container: dotted path of the ``nn.Sequential`` holding the stage's blocks.
    blocks: the blocks' child names in that container, in order (consecutive).
    mandatory: the official number of mandatory blocks (the first ones).
    attached: modules outside the blocks whose norms follow this stage's flag
        (MobileNetV2's stem and head layers, Swin's patch merging).
    """

    container: str
    blocks: tuple[str, ...]
    mandatory: int
    attached: tuple[str, ...] = ()


@dataclass(frozen=True)
class Layout:
    """Where the stages of a network are, and which norms never become skip-aware."""

    stages: tuple[Stage, ...]
    # Norms whose module path contains one of these names stay shared (the official
    # ResNet keeps one BatchNorm in each projection shortcut, ``downsample.1``).
    shared_norms: tuple[str, ...] = ()
    # Module (relative to a block) whose output is the residual branch F(h);
    # None: F(h) = block(h) - h. Used by the residual-norm probe (paper Figure 3).
    residual_branch: str | None = None
    # Dimension of channels in stage outputs (1 for NCHW convnets, -1 for token/NHWC layouts).
    channel_dim: int = 1

    @property
    def num_stages(self) -> int:
        return len(self.stages)

    def default_split(self) -> tuple[int, ...]:
        return tuple(s.mandatory for s in self.stages)


def default_mandatory(num_blocks: int) -> int:
    """The official rule: the first ceil(n/2) blocks are mandatory, at least one skippable."""
    return min(math.ceil(num_blocks / 2), num_blocks - 1)


def sequential_stage(net: nn.Module, container: str, attached: Sequence[str] = ()) -> Stage:
    """A stage made of all the blocks of one ``nn.Sequential``."""
    blocks = tuple(name for name, _ in net.get_submodule(container).named_children())
    return Stage(container, blocks, default_mandatory(len(blocks)), tuple(attached))


@dataclass(frozen=True)
class BlockInfo:
    """One residual block of a stage, for code that looks inside the network (the probes
    of ``repro.measure.probes``, stochastic depth's per-block drop)."""

    stage: int
    index: int  # position within its stage
    path: str  # module path relative to the wrapped network
    mandatory: bool
    module: nn.Module = field(compare=False, repr=False)


def stage_blocks(net: nn.Module, layout: Layout, split: tuple[int, ...],
                 skipped: tuple[bool, ...] | None = None) -> list[BlockInfo]:
    """The blocks of every stage of ``net``, in forward order. A stage whose ``skipped``
    flag is set lists its mandatory blocks only (the blocks a plain network of that depth has)."""
    out = []
    for i, (stage, m) in enumerate(zip(layout.stages, split)):
        kept = stage.blocks[:m] if skipped is not None and skipped[i] else stage.blocks
        for j, name in enumerate(kept):
            path = f"{stage.container}.{name}"
            out.append(BlockInfo(i, j, path, j < m, net.get_submodule(path)))
    return out
