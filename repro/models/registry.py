"""The architecture registry, and the builders of adaptive and fixed-depth networks.

Each architecture is a function ``(num_classes, in_channels, image_size) -> (net, layout)``
that builds an unmodified torchvision model and declares its stages (``Layout``);
``build_model`` turns it into an ADN, ``build_individual`` into a plain network of one
depth (the paper's individual and "-Base" networks).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch import nn

from repro.errors import ReproError
from repro.models.adaptive import AdaptiveDepthNetwork
from repro.models.extract import FixedDepthNetwork, fixed_depth
from repro.models.interface import ArchConfig
from repro.models.layout import Layout
from repro.registry import Registry
from repro.skip import SkipLike

NetBuilder = Callable[[int, int, int], "tuple[nn.Module, Layout]"]


@dataclass(frozen=True)
class ArchSpec:
    """A registered architecture: how to build it and what input it expects."""

    name: str
    build_net: NetBuilder
    description: str
    resolution: int  # native input size (pixels)
    in_channels: int = 3
    num_classes: int = 1000
    min_resolution: int = 8
    patch_size: int | None = None  # ViTs need image sizes divisible by it
    official_keys: Callable[[str], str] | None = None  # official release key -> our key

    def check_input(self, in_channels: int, image_size: int, where: str = "the data") -> None:
        """Raises a one-line error if images of this shape cannot feed this architecture."""
        if image_size < self.min_resolution:
            raise ReproError(f"{self.name} needs images of at least {self.min_resolution} px, "
                             f"but {where} has {image_size} px")
        if self.patch_size and image_size % self.patch_size:
            raise ReproError(f"{self.name} needs an image size divisible by its patch size "
                             f"{self.patch_size}, but {where} has {image_size} px")


ARCHS: Registry[ArchSpec] = Registry("architecture")


def register_arch(name: str, **meta) -> Callable[[NetBuilder], NetBuilder]:
    """Decorator registering ``fn(num_classes, in_channels, image_size) -> (net, layout)``."""
    return ARCHS.register(name, lambda fn: ArchSpec(name=name, build_net=fn, **meta))


def resolve_config(arch: str, num_classes: int | None = None, in_channels: int | None = None,
                   image_size: int | None = None, split: Sequence[int] | None = None,
                   skip_aware_norms: bool = True, skip_aware_shortcuts: bool = False) -> ArchConfig:
    spec = ARCHS.get(arch)
    image_size = image_size or spec.resolution
    in_channels = in_channels or spec.in_channels
    spec.check_input(in_channels, image_size, where=f"the requested input ({image_size} px)")
    return ArchConfig(arch, num_classes or spec.num_classes, in_channels, image_size,
                      tuple(split) if split is not None else (), skip_aware_norms, skip_aware_shortcuts)


def build_from_config(config: ArchConfig) -> AdaptiveDepthNetwork:
    spec = ARCHS.get(config.arch)
    net, layout = spec.build_net(config.num_classes, config.in_channels, config.image_size)
    return AdaptiveDepthNetwork(net, layout, config)


@functools.cache
def num_stages(arch: str) -> int:
    """S, the number of skippable stages of a registered architecture."""
    with torch.device("meta"):  # structure only: no memory, no initialisation cost
        return build_model(arch).num_stages


@functools.cache
def official_split(arch: str) -> tuple[int, ...]:
    """The default (official) mandatory block count per stage of an architecture."""
    with torch.device("meta"):
        return tuple(build_model(arch).split)


@functools.cache
def has_shortcut_norms(arch: str) -> bool:
    """Whether an architecture keeps norms shared in the official release (ResNet's
    projection shortcuts), i.e. whether ``skip_aware_shortcuts`` applies to it."""
    with torch.device("meta"):
        return bool(build_model(arch).layout.shared_norms)


def build_model(arch: str, num_classes: int | None = None, *, in_channels: int | None = None,
                image_size: int | None = None, split: Sequence[int] | None = None,
                skip_aware_norms: bool = True, skip_aware_shortcuts: bool = False) -> AdaptiveDepthNetwork:
    """An adaptive-depth network (ADN) of a registered architecture, freshly initialised.

    split: mandatory blocks per stage (default: the official split).
    skip_aware_norms: False builds the paper's ablation with one shared norm set.
    skip_aware_shortcuts: True also makes the projection-shortcut norms of mandatory blocks
        skip-aware (beyond the paper; the official release keeps them shared).
    """
    return build_from_config(resolve_config(arch, num_classes, in_channels, image_size, split,
                                            skip_aware_norms, skip_aware_shortcuts))


def build_individual(arch: str, depth: SkipLike, num_classes: int | None = None, *,
                     in_channels: int | None = None, image_size: int | None = None,
                     split: Sequence[int] | None = None) -> FixedDepthNetwork:
    """A freshly initialised plain network with the blocks of sub-network ``depth``.

    Made by the same builder as the ADN: the ADN without skip-aware norms, with the
    skipped blocks removed. ``depth='FFFF'`` is the usual full network.
    """
    adaptive = build_model(arch, num_classes, in_channels=in_channels, image_size=image_size,
                           split=split, skip_aware_norms=False)
    return fixed_depth(adaptive, depth)

