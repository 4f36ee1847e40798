"""What every network of this toolkit offers, adaptive or of one fixed depth.

``AdaptiveDepthNetwork`` (2^S sub-networks) and ``FixedDepthNetwork`` (one depth: the
individual and "-Base" networks) both satisfy ``DepthNetwork``, with ``config`` set at
construction. Code that takes either uses this interface; whether a network has
sub-networks to choose among is ``is_adaptive(model)``, not its type.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch
from torch import nn

from repro.errors import ReproError
from repro.models.attention import attention_kernel
from repro.models.layout import BlockInfo, Layout
from repro.skip import SkipConfig, SkipLike


@dataclass(frozen=True)
class ArchConfig:
    """Everything needed to rebuild a model; stored in every checkpoint."""

    arch: str
    num_classes: int
    in_channels: int
    image_size: int
    split: tuple[int, ...]  # mandatory blocks per stage; () before a network resolves it
    skip_aware_norms: bool = True
    skip_aware_shortcuts: bool = False  # issue 13: shortcut norms skip-aware too (beyond the paper)

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "split": list(self.split)}

    @classmethod
    def from_dict(cls, data: dict) -> ArchConfig:
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - fields
        if unknown:
            raise ReproError(f"unknown architecture settings {sorted(unknown)}")
        return cls(**{**data, "split": tuple(data["split"])})


@runtime_checkable
class DepthNetwork(Protocol):
    """A network that runs skip configs (``model(x, skip)``).

    config: set at construction; rebuilds this network (``build_from_config``, checkpoints).
    net: the wrapped torchvision model (plain copies of it: ``extract_subnetwork``).
    layout: where its stages are (``repro.models.layout.Layout``).
    """

    config: ArchConfig
    net: nn.Module
    layout: Layout

    @property
    def num_stages(self) -> int: ...

    def configs(self) -> list[SkipConfig]:
        """The skip configs this network runs: all 2^S, or its one depth."""

    def parse_skip(self, skip: SkipLike) -> SkipConfig:
        """``skip`` ("TTFF", "base", None: its default) as a config it runs, or a ``ReproError``."""

    def blocks(self) -> list[BlockInfo]:
        """Its residual blocks, in forward order (``stage_blocks``)."""


class StagedNetwork(nn.Module):
    """The base of both network classes: what their ``config`` says of them."""

    config: ArchConfig

    @property
    def name(self) -> str:
        return self.config.arch

    @property
    def split(self) -> tuple[int, ...]:
        """Mandatory blocks per stage."""
        return self.config.split

    def run_net(self, x: torch.Tensor):
        """The wrapped network on ``x``, with the attention kernel that suits it here
        (``repro.models.attention``)."""
        with attention_kernel(self.net, x):
            return self.net(x)


def is_adaptive(model: DepthNetwork) -> bool:
    """Whether ``model`` has sub-networks to choose among (rather than one fixed depth)."""
    return len(model.configs()) > 1
