"""ConvNeXt family: torchvision's ConvNeXt (T, S, B).

Its ``features`` interleave stages of CNBlocks with downsampling layers (LayerNorm2d and a
stride-2 convolution), as Swin's interleave stages with patch merging, and follow the
same rules: first ceil(n/2) blocks of each stage mandatory (T: 2/1, 2/1, 5/4, 2/1; S and B:
2/1, 2/1, 14/13, 2/1), skip-aware LayerNorms in mandatory blocks and in the downsampling
layer before each stage (it follows that stage's flag), no stochastic depth in mandatory
blocks when their stage skips. The stem's and the classifier's norms stay shared.
"""
from __future__ import annotations

import torchvision
from torch import nn

from repro.models.registry import register_arch
from repro.models.resnet import rename_skip_norms
from repro.models.swin import interleaved_layout, set_stem_channels


def _torchvision_convnext(name: str):
    def build(num_classes: int, in_channels: int, image_size: int):
        net = torchvision.models.get_model(name, weights=None, num_classes=num_classes)
        set_stem_channels(net, in_channels)
        if in_channels != 3:
            nn.init.trunc_normal_(net.features[0][0].weight, std=0.02)  # torchvision's init
            nn.init.zeros_(net.features[0][0].bias)
        return net, interleaved_layout(net, channel_dim=1)
    return build


for _name, _model in (("convnext_tiny", "T"), ("convnext_small", "S"), ("convnext_base", "B")):
    register_arch(_name, description=f"ConvNeXt-{_model} (torchvision), ImageNet size", resolution=224,
                  min_resolution=32, official_keys=rename_skip_norms)(_torchvision_convnext(_name))
