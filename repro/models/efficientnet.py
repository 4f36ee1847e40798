"""EfficientNet-B0: torchvision's EfficientNet, whose ``features`` are stem, seven MBConv
stages (1, 2, 2, 3, 3, 4, 1 blocks) and a head convolution.

The same declaration as MobileNetV2 (its ancestor): the five stages of two or more blocks are
the skippable stages (first ceil(n/2) blocks mandatory: 1/1, 1/1, 2/1, 2/1, 2/2); the stem and
the single-block first stage switch their norms with the first stage's flag, the single-block
last stage and the head conv with the last stage's flag. Mandatory blocks run without
stochastic depth when their stage skips.
"""
from __future__ import annotations

import torchvision
from torch import nn

from repro.models.layout import Layout, sequential_stage
from repro.models.registry import register_arch
from repro.models.resnet import rename_skip_norms


def efficientnet_layout(net) -> Layout:
    stages = [sequential_stage(net, f"features.{i}") for i in range(2, 7)]
    stages[0] = sequential_stage(net, "features.2", attached=["features.0", "features.1"])
    stages[-1] = sequential_stage(net, "features.6", attached=["features.7", "features.8"])
    return Layout(tuple(stages))


@register_arch("efficientnet_b0", description="EfficientNet-B0 (torchvision), ImageNet size", resolution=224,
               min_resolution=32, official_keys=rename_skip_norms)
def efficientnet_b0(num_classes: int, in_channels: int, image_size: int):
    net = torchvision.models.get_model("efficientnet_b0", weights=None, num_classes=num_classes)
    if in_channels != 3:
        old = net.features[0][0]
        net.features[0][0] = nn.Conv2d(in_channels, old.out_channels, old.kernel_size, old.stride, old.padding, bias=False)
        nn.init.kaiming_normal_(net.features[0][0].weight, mode="fan_out")  # torchvision's init
    return net, efficientnet_layout(net)
