"""FLOP goldens: fvcore's convention plus attention products (paper Tables 1 and 6)."""
import pytest

from repro.measure.flops import count_flops, subnetwork_costs
from repro.models import ARCHS, build_model
from repro.skip import SkipConfig

GOLDEN_GFLOPS = {  # issue #2; ResNet50/ViT match the official README, Swin-T counts LayerNorm
    "resnet50": {"FFFF": 4.11, "TFFF": 3.89, "TTFF": 3.45, "TTTF": 2.79, "TTTT": 2.58},
    "mobilenet_v2": {"FFFFF": 0.31, "TTTTT": 0.21},
    "vit_b_16": {"FFFF": 17.58, "TTTT": 11.76},
    "swin_t": {"FFFF": 4.51, "TTTT": 2.35},
}


@pytest.mark.parametrize("arch", GOLDEN_GFLOPS)
def test_golden_gflops(arch):
    spec = ARCHS.get(arch)
    model = build_model(arch)
    expected = GOLDEN_GFLOPS[arch]
    configs = [SkipConfig.parse(s, model.num_stages) for s in expected]
    costs = subnetwork_costs(model, (3, spec.resolution, spec.resolution), configs)
    for cost in costs:
        assert round(cost.gflops, 2) == expected[str(cost.skip)], cost


def test_resnet50_counts_batchnorm_like_fvcore():
    import torchvision
    net = torchvision.models.resnet50()
    assert count_flops(net, (3, 224, 224)) == pytest.approx(4.1115e9, rel=1e-4)


def test_vit_attention_products_are_counted():
    # one ViT-B/16 block: 2 * 197^2 * 768 multiply-adds for QK^T and AV
    full, base = subnetwork_costs(build_model("vit_b_16"), (3, 224, 224),
                                  [SkipConfig.super_net(4), SkipConfig.base_net(4)])
    per_block = (full.gflops - base.gflops) / 4
    assert per_block == pytest.approx(1.455, abs=1e-3)


def test_params_count_only_the_norms_a_subnetwork_uses():
    model = build_model("resnet_mini")
    costs = {str(c.skip): c for c in subnetwork_costs(model, (1, 28, 28))}
    assert len(costs) == 16
    total = sum(p.numel() for n, p in model.named_parameters() if ".skip." not in n)
    assert costs["FFFF"].params_m * 1e6 == pytest.approx(total)
    assert costs["TTTT"].gflops < costs["TTFF"].gflops < costs["FFFF"].gflops


# Issue 18: one per new family. Super-net = fvcore's count of the plain torchvision model,
# base-net = fvcore's count of the plain torchvision network built at the base-net's depth.
def _base_depth_plain(arch):
    from torchvision.models.convnext import CNBlockConfig, ConvNeXt
    from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet
    from torchvision.models.swin_transformer import SwinTransformer
    from torchvision.models.vision_transformer import VisionTransformer

    return {
        "resnet18": lambda: ResNet(BasicBlock, [1, 1, 1, 1]),
        "resnext50_32x4d": lambda: ResNet(Bottleneck, [2, 2, 3, 2], groups=32, width_per_group=4),
        "wide_resnet50_2": lambda: ResNet(Bottleneck, [2, 2, 3, 2], width_per_group=128),
        "convnext_tiny": lambda: ConvNeXt([CNBlockConfig(96, 192, 2), CNBlockConfig(192, 384, 2),
                                           CNBlockConfig(384, 768, 5), CNBlockConfig(768, None, 2)]),
        "swin_s": lambda: SwinTransformer([4, 4], 96, [1, 1, 9, 1], [3, 6, 12, 24], [7, 7]),
        "vit_l_16": lambda: VisionTransformer(224, 16, num_layers=20, num_heads=16, hidden_dim=1024, mlp_dim=4096),
        "efficientnet_b0": lambda: _efficientnet_b0_layers((1, 1, 1, 2, 2, 2, 1)),
        "regnet_y_400mf": lambda: _regnet_y_400mf_depths([1, 2, 3, 3]),  # block1 is attached, always runs
    }[arch]()


def _efficientnet_b0_layers(layers):
    """torchvision's EfficientNet-B0 with ``layers`` MBConv blocks per stage."""
    from functools import partial

    from torchvision.models.efficientnet import EfficientNet, MBConvConfig

    make = partial(MBConvConfig, width_mult=1.0, depth_mult=1.0)
    rows = [(1, 3, 1, 32, 16), (6, 3, 2, 16, 24), (6, 5, 2, 24, 40), (6, 3, 2, 40, 80), (6, 5, 1, 80, 112),
            (6, 5, 2, 112, 192), (6, 3, 1, 192, 320)]
    return EfficientNet([make(*row, n) for row, n in zip(rows, layers)], dropout=0.2)


def _regnet_y_400mf_depths(depths):
    """torchvision's RegNetY-400MF (the parameters of its builder) with ``depths`` blocks per stage."""
    from torchvision.models.regnet import BlockParams, RegNet

    params = BlockParams.from_init_params(depth=16, w_0=48, w_a=27.89, w_m=2.09, group_width=8, se_ratio=0.25)
    params.depths = depths
    return RegNet(params)


NEW_FAMILY_GFLOPS = {  # (super, base) at 224 px, fvcore + attention products
    "resnet18": (1.8191, 0.8927), "resnext50_32x4d": (4.2594, 2.7103), "wide_resnet50_2": (11.4269, 6.7421),
    "convnext_tiny": (4.4704, 2.8093), "swin_s": (8.7686, 4.4808), "vit_l_16": (61.6041, 51.3628),
    "efficientnet_b0": (0.4017, 0.2558), "regnet_y_400mf": (0.4104, 0.2641),
}


@pytest.mark.parametrize("arch", [pytest.param(a, marks=pytest.mark.slow) if a in ("vit_l_16", "wide_resnet50_2")
                                  else a for a in NEW_FAMILY_GFLOPS])
def test_new_families_count_like_plain_torchvision(arch):
    import torchvision

    model = build_model(arch)
    stages = model.num_stages
    super_net, base_net = subnetwork_costs(model, (3, 224, 224), [SkipConfig.super_net(stages),
                                                                  SkipConfig.base_net(stages)])
    plain = count_flops(torchvision.models.get_model(arch, weights=None), (3, 224, 224))
    assert super_net.gflops == plain / 1e9
    assert base_net.gflops == count_flops(_base_depth_plain(arch), (3, 224, 224)) / 1e9
    assert (round(super_net.gflops, 4), round(base_net.gflops, 4)) == NEW_FAMILY_GFLOPS[arch]


def test_arch_summary_is_counted_once_then_read_from_the_cache(tmp_path, monkeypatch):
    from repro.measure import flops

    monkeypatch.setenv("HOME", str(tmp_path))
    first = flops.arch_summary(["resnet_mini"])
    assert len(list(tmp_path.glob(".cache/adn-repro/arch_summary-*.json"))) == 1
    monkeypatch.setattr(flops, "_arch_row", lambda name: pytest.fail("counted again"))
    assert flops.arch_summary(["resnet_mini"]).equals(first)
    assert first.loc[0, "super_gflops"] == 0.0171
