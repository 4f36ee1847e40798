"""The adaptive-depth core across the whole registry (paper Sec. 3, Table 5)."""
import copy
import dataclasses

import pytest
import torch
from torch import nn

from repro.errors import ReproError
from repro.evaluate import shared_prefixes
from repro.models import (ARCHS, AdaptiveDepthNetwork, DepthNetwork, FixedDepthNetwork, build_individual, build_model,
                          extract_subnetwork, is_adaptive)
from repro.models.adaptive import SkipAware, SkipAwareStochasticDepth
from repro.models.registry import resolve_config
from repro.skip import SkipConfig
from tests.conftest import small_input
from tests.test_more_archs import NEW_ARCHS

# The paper's families at their native input; the other torchvision families (issue 18) are
# checked the same way at their smallest input in test_more_archs.py.
PAPER_ARCHS = [n for n in ARCHS.names() if n not in NEW_ARCHS]
SMALL = [n for n in PAPER_ARCHS if ARCHS.get(n).resolution < 64]
BIG = [n for n in PAPER_ARCHS if ARCHS.get(n).resolution >= 64]


def configs_to_check(model, arch):
    configs = model.configs()
    if arch in SMALL:
        return configs
    return [configs[0], configs[-1], configs[len(configs) // 2 - 1]]  # super, base, one mixed


@pytest.mark.parametrize("arch", PAPER_ARCHS)
def test_every_config_runs_and_extracted_subnetworks_match(arch):
    spec = ARCHS.get(arch)
    model = build_model(arch).eval()
    x = small_input(spec)
    with torch.no_grad():
        for config in configs_to_check(model, arch):
            out = model(x, skip=str(config))
            assert out.shape == (2, spec.num_classes)
            plain = extract_subnetwork(model, config).eval()
            assert not any(isinstance(m, (SkipAware, AdaptiveDepthNetwork)) for m in plain.modules())
            torch.testing.assert_close(plain(x), out, rtol=0, atol=0)


@pytest.mark.parametrize("arch", PAPER_ARCHS)
def test_super_net_equals_the_plain_torchvision_model(arch):
    spec = ARCHS.get(arch)
    plain, layout = spec.build_net(spec.num_classes, spec.in_channels, spec.resolution)
    model = AdaptiveDepthNetwork(copy.deepcopy(plain), layout, resolve_config(arch))
    x = small_input(spec)
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(x), plain.eval()(x), rtol=0, atol=0)
    assert set(model.state_dict()) - {k for k in model.state_dict() if ".skip." in k} == \
        {f"net.{k}" for k in plain.state_dict()}


@pytest.mark.parametrize("arch", ["resnet_mini", "mobilenet_v2_mini", "vit_mini"])
def test_skip_aware_norms_are_used_exactly_when_their_stage_skips(arch):
    model = build_model(arch).eval()
    calls, skip_calls = [], []
    norms = {p: m for p, m in model.skip_aware_modules() if hasattr(m, "skip")}
    for path, module in norms.items():
        module.register_forward_hook(lambda m, i, o, p=path: calls.append(p))
        module.skip.register_forward_hook(lambda m, i, o, p=path: skip_calls.append(p))
    x = small_input(ARCHS.get(arch))
    for config in model.configs():
        calls.clear()
        skip_calls.clear()
        with torch.no_grad():
            model(x, config)
        assert len(calls) == len(set(calls)) and set(calls) <= set(norms)
        expected_skip = {p for p in calls if config.flags[norms[p].stage]}
        assert set(skip_calls) == expected_skip and len(skip_calls) == len(expected_skip), config
    assert len(set(calls)) == len(norms)  # base-net: every mandatory norm runs (its skip variant)


def test_weights_are_shared_and_only_norms_differ():
    model = build_model("resnet_mini")
    names = [n for n, _ in model.named_parameters()]
    assert len(names) == len(set(id(p) for p in model.parameters()))
    skip_norm_params = [n for n in names if ".skip." in n]
    assert skip_norm_params and all(".bn" in n for n in skip_norm_params)
    assert not any("downsample" in n for n in skip_norm_params)  # official: shortcut BN stays shared
    # the skippable blocks (layer1.2, layer2.2-3, ...) have no skip-aware norms
    assert not any(n.startswith("net.layer1.2.") for n in skip_norm_params)
    base = extract_subnetwork(model, "TTTT")
    conv = dict(model.named_parameters())["net.layer3.0.conv1.weight"]
    assert torch.equal(dict(base.named_parameters())["layer3.0.conv1.weight"], conv)


def test_skippable_blocks_are_the_last_ones_of_each_stage():
    model = build_model("resnet50")
    roles = {(b.stage, b.index): b.mandatory for b in model.blocks()}
    assert [sum(roles[(s, i)] for i in range(n)) for s, n in enumerate((3, 4, 6, 3))] == [2, 2, 3, 2]
    assert roles[(2, 2)] and not roles[(2, 3)]
    assert len(extract_subnetwork(model, "TTTT").layer3) == 3


def test_split_is_a_parameter():
    model = build_model("resnet_mini", split=(1, 1, 2, 1))
    assert model.split == (1, 1, 2, 1)
    assert len(extract_subnetwork(model, "TTTT").layer3) == 2
    with pytest.raises(Exception, match="stage 1 has 3 blocks"):
        build_model("resnet_mini", split=(3, 1, 1, 1))
    with pytest.raises(Exception, match="4 numbers"):
        build_model("resnet_mini", split=(1, 1, 1))


def test_mobilenet_outer_layers_follow_the_first_and_last_flags():
    model = build_model("mobilenet_v2")
    stage = {p: m.stage for p, m in model.skip_aware_modules()}
    assert stage["features.0.1"] == 0 and stage["features.1.conv.2"] == 0
    assert stage["features.17.conv.3"] == 4 and stage["features.18.1"] == 4
    assert stage["features.2.conv.0.1"] == 0 and "features.3.conv.0.1" not in stage


def test_swin_patch_merging_follows_the_next_stage_and_base_path_has_no_stochastic_depth():
    model = build_model("swin_t")
    stage = {p: m.stage for p, m in model.skip_aware_modules()}
    assert stage["features.2.norm"] == 1 and stage["features.6.norm"] == 3
    assert "features.0.2" not in stage  # the patch embedding's norm is shared
    drop = model.net.features[5][0].stochastic_depth
    assert isinstance(drop, SkipAwareStochasticDepth) and drop.p > 0
    x = torch.randn(3, 4)
    model.train()
    model.selection.flags = (False, False, True, False)
    assert torch.equal(drop(x), x)  # skipped stage: identity even in training
    model.selection.flags = (False, False, False, False)
    torch.manual_seed(0)
    drop.p = 0.999
    assert not torch.equal(drop(x), x)


def test_features_of_every_stage():
    model = build_model("vit_mini").eval()
    logits, features = model(small_input(ARCHS.get("vit_mini")), "TFTF", return_features=True)
    assert len(features) == 4 and all(f.shape[-1] == 64 for f in features)
    assert model.selection.features is None


def test_shared_prefixes_give_identical_outputs():
    model = build_model("resnet_mini").eval()
    x = small_input(ARCHS.get("resnet_mini"))
    with torch.no_grad():
        separate = [model(x, c) for c in model.configs()]
        with shared_prefixes(model) as cache:
            shared = [model(x, c) for c in model.configs()]
            assert len(cache.outputs) == model.num_stages  # only the current prefixes
        assert model.selection.stage_cache is None
        with shared_prefixes(model):  # any order is still exact
            shuffled = {c: model(x, c) for c in reversed(model.configs())}
    for a, b, c in zip(separate, shared, (shuffled[c] for c in model.configs())):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
        torch.testing.assert_close(a, c, rtol=0, atol=0)


def test_individual_network_has_the_base_net_parameters():
    adaptive = build_model("resnet_mini")
    base = extract_subnetwork(adaptive, "TTTT")
    individual = build_individual("resnet_mini", "TTTT")
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    unused_norms = sum(p.numel() for n, p in adaptive.named_parameters() if ".skip." in n)
    assert count(individual) == count(base)
    skipped_blocks = sum(p.numel() for b in adaptive.blocks() if not b.mandatory for p in b.module.parameters())
    assert count(individual) == count(adaptive) - unused_norms - skipped_blocks
    assert [n for n, _ in individual.net.named_parameters()] == [n for n, _ in base.named_parameters()]
    assert individual.configs() == [SkipConfig.parse("TTTT", 4)]
    with pytest.raises(Exception, match="fixed-depth"):
        individual(torch.randn(1, 1, 28, 28), "FFFF")


def test_in_channels_and_image_size():
    model = build_model("vit_mini", num_classes=100, in_channels=3, image_size=32)
    assert model(torch.randn(1, 3, 32, 32), "base").shape == (1, 100)
    with pytest.raises(Exception, match="divisible by its patch size"):
        build_model("vit_b_16", image_size=28)
    assert isinstance(build_model("resnet_mini", in_channels=3).net.conv1, nn.Conv2d)


def test_adaptive_and_fixed_depth_networks_offer_one_interface():
    net, layout = ARCHS.get("resnet_mini").build_net(10, 1, 28)
    config = resolve_config("resnet_mini", split=(1, 1, 2, 1))
    adaptive = AdaptiveDepthNetwork(net, layout, config)
    depth = SkipConfig.parse("TFTF", 4)
    fixed = FixedDepthNetwork(extract_subnetwork(adaptive, depth), layout, adaptive.config, depth)
    # config is set by the constructor: the very settings that rebuild each network
    assert adaptive.config == config and "config" in vars(adaptive)
    assert fixed.config == dataclasses.replace(config, skip_aware_norms=False) and "config" in vars(fixed)
    assert AdaptiveDepthNetwork(*ARCHS.get("resnet_mini").build_net(10, 1, 28),
                                resolve_config("resnet_mini")).config.split == (2, 2, 3, 2)  # resolved
    assert build_individual("resnet_mini", depth, split=(1, 1, 2, 1)).config == fixed.config
    for model in (adaptive, fixed):
        assert isinstance(model, DepthNetwork)
        assert all(model.parse_skip(str(c)) == c for c in model.configs())
        assert [b.module for b in model.blocks()] == [model.net.get_submodule(b.path) for b in model.blocks()]
    assert adaptive.configs() == SkipConfig.all(4) and adaptive.parse_skip(None) == SkipConfig.super_net(4)
    assert fixed.configs() == [depth] and fixed.parse_skip(None) == depth
    with pytest.raises(ReproError, match="fixed-depth"):
        fixed.parse_skip("FFFF")
    assert is_adaptive(adaptive) and not is_adaptive(fixed)
    # the fixed network lists the blocks of its depth: all but the skippable ones of stages 1 and 3
    kept = [b for b in adaptive.blocks() if b.mandatory or not depth.flags[b.stage]]
    assert len(kept) < len(adaptive.blocks())
    assert [(b.stage, b.index, b.mandatory, b.path) for b in fixed.blocks()] == \
        [(b.stage, b.index, b.mandatory, b.path) for b in kept]
