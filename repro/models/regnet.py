"""RegNetY (torchvision's RegNet): ``stem``, then ``trunk_output.block1..block4``, each an
``AnyStage`` (an ``nn.Sequential`` of ``ResBottleneckBlock``, children ``block<i>-<j>``).

The same declaration as ResNet: each stage is one Sequential, the first ceil(n/2) blocks are
mandatory, the projection shortcut's norm (``proj.1``) stays shared like ResNet's
``downsample.1``, and F(h) is the bottleneck transform ``f`` (the block adds it to the
shortcut, then applies its ReLU). A single-block first stage (RegNetY-400MF: 1, 3, 6, 6
blocks) has no skippable part; as in EfficientNet-B0, its norms switch with the next
stage's flag, so RegNetY-400MF has S = 3 (2/1, 3/3, 3/3) and RegNetY-1.6GF S = 4
(1/1, 3/3, 9/8, 1/1).
"""
from __future__ import annotations

import math

import torch
import torchvision
from torch import nn

from repro.models.layout import Layout, sequential_stage
from repro.models.registry import register_arch
from repro.models.resnet import rename_skip_norms

# torchvision's RegNets registered here: name -> what they are (blocks per stage)
TORCHVISION_REGNETS = {"regnet_y_400mf": "RegNetY-400MF, 1,3,6,6", "regnet_y_1_6gf": "RegNetY-1.6GF, 2,6,17,2"}


def regnet_layout(net) -> Layout:
    containers = [f"trunk_output.{name}" for name, _ in net.trunk_output.named_children()]
    if len(net.get_submodule(containers[0])) > 1:
        stages = [sequential_stage(net, c) for c in containers]
    else:
        stages = [sequential_stage(net, c) for c in containers[1:]]
        stages[0] = sequential_stage(net, containers[1], attached=containers[:1])
    return Layout(tuple(stages), shared_norms=("proj",), residual_branch="f")


def _torchvision_regnet(name: str):
    def build(num_classes: int, in_channels: int, image_size: int):
        # torchvision computes RegNet's stage widths with tensors (``BlockParams.from_init_params``
        # calls ``.tolist()``), which the meta device of structure-only builds (``num_stages``,
        # checkpoint probing) cannot do: build on the CPU, then move to the caller's device.
        with torch.device("cpu"):
            net = torchvision.models.get_model(name, weights=None, num_classes=num_classes)
        net = net.to(torch.get_default_device())
        if in_channels != 3:
            old = net.stem[0]
            net.stem[0] = nn.Conv2d(in_channels, old.out_channels, old.kernel_size, old.stride, old.padding, bias=False)
            fan_out = old.kernel_size[0] * old.kernel_size[1] * old.out_channels
            nn.init.normal_(net.stem[0].weight, mean=0.0, std=math.sqrt(2.0 / fan_out))  # torchvision's init
        return net, regnet_layout(net)
    return build


for _name, _description in TORCHVISION_REGNETS.items():
    register_arch(_name, description=f"{_description} (torchvision), ImageNet size", resolution=224,
                  min_resolution=32, official_keys=rename_skip_norms)(_torchvision_regnet(_name))
