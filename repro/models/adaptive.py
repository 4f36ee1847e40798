"""The paper's change to a residual network, applied to an unmodified torchvision model.

Kang & Lee, *Adaptive Depth Networks with Skippable Sub-Paths* (NeurIPS 2024), Sec. 3:
every residual stage is split into a **mandatory** sub-path (its first blocks) and a
**skippable** sub-path (its last blocks). Mandatory blocks carry **skip-aware norms**,
a second set of BatchNorm/LayerNorm used when their stage's skippable sub-path is
skipped. Convolution, attention and linear weights are shared by all 2^S sub-networks.

torchvision's forward code is never edited. ``AdaptiveDepthNetwork`` swaps

* each container of stage blocks (an ``nn.Sequential``) for ``AdaptiveSequential``,
  which leaves the skipped blocks out, and
* each norm in a mandatory block (and in the few modules outside the stages that the
  official models switch too, see ``Stage.attached``) for a subclass holding a second
  norm under ``<name>.skip``,

so module names, and state-dict keys, stay torchvision's. Which sub-network runs is a
small shared ``Selection`` object the wrapper sets at the start of each forward pass.
"""
from __future__ import annotations

import copy
import dataclasses
from collections import OrderedDict
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn
from torchvision.models.convnext import LayerNorm2d
from torchvision.ops import StochasticDepth

from repro.errors import ReproError
from repro.models.interface import ArchConfig, StagedNetwork
from repro.models.layout import BlockInfo, Layout, stage_blocks
from repro.skip import SkipConfig, SkipLike


# --------------------------------------------------------------------------- run-time state
class Selection:
    """The sub-network of the forward pass in progress, shared by all adaptive modules.

    ``stage_cache``: an object with ``lookup(stage, flags) -> output | None`` and
    ``store(stage, flags, output)`` that may supply a stage's output instead of computing
    it (``repro.evaluate.shared_prefixes`` sets one to evaluate many sub-networks on one
    batch); ``features`` stage -> output, when a caller wants them.
    """

    def __init__(self, num_stages: int):
        self.flags: tuple[bool, ...] = (False,) * num_stages
        self.stage_cache = None
        self.features: dict[int, torch.Tensor] | None = None


class SkipAware:
    """Mixin for modules that behave differently when their stage skips.

    ``to_plain(skipped)`` returns the ordinary module the chosen sub-network uses.
    """

    stage: int
    selection: Selection

    def _bind(self, stage: int, selection: Selection) -> None:
        self.stage = stage
        self.selection = selection

    @property
    def stage_skips(self) -> bool:
        return self.selection.flags[self.stage]

    def to_plain(self, skipped: bool) -> nn.Module:
        raise NotImplementedError


class _SkipAwareNorm(SkipAware):
    """A norm (the main set, used by the super-net) plus ``skip``, used when its stage skips."""

    skip: nn.Module

    @classmethod
    def wrap(cls, norm: nn.Module, stage: int, selection: Selection) -> nn.Module:
        reference = next(norm.parameters(), None)
        device = {} if reference is None else {"device": reference.device, "dtype": reference.dtype}
        new = cls(**cls._init_kwargs(norm), **device)
        new.load_state_dict(norm.state_dict())
        # The skip-aware copy starts equal to the main norm, so a pretrained plain
        # network becomes an ADN whose sub-networks all start from its weights.
        new.skip = copy.deepcopy(norm)
        new._bind(stage, selection)
        return new

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stage_skips:
            return self.skip(x)
        return super().forward(x)

    def to_plain(self, skipped: bool) -> nn.Module:
        plain = copy.deepcopy(self.skip)
        if not skipped:
            main = {k: v for k, v in self.state_dict().items() if not k.startswith("skip.")}
            plain.load_state_dict(main)
        return plain


class SkipAwareBatchNorm2d(_SkipAwareNorm, nn.BatchNorm2d):
    @staticmethod
    def _init_kwargs(norm: nn.BatchNorm2d) -> dict:
        return dict(num_features=norm.num_features, eps=norm.eps, momentum=norm.momentum,
                    affine=norm.affine, track_running_stats=norm.track_running_stats)


class SkipAwareLayerNorm(_SkipAwareNorm, nn.LayerNorm):
    @staticmethod
    def _init_kwargs(norm: nn.LayerNorm) -> dict:
        return dict(normalized_shape=norm.normalized_shape, eps=norm.eps,
                    elementwise_affine=norm.elementwise_affine, bias=norm.bias is not None)


class SkipAwareLayerNorm2d(SkipAwareLayerNorm, LayerNorm2d):
    """ConvNeXt's channels-first LayerNorm (its downsampling layers)."""


class SkipAwareStochasticDepth(SkipAware, StochasticDepth):
    """Stochastic depth that is off when its stage skips: the official Swin-ADN trains
    its base-net without stochastic depth in the mandatory blocks."""

    @classmethod
    def wrap(cls, module: StochasticDepth, stage: int, selection: Selection) -> nn.Module:
        new = cls(module.p, module.mode)
        new._bind(stage, selection)
        return new

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.stage_skips else super().forward(x)

    def to_plain(self, skipped: bool) -> nn.Module:
        return nn.Identity() if skipped else StochasticDepth(self.p, self.mode)


SKIP_AWARE_NORMS = {nn.BatchNorm2d: SkipAwareBatchNorm2d, nn.LayerNorm: SkipAwareLayerNorm,
                    LayerNorm2d: SkipAwareLayerNorm2d}


@dataclass(frozen=True)
class _StageSlice:
    stage: int
    start: int  # index of the stage's first block among the container's children
    mandatory_end: int
    end: int


class AdaptiveSequential(nn.Sequential):
    """An ``nn.Sequential`` some of whose children are the blocks of residual stages.

    Children outside any stage always run. A stage whose flag is set runs only its
    mandatory blocks. With a stage cache set, a stage whose output the cache knows for
    these flags returns it instead of recomputing it.
    """

    def __init__(self, sequential: nn.Sequential, slices: Sequence[_StageSlice], selection: Selection):
        super().__init__(OrderedDict(sequential._modules))
        self.slices = tuple(sorted(slices, key=lambda s: s.start))
        self.selection = selection

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        children = list(self._modules.values())
        position = 0
        for piece in self.slices:
            for block in children[position:piece.start]:
                x = block(x)
            x = self._run_stage(piece, children, x)
            position = piece.end
        for block in children[position:]:
            x = block(x)
        return x

    def _run_stage(self, piece: _StageSlice, children: list[nn.Module], x: torch.Tensor) -> torch.Tensor:
        selection = self.selection
        cache = selection.stage_cache
        cached = cache.lookup(piece.stage, selection.flags) if cache is not None else None
        if cached is not None:
            x = cached
        else:
            end = piece.mandatory_end if selection.flags[piece.stage] else piece.end
            for block in children[piece.start:end]:
                x = block(x)
            if cache is not None:
                cache.store(piece.stage, selection.flags, x)
        if selection.features is not None:
            selection.features[piece.stage] = x
        return x

    def to_plain(self, config: SkipConfig) -> nn.Sequential:
        names = list(self._modules)
        dropped = {
            names[i]
            for piece in self.slices if config.flags[piece.stage]
            for i in range(piece.mandatory_end, piece.end)
        }
        return nn.Sequential(OrderedDict((n, m) for n, m in self._modules.items() if n not in dropped))


# --------------------------------------------------------------------------- the network
class AdaptiveDepthNetwork(StagedNetwork):
    """A residual network whose 2^S sub-networks are selected by a skip config.

    ``model(x)`` runs the super-net; ``model(x, skip="TTFF")`` a sub-network. The wrapped
    torchvision model is ``model.net``, built for ``config`` (its architecture, classes and
    input). ``config.split[i]`` is the number of mandatory blocks of stage i (empty: the
    official split); ``config.skip_aware_norms`` False builds the paper's ablation with one
    shared norm set; ``config.skip_aware_shortcuts`` (issue 13, beyond the paper) makes the
    norms ``layout.shared_norms`` keeps shared (ResNet's projection shortcuts) skip-aware
    too, so each norm set sees one distribution. Not thread-safe: one forward at a time.
    """

    def __init__(self, net: nn.Module, layout: Layout, config: ArchConfig):
        super().__init__()
        self.net = net
        self.layout = layout
        # The split is resolved here, so that ``config`` rebuilds this very network.
        self.config = dataclasses.replace(config, split=tuple(config.split) or layout.default_split())
        self._check_split()
        self._check_shortcuts()
        self.selection = Selection(layout.num_stages)
        self._make_blocks_skippable()
        self._make_modules_skip_aware()

    # ------------------------------------------------------------------ construction
    def _check_split(self) -> None:
        if len(self.split) != self.layout.num_stages:
            raise ReproError(
                f"split {list(self.split)} for {self.name}: expected {self.layout.num_stages} "
                f"numbers of mandatory blocks, one per stage")
        for i, (stage, m) in enumerate(zip(self.layout.stages, self.split)):
            n = len(stage.blocks)
            if not 1 <= m <= n - 1:
                raise ReproError(
                    f"split {list(self.split)} for {self.name}: stage {i + 1} has {n} blocks, "
                    f"so its mandatory blocks must number 1 to {n - 1}")

    def _check_shortcuts(self) -> None:
        if not self.config.skip_aware_shortcuts:
            return
        if not self.config.skip_aware_norms:
            raise ReproError("skip-aware shortcuts need skip-aware norms (drop one of the two options)")
        if not self.layout.shared_norms:
            raise ReproError(f"{self.name} has no shared shortcut norms to make skip-aware")

    def _make_blocks_skippable(self) -> None:
        by_container: dict[str, list[_StageSlice]] = {}
        for i, (stage, m) in enumerate(zip(self.layout.stages, self.split)):
            names = list(self.net.get_submodule(stage.container)._modules)
            start = names.index(stage.blocks[0])
            if names[start:start + len(stage.blocks)] != list(stage.blocks):
                raise ValueError(f"stage {i + 1} of {self.name}: blocks are not consecutive")
            by_container.setdefault(stage.container, []).append(
                _StageSlice(i, start, start + m, start + len(stage.blocks)))
        for container, slices in by_container.items():
            original = self.net.get_submodule(container)
            self.net.set_submodule(container, AdaptiveSequential(original, slices, self.selection))

    def _make_modules_skip_aware(self) -> None:
        for i, stage in enumerate(self.layout.stages):
            roots = [f"{stage.container}.{b}" for b in stage.blocks[: self.split[i]]]
            for root in roots + list(stage.attached):
                for path, module in list(self.net.get_submodule(root).named_modules(prefix=root)):
                    replacement = self._skip_aware_version(path, module, i)
                    if replacement is not None:
                        self.net.set_submodule(path, replacement)

    def _skip_aware_version(self, path: str, module: nn.Module, stage: int) -> nn.Module | None:
        if type(module) is StochasticDepth:
            return SkipAwareStochasticDepth.wrap(module, stage, self.selection)
        wrapper = SKIP_AWARE_NORMS.get(type(module))
        if wrapper is None or not self.config.skip_aware_norms:
            return None
        if not self.config.skip_aware_shortcuts and any(part in path.split(".") for part in self.layout.shared_norms):
            return None
        return wrapper.wrap(module, stage, self.selection)

    # ------------------------------------------------------------------ selection
    @property
    def num_stages(self) -> int:
        return self.layout.num_stages

    def parse_skip(self, skip: SkipLike) -> SkipConfig:
        if skip is None:
            return SkipConfig.super_net(self.num_stages)
        return SkipConfig.parse(skip, self.num_stages, self.name)

    def configs(self) -> list[SkipConfig]:
        """All 2^S sub-networks, super-net first (see ``SkipConfig.all``)."""
        return SkipConfig.all(self.num_stages)

    def forward(self, x: torch.Tensor, skip: SkipLike = None, return_features: bool = False):
        """Logits of sub-network ``skip`` (default: the super-net); with ``return_features``,
        also the output of every stage (for intermediate-feature distillation)."""
        flags = self.parse_skip(skip).flags
        selection = self.selection
        selection.flags = flags
        if not return_features:
            return self.run_net(x)
        selection.features = {}
        try:
            logits = self.run_net(x)
            features = [selection.features[i] for i in range(self.num_stages)]
        finally:
            selection.features = None
        return logits, features

    # ------------------------------------------------------------------ structure
    def blocks(self) -> list[BlockInfo]:
        """Every block of every stage, in forward order."""
        return stage_blocks(self.net, self.layout, self.split)

    def skip_aware_modules(self) -> list[tuple[str, SkipAware]]:
        return [(p, m) for p, m in self.net.named_modules() if isinstance(m, SkipAware)]

