"""Swin Transformer family: torchvision's SwinTransformer (Swin-T, -S, -B).

torchvision's ``features`` = patch embedding, stage 1, merging, stage 2, merging, stage 3,
merging, stage 4. Split 1/1, 1/1, 3/3, 1/1 for Swin-T (paper Table 5), 1/1, 1/1, 9/9, 1/1
for Swin-S and -B (the same first-ceil(n/2) rule). As in the official release, each patch
merging's norm is skip-aware and follows the flag of the stage *after* it, and mandatory
blocks run without stochastic depth when their stage skips.
"""
from __future__ import annotations

import re

import torchvision
from torchvision.models.swin_transformer import SwinTransformer
from torch import nn

from repro.models.layout import Layout, sequential_stage
from repro.models.registry import register_arch
from repro.models.resnet import rename_skip_norms


def interleaved_layout(net, channel_dim: int) -> Layout:
    """``features`` = stem, stage, downsampling, stage, ... (Swin, ConvNeXt): stages at odd
    positions; each downsampling layer's norms follow the stage after it."""
    stages = [sequential_stage(net, "features.1")]
    for container in (3, 5, 7):
        stages.append(sequential_stage(net, f"features.{container}", attached=[f"features.{container - 1}"]))
    return Layout(tuple(stages), channel_dim=channel_dim)


def swin_layout(net) -> Layout:
    return interleaved_layout(net, channel_dim=-1)


def set_stem_channels(net, in_channels: int) -> None:
    """``features.0.0`` (the patch embedding convolution) for ``in_channels`` channels."""
    if in_channels != 3:
        old = net.features[0][0]
        net.features[0][0] = nn.Conv2d(in_channels, old.out_channels, old.kernel_size, old.stride)


def official_key(key: str) -> str:
    """Official Swin-ADN keys: ``pre`` is torchvision's ``features.0``, and its
    ``features.i`` is torchvision's ``features.i+1``."""
    key = rename_skip_norms(key)
    if key.startswith("pre."):
        return "features.0." + key[len("pre."):]
    return re.sub(r"^features\.(\d+)\.", lambda m: f"features.{int(m.group(1)) + 1}.", key)


@register_arch("swin_t", description="Swin-T (torchvision), ImageNet size", resolution=224,
               min_resolution=32, official_keys=official_key)
def swin_t(num_classes: int, in_channels: int, image_size: int):
    # The official Swin-T-ADN uses stochastic depth 0.1 (torchvision's default is 0.2).
    # torchvision's swin_t hyper-parameters, with the official release's stochastic depth.
    net = SwinTransformer(patch_size=[4, 4], embed_dim=96, depths=[2, 2, 6, 2], num_heads=[3, 6, 12, 24],
                          window_size=[7, 7], stochastic_depth_prob=0.1, num_classes=num_classes)
    set_stem_channels(net, in_channels)
    return net, swin_layout(net)


def _torchvision_swin(name: str):
    def build(num_classes: int, in_channels: int, image_size: int):
        # torchvision's own hyper-parameters (no official ADN release to follow for these)
        net = torchvision.models.get_model(name, weights=None, num_classes=num_classes)
        set_stem_channels(net, in_channels)
        return net, swin_layout(net)
    return build


for _name, _model in (("swin_s", "S"), ("swin_b", "B")):
    register_arch(_name, description=f"Swin-{_model} (torchvision), ImageNet size", resolution=224,
                  min_resolution=32, official_keys=official_key)(_torchvision_swin(_name))
