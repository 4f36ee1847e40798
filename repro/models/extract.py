"""Plain networks of one depth: what deployment, measurement and the baselines run.

``extract_subnetwork`` copies one sub-network out of a network as an ordinary torchvision
model (fewer blocks, plain norms); ``FixedDepthNetwork`` holds such a model behind the
interface every network offers (``repro.models.interface.DepthNetwork``), for the
paper's individual and "-Base" networks.
"""
from __future__ import annotations

import copy
import dataclasses

from torch import nn

from repro.errors import ReproError
from repro.models.adaptive import AdaptiveSequential, SkipAware
from repro.models.interface import ArchConfig, DepthNetwork, StagedNetwork
from repro.models.layout import BlockInfo, Layout, stage_blocks
from repro.skip import SkipConfig, SkipLike


def extract_subnetwork(model: DepthNetwork, skip: SkipLike) -> nn.Module:
    """A plain (non-adaptive) copy of one sub-network: only the blocks it runs, and in
    mandatory blocks only the norms it uses. Its outputs equal ``model(x, skip)``; it
    is an ordinary torchvision model with fewer blocks (module names are kept). Of a
    ``FixedDepthNetwork``, a copy of its network (for its one config)."""
    config = model.parse_skip(skip)
    net = copy.deepcopy(model.net)
    for path, module in [(p, m) for p, m in net.named_modules() if isinstance(m, SkipAware)]:
        net.set_submodule(path, module.to_plain(config.flags[module.stage]))
    for path, module in [(p, m) for p, m in net.named_modules() if isinstance(m, AdaptiveSequential)]:
        net.set_submodule(path, module.to_plain(config))
    return net


class FixedDepthNetwork(StagedNetwork):
    """A plain network with the depth of one sub-network (individual / "-Base" networks).

    Offers the same interface as ``AdaptiveDepthNetwork`` for its one config ``depth``, so
    training, evaluation and probes treat both alike. ``net`` has the blocks of ``depth``
    of an architecture declared by ``layout`` and ``config``; it has no skip-aware norms.
    """

    def __init__(self, net: nn.Module, layout: Layout, config: ArchConfig, depth: SkipConfig):
        super().__init__()
        self.net = net
        self.layout = layout
        self.config = dataclasses.replace(config, split=tuple(config.split) or layout.default_split(),
                                          skip_aware_norms=False, skip_aware_shortcuts=False)
        self.depth = depth

    @property
    def num_stages(self) -> int:
        return self.depth.num_stages

    def parse_skip(self, skip: SkipLike) -> SkipConfig:
        if skip is None:
            return self.depth
        config = SkipConfig.parse(skip, self.num_stages, self.name)
        if config != self.depth:
            raise ReproError(f"{self.name} is a fixed-depth network of depth {self.depth}; "
                             f"it has no sub-network {config}")
        return config

    def configs(self) -> list[SkipConfig]:
        return [self.depth]

    def forward(self, x, skip: SkipLike = None):
        self.parse_skip(skip)
        return self.run_net(x)

    def blocks(self) -> list[BlockInfo]:
        return stage_blocks(self.net, self.layout, self.split, self.depth.flags)


def fixed_depth(model: DepthNetwork, depth: SkipLike) -> FixedDepthNetwork:
    """The sub-network ``depth`` of ``model`` as a fixed-depth network (weights copied)."""
    config = model.parse_skip(depth)
    return FixedDepthNetwork(extract_subnetwork(model, config), model.layout, model.config, config)
