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
import math
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator, Sequence

import torch
from torch import nn
from torchvision.models.convnext import LayerNorm2d
from torchvision.ops import StochasticDepth

from repro.errors import ReproError
from repro.skip import SkipConfig, SkipLike


# --------------------------------------------------------------------------- declaration
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


# --------------------------------------------------------------------------- run-time state
class Selection:
    """The sub-network of the forward pass in progress, shared by all adaptive modules.

    ``prefix_cache`` (stage, flags up to that stage) -> stage output, when evaluating many
    sub-networks on one batch; ``features`` stage -> output, when a caller wants them.
    """

    def __init__(self, num_stages: int):
        self.flags: tuple[bool, ...] = (False,) * num_stages
        self.prefix_cache: dict[tuple[int, tuple[bool, ...]], torch.Tensor] | None = None
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
    mandatory blocks. With a prefix cache active, a stage whose output for the same
    leading flags is already known returns it instead of recomputing it.
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
        key = (piece.stage, selection.flags[: piece.stage + 1])
        cache = selection.prefix_cache
        if cache is not None and key in cache:
            x = cache[key]
        else:
            end = piece.mandatory_end if selection.flags[piece.stage] else piece.end
            for block in children[piece.start:end]:
                x = block(x)
            if cache is not None:
                cache[key] = x
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
@dataclass(frozen=True)
class BlockInfo:
    """One residual block of a stage, for probes that look inside the network."""

    stage: int
    index: int  # position within its stage
    path: str  # module path relative to the wrapped network
    mandatory: bool
    module: nn.Module = field(compare=False, repr=False)


class AdaptiveDepthNetwork(nn.Module):
    """A residual network whose 2^S sub-networks are selected by a skip config.

    ``model(x)`` runs the super-net; ``model(x, skip="TTFF")`` a sub-network. The wrapped
    torchvision model is ``model.net``; ``split[i]`` is the number of mandatory blocks of
    stage i (default: the official split). Not thread-safe: one forward at a time.
    """

    def __init__(self, net: nn.Module, layout: Layout, split: Sequence[int] | None = None,
                 skip_aware_norms: bool = True, name: str = "this network", skip_aware_shortcuts: bool = False):
        super().__init__()
        self.net = net
        self.layout = layout
        self.name = name
        self.split = tuple(split) if split is not None else layout.default_split()
        self.skip_aware_norms = skip_aware_norms
        # Beyond the paper (issue 13): the norms ``layout.shared_norms`` keeps shared (ResNet's
        # projection shortcuts) become skip-aware too, so each norm set sees one distribution.
        self.skip_aware_shortcuts = skip_aware_shortcuts
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
        if not self.skip_aware_shortcuts:
            return
        if not self.skip_aware_norms:
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
        if wrapper is None or not self.skip_aware_norms:
            return None
        if not self.skip_aware_shortcuts and any(part in path.split(".") for part in self.layout.shared_norms):
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
        if selection.prefix_cache:
            # Keep only the stage outputs this sub-network can reuse: memory stays at S tensors.
            selection.prefix_cache = {k: v for k, v in selection.prefix_cache.items() if k[1] == flags[: k[0] + 1]}
        if not return_features:
            return self.net(x)
        selection.features = {}
        try:
            logits = self.net(x)
            features = [selection.features[i] for i in range(self.num_stages)]
        finally:
            selection.features = None
        return logits, features

    @contextmanager
    def shared_prefixes(self) -> Iterator[None]:
        """Within this block, sub-networks run on the *same input* reuse the output of
        every stage whose leading flags they share (depth-first evaluation). Callers
        must leave the block before feeding a different batch."""
        self.selection.prefix_cache = {}
        try:
            yield
        finally:
            self.selection.prefix_cache = None

    # ------------------------------------------------------------------ structure
    def blocks(self) -> list[BlockInfo]:
        """Every block of every stage, in forward order."""
        out = []
        for i, (stage, m) in enumerate(zip(self.layout.stages, self.split)):
            for j, name in enumerate(stage.blocks):
                path = f"{stage.container}.{name}"
                out.append(BlockInfo(i, j, path, j < m, self.net.get_submodule(path)))
        return out

    def skip_aware_modules(self) -> list[tuple[str, SkipAware]]:
        return [(p, m) for p, m in self.net.named_modules() if isinstance(m, SkipAware)]


def extract_subnetwork(model: AdaptiveDepthNetwork, skip: SkipLike) -> nn.Module:
    """A plain (non-adaptive) copy of one sub-network: only the blocks it runs, and in
    mandatory blocks only the norms it uses. Its outputs equal ``model(x, skip)``; it
    is an ordinary torchvision model with fewer blocks (module names are kept)."""
    config = model.parse_skip(skip)
    net = copy.deepcopy(model.net)
    for path, module in [(p, m) for p, m in net.named_modules() if isinstance(m, SkipAware)]:
        net.set_submodule(path, module.to_plain(config.flags[module.stage]))
    for path, module in [(p, m) for p, m in net.named_modules() if isinstance(m, AdaptiveSequential)]:
        net.set_submodule(path, module.to_plain(config))
    return net
