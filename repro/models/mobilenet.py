"""MobileNetV2 family: torchvision's MobileNetV2, whose ``features`` is one flat Sequential.

The five inverted-residual groups with two or more blocks are the skippable stages
(paper Table 5: first ceil(n/2) blocks mandatory). As in the official release, the
single-block groups and the stem before the first stage switch their norms with the
first stage's flag, and those after the last stage (and the final 1x1 conv) with the
last stage's flag.

The official release renames the layers (``features.<stage>.<block>``, ``conv_layer``/
``norm``); ``official_key`` maps its keys onto torchvision's.
"""
from __future__ import annotations

import re

from torch import nn
from torchvision.models.mobilenetv2 import MobileNetV2
from torchvision.ops import Conv2dNormActivation

from repro.models.layout import Layout, Stage, default_mandatory
from repro.models.registry import register_arch
from repro.models.resnet import rename_skip_norms

# t (expansion), c (channels), n (blocks), s (stride of the first block): torchvision's setting
IMAGENET_SETTING = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                    (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))
# 28-32 px inputs: stem and the 24-channel group keep the resolution (as CIFAR MobileNetV2s do)
SMALL_INPUT_SETTING = tuple((t, c, n, 1 if c == 24 else s) for t, c, n, s in IMAGENET_SETTING)


def mobilenet_layout(setting) -> Layout:
    """Stages = groups of >= 2 blocks; ``features.0`` is the stem, the last entry the head conv."""
    groups, index = [], 1
    for _, _, n, _ in setting:
        groups.append(tuple(str(i) for i in range(index, index + n)))
        index += n
    head = str(index)
    stage_groups = [g for g in groups if len(g) >= 2]
    first, last = groups.index(stage_groups[0]), groups.index(stage_groups[-1])
    before = ["features.0"] + [f"features.{b}" for g in groups[:first] for b in g]
    after = [f"features.{b}" for g in groups[last + 1:] for b in g] + [f"features.{head}"]
    stages = []
    for i, g in enumerate(stage_groups):
        attached = tuple(before if i == 0 else []) + tuple(after if i == len(stage_groups) - 1 else [])
        stages.append(Stage("features", g, default_mandatory(len(g)), attached))
    return Layout(tuple(stages))


def mobilenet_v2_net(num_classes: int, in_channels: int, setting, width_mult: float, stem_stride: int) -> MobileNetV2:
    net = MobileNetV2(num_classes=num_classes, width_mult=width_mult,
                      inverted_residual_setting=[list(row) for row in setting])
    if in_channels != 3 or stem_stride != 2:
        stem = net.features[0]
        net.features[0] = Conv2dNormActivation(in_channels, stem[0].out_channels, stride=stem_stride,
                                               norm_layer=nn.BatchNorm2d, activation_layer=nn.ReLU6)
        nn.init.kaiming_normal_(net.features[0][0].weight, mode="fan_out")  # torchvision's init
    return net


@register_arch("mobilenet_v2", description="MobileNetV2 (torchvision), ImageNet size", resolution=224,
               min_resolution=32, official_keys=lambda key: official_key(key, IMAGENET_SETTING))
def mobilenet_v2(num_classes: int, in_channels: int, image_size: int):
    net = mobilenet_v2_net(num_classes, in_channels, IMAGENET_SETTING, width_mult=1.0, stem_stride=2)
    return net, mobilenet_layout(IMAGENET_SETTING)


@register_arch("mobilenet_v2_mini", description="MobileNetV2 at width 0.5, stride-1 stem, "
               "for 28-32 px images", resolution=28, in_channels=1, num_classes=10)
def mobilenet_v2_mini(num_classes: int, in_channels: int, image_size: int):
    net = mobilenet_v2_net(num_classes, in_channels, SMALL_INPUT_SETTING, width_mult=0.5, stem_stride=1)
    return net, mobilenet_layout(SMALL_INPUT_SETTING)


def official_key(key: str, setting) -> str:
    """Maps a key of the official MobileNetV2-ADN onto torchvision's layout.

    Official ``features`` = stem, one entry per group of the setting (multi-block groups
    as a Sequential of blocks), head conv; conv-norm pairs are ``conv_layer``/``norm``,
    and each block's last pair (the linear projection) is one entry ``conv.<j>``.
    """
    key = rename_skip_norms(key)
    match = re.match(r"features\.(\d+)\.(.*)", key)
    if not match:
        return key
    entry, rest = int(match.group(1)), match.group(2)
    head = 1 + sum(row[2] for row in setting)
    if entry > len(setting) + 1:
        return key  # not a MobileNetV2 key: left for the caller to report
    if entry in (0, len(setting) + 1):
        return f"features.{0 if entry == 0 else head}.{_conv_norm(rest)}"
    expansion, _, blocks, _ = setting[entry - 1]
    flat = 1 + sum(row[2] for row in setting[:entry - 1])
    if blocks >= 2:
        block, _, rest = rest.partition(".")
        if not block.isdigit():
            return key
        flat += int(block)
    return f"features.{flat}.{_block_layer(rest, expand=expansion != 1)}"


def _conv_norm(rest: str) -> str:
    return rest.replace("conv_layer.", "0.").replace("norm.", "1.")


def _block_layer(rest: str, expand: bool) -> str:
    # Official conv.<j>.{conv_layer,norm}; torchvision: conv.<j>.{0,1} except the final
    # projection, which torchvision keeps as two entries conv.<j> (conv) and conv.<j+1> (norm).
    match = re.match(r"conv\.(\d+)\.(conv_layer|norm)\.(.*)", rest)
    if not match:
        return rest
    j, part, tail = int(match.group(1)), match.group(2), match.group(3)
    projection = 2 if expand else 1
    if j < projection:
        return f"conv.{j}.{0 if part == 'conv_layer' else 1}.{tail}"
    return f"conv.{j if part == 'conv_layer' else j + 1}.{tail}"
