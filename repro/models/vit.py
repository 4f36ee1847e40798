"""Vision Transformer family: torchvision's VisionTransformer.

Its encoder blocks live in one Sequential (``encoder.layers``) and are grouped into 4
stages: ViT-B's 12 blocks in groups of 3, ViT-L's 24 in groups of 6. The last block of each
group is skippable (paper Table 5), and mandatory blocks get skip-aware LayerNorms
(``ln_1``, ``ln_2``).
"""
from __future__ import annotations

import math

import torchvision
from torch import nn
from torchvision.models.vision_transformer import VisionTransformer

from repro.models.layout import Layout, Stage
from repro.models.registry import register_arch
from repro.models.resnet import rename_skip_norms


def vit_layout(net: VisionTransformer, num_stages: int = 4) -> Layout:
    """``num_stages`` equal groups of blocks; the last block of each is skippable (the
    official ViT rule, which for groups of 3 is also the first-ceil(n/2) rule)."""
    names = list(net.encoder.layers._modules)
    size = len(names) // num_stages
    groups = [tuple(names[i:i + size]) for i in range(0, len(names), size)]
    return Layout(tuple(Stage("encoder.layers", g, len(g) - 1) for g in groups), channel_dim=-1)


def _set_in_channels(net: VisionTransformer, in_channels: int) -> None:
    if in_channels == 3:
        return
    old = net.conv_proj
    net.conv_proj = nn.Conv2d(in_channels, old.out_channels, old.kernel_size, old.stride)
    # torchvision's init of the patch embedding
    fan_in = in_channels * old.kernel_size[0] * old.kernel_size[1]
    nn.init.trunc_normal_(net.conv_proj.weight, std=math.sqrt(1 / fan_in))
    nn.init.zeros_(net.conv_proj.bias)


def _torchvision_vit(name: str):
    def build(num_classes: int, in_channels: int, image_size: int):
        net = torchvision.models.get_model(name, weights=None, num_classes=num_classes, image_size=image_size)
        _set_in_channels(net, in_channels)
        return net, vit_layout(net)
    return build


for _name, _model, _patch in (("vit_b_16", "B", 16), ("vit_b_32", "B", 32), ("vit_l_16", "L", 16)):
    register_arch(_name, description=f"ViT-{_model}/{_patch} (torchvision), ImageNet size", resolution=224,
                  min_resolution=_patch, patch_size=_patch, official_keys=rename_skip_norms)(_torchvision_vit(_name))


@register_arch("vit_mini", description="ViT with 12 blocks in 4 groups, width 64, 4 heads, "
               "patch 4, for 28-32 px images", resolution=28, in_channels=1, num_classes=10,
               min_resolution=4, patch_size=4)
def vit_mini(num_classes: int, in_channels: int, image_size: int):
    net = VisionTransformer(image_size=image_size, patch_size=4, num_layers=12, num_heads=4,
                            hidden_dim=64, mlp_dim=128, num_classes=num_classes)
    _set_in_channels(net, in_channels)
    return net, vit_layout(net)
