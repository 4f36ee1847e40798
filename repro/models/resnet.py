"""ResNet family: torchvision's ResNet (Bottleneck or BasicBlock), stages ``layer1..layer4``.

Official split (paper Table 5): 2/1, 2/2, 3/3, 2/1 mandatory/skippable blocks for ResNet50,
and the same rule (first ceil(n/2) blocks mandatory) for ResNet18/34/101/152, ResNeXt and
Wide-ResNet. Every norm of a mandatory block is skip-aware except the projection
shortcut's (``downsample.1``), as in the official release.
"""
from __future__ import annotations

import re

import torch
import torchvision
from torch import nn
from torchvision.models.resnet import Bottleneck, ResNet

from repro.models.layout import Layout, sequential_stage
from repro.models.registry import register_arch

RESNET50_BLOCKS = (3, 4, 6, 3)


def resnet_layout(net: ResNet) -> Layout:
    stages = tuple(sequential_stage(net, f"layer{i}") for i in range(1, 5))
    # F(h) ends with the block's last norm: bn3 in a Bottleneck, bn2 in a BasicBlock.
    branch = "bn3" if isinstance(net.layer1[0], Bottleneck) else "bn2"
    return Layout(stages, shared_norms=("downsample",), residual_branch=branch)


def rename_skip_norms(key: str) -> str:
    """Official ``<norm>_skip.<param>`` -> our ``<norm>.skip.<param>``."""
    return re.sub(r"(\w+)_skip\.", r"\1.skip.", key)


def bottleneck_resnet(stage_widths: tuple[int, int, int, int], num_classes: int, in_channels: int,
                      small_input: bool, blocks: tuple[int, ...] = RESNET50_BLOCKS) -> ResNet:
    """torchvision's ResNet with Bottleneck stages of chosen widths (``planes``).

    small_input: CIFAR-style stem (3x3 conv, stride 1, no max-pool) for 28-32 px images;
    otherwise torchvision's ImageNet stem. torchvision hard-codes the widths 64..512 in
    ``ResNet.__init__``, so the skeleton is made on the meta device (no memory, no time)
    and its stem, stages and classifier are rebuilt with torchvision's own ``_make_layer``.
    """
    with torch.device("meta"):
        net = ResNet(Bottleneck, list(blocks), num_classes=num_classes)
    stem = stage_widths[0]
    if small_input:
        net.conv1 = nn.Conv2d(in_channels, stem, kernel_size=3, stride=1, padding=1, bias=False)
        net.maxpool = nn.Identity()
    else:
        net.conv1 = nn.Conv2d(in_channels, stem, kernel_size=7, stride=2, padding=3, bias=False)
    net.bn1 = nn.BatchNorm2d(stem)
    net.inplanes = stem
    for i, (width, n) in enumerate(zip(stage_widths, blocks)):
        setattr(net, f"layer{i + 1}", net._make_layer(Bottleneck, width, n, stride=1 if i == 0 else 2))
    net.fc = nn.Linear(stage_widths[-1] * Bottleneck.expansion, num_classes)
    _init_like_torchvision(net)
    return net


def _init_like_torchvision(net: ResNet) -> None:
    # The initialisation of torchvision's ResNet.__init__ (its fc keeps nn.Linear's default).
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.constant_(m.weight, 1)
            nn.init.constant_(m.bias, 0)


@register_arch("resnet50", description="ResNet50 (torchvision), ImageNet size", resolution=224,
               min_resolution=32, official_keys=rename_skip_norms)
def resnet50(num_classes: int, in_channels: int, image_size: int):
    if in_channels == 3:
        net = torchvision.models.get_model("resnet50", weights=None, num_classes=num_classes)
    else:
        net = bottleneck_resnet((64, 128, 256, 512), num_classes, in_channels, small_input=False)
    return net, resnet_layout(net)


@register_arch("resnet_mini", description="ResNet50's Bottleneck stages (3,4,6,3) at 1/8 width, "
               "CIFAR-style stem, for 28-32 px images", resolution=28, in_channels=1, num_classes=10)
def resnet_mini(num_classes: int, in_channels: int, image_size: int):
    net = bottleneck_resnet((8, 16, 32, 64), num_classes, in_channels, small_input=True)
    return net, resnet_layout(net)


# torchvision's other residual networks: name -> what they are (blocks per stage)
TORCHVISION_RESNETS = {
    "resnet18": "ResNet18, BasicBlock 2,2,2,2", "resnet34": "ResNet34, BasicBlock 3,4,6,3",
    "resnet101": "ResNet101, Bottleneck 3,4,23,3", "resnet152": "ResNet152, Bottleneck 3,8,36,3",
    "resnext50_32x4d": "ResNeXt50 32x4d, 3,4,6,3", "resnext101_32x8d": "ResNeXt101 32x8d, 3,4,23,3",
    "wide_resnet50_2": "Wide-ResNet50-2, 3,4,6,3",
}


def _torchvision_resnet(name: str):
    def build(num_classes: int, in_channels: int, image_size: int):
        net = torchvision.models.get_model(name, weights=None, num_classes=num_classes)
        if in_channels != 3:
            old = net.conv1
            net.conv1 = nn.Conv2d(in_channels, old.out_channels, old.kernel_size, old.stride, old.padding, bias=False)
            nn.init.kaiming_normal_(net.conv1.weight, mode="fan_out", nonlinearity="relu")  # torchvision's init
        return net, resnet_layout(net)
    return build


for _name, _description in TORCHVISION_RESNETS.items():
    register_arch(_name, description=f"{_description} (torchvision), ImageNet size", resolution=224,
                  min_resolution=32, official_keys=rename_skip_norms)(_torchvision_resnet(_name))
