"""torchvision's other residual families as ADNs (issue 18), at their smallest input: every
sub-network runs, the super-net equals the plain torchvision model, extraction equals the
adaptive model, and torchvision state dicts load with skip-aware norms as copies."""
import pytest
import torch
import torchvision

from repro.checkpoints import load_checkpoint
from repro.models import ARCHS, AdaptiveDepthNetwork, build_model, extract_subnetwork, num_stages
from repro.models.adaptive import SkipAware, SkipAwareLayerNorm2d, SkipAwareStochasticDepth
from repro.models.registry import resolve_config

# name -> (blocks per stage, mandatory per stage)
NEW_ARCHS = {
    "resnet18": ((2, 2, 2, 2), (1, 1, 1, 1)),
    "resnet34": ((3, 4, 6, 3), (2, 2, 3, 2)),
    "resnet101": ((3, 4, 23, 3), (2, 2, 12, 2)),
    "resnet152": ((3, 8, 36, 3), (2, 4, 18, 2)),
    "resnext50_32x4d": ((3, 4, 6, 3), (2, 2, 3, 2)),
    "resnext101_32x8d": ((3, 4, 23, 3), (2, 2, 12, 2)),
    "wide_resnet50_2": ((3, 4, 6, 3), (2, 2, 3, 2)),
    "convnext_tiny": ((3, 3, 9, 3), (2, 2, 5, 2)),
    "convnext_small": ((3, 3, 27, 3), (2, 2, 14, 2)),
    "convnext_base": ((3, 3, 27, 3), (2, 2, 14, 2)),
    "swin_s": ((2, 2, 18, 2), (1, 1, 9, 1)),
    "swin_b": ((2, 2, 18, 2), (1, 1, 9, 1)),
    "vit_l_16": ((6, 6, 6, 6), (5, 5, 5, 5)),  # the last block of each group of 6 is skippable
    "efficientnet_b0": ((2, 2, 3, 3, 4), (1, 1, 2, 2, 2)),
    "regnet_y_400mf": ((3, 6, 6), (2, 3, 3)),  # the single-block first stage follows the second's flag
    "regnet_y_1_6gf": ((2, 6, 17, 2), (1, 3, 9, 1)),
}
BIGGEST = {"resnet152", "resnext101_32x8d", "convnext_base", "swin_b", "vit_l_16"}
params = [pytest.param(a, marks=pytest.mark.slow) if a in BIGGEST else a for a in NEW_ARCHS]
# loading checks every key and recognises the architecture among all registered ones: a few in the fast tier
LOAD_FAST = {"resnet18", "resnext50_32x4d", "convnext_tiny"}
load_params = [a if a in LOAD_FAST else pytest.param(a, marks=pytest.mark.slow) for a in NEW_ARCHS]


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def smallest(arch: str) -> int:
    return ARCHS.get(arch).min_resolution


def plain_torchvision(arch: str, size: int) -> torch.nn.Module:
    extra = {"image_size": size} if arch.startswith("vit") else {}
    return torchvision.models.get_model(arch, weights=None, **extra)


def test_every_new_arch_is_registered():
    assert set(NEW_ARCHS) <= set(ARCHS.names())


@pytest.mark.parametrize("arch", params)
def test_split_configs_and_extraction(arch):
    blocks, mandatory = NEW_ARCHS[arch]
    size = smallest(arch)
    model = build_model(arch, image_size=size).eval()
    assert tuple(len(s.blocks) for s in model.layout.stages) == blocks and model.split == mandatory
    # skip-aware norms live in mandatory blocks only
    skippable = {b.path for b in model.blocks() if not b.mandatory}
    assert not any(p.startswith(tuple(s + "." for s in skippable)) for p, _ in model.skip_aware_modules())
    x = torch.randn(1, 3, size, size)
    configs = model.configs()
    with torch.no_grad():
        outputs = {c: model(x, c) for c in configs}  # all 2^S sub-networks run
        for config in (configs[0], configs[-1], configs[len(configs) // 2 - 1]):  # super, base, one mixed
            plain = extract_subnetwork(model, config).eval()
            assert not any(isinstance(m, (SkipAware, AdaptiveDepthNetwork)) for m in plain.modules())
            torch.testing.assert_close(plain(x), outputs[config], rtol=0, atol=0)
    assert len(outputs) == 2 ** len(blocks)
    assert all(o.shape == (1, 1000) and torch.isfinite(o).all() for o in outputs.values())


@pytest.mark.parametrize("arch", params)
def test_super_net_with_copied_weights_equals_torchvision(arch):
    size = smallest(arch)
    reference = plain_torchvision(arch, size).eval()
    net, layout = ARCHS.get(arch).build_net(1000, 3, size)
    net.load_state_dict(reference.state_dict())
    model = AdaptiveDepthNetwork(net, layout, resolve_config(arch, 1000, 3, size)).eval()
    x = torch.randn(1, 3, size, size)
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(x), rtol=0, atol=0)


@pytest.mark.parametrize("arch", load_params)
def test_torchvision_weights_load_with_skip_aware_norms_as_copies(arch, tmp_path):
    reference = plain_torchvision(arch, 224)
    path = tmp_path / "weights.pth"
    torch.save(reference.state_dict(), path)  # what torchvision's pretrained files hold
    model = load_checkpoint(path, arch)
    state, expected = model.state_dict(), reference.state_dict()
    assert set(state) - {f"net.{k}" for k in expected} == {k for k in state if ".skip." in k}
    for key in state:
        assert torch.equal(state[key], expected[key.removeprefix("net.").replace(".skip.", ".")]), key
    assert load_checkpoint(path).config.arch == arch  # recognised from the keys alone


def test_convnext_downsampling_norms_follow_the_next_stage():
    model = build_model("convnext_tiny", image_size=32)
    stage = {p: m.stage for p, m in model.skip_aware_modules()}
    assert isinstance(model.net.features[2][0], SkipAwareLayerNorm2d)
    assert stage["features.2.0"] == 1 and stage["features.6.0"] == 3
    assert "features.0.1" not in stage and "classifier.0" not in stage  # stem and head stay shared
    assert stage["features.5.4.block.2"] == 2 and "features.5.5.block.2" not in stage
    assert isinstance(model.net.features[5][0].stochastic_depth, SkipAwareStochasticDepth)


def test_regnet_shortcut_norms_stay_shared_and_the_single_block_stage_follows_the_next():
    model = build_model("regnet_y_400mf", image_size=32)
    stage = {p: m.stage for p, m in model.skip_aware_modules()}
    assert stage["trunk_output.block1.block1-0.f.a.1"] == 0 and stage["trunk_output.block2.block2-1.f.c.1"] == 0
    assert not any(".proj." in p for p in stage) and "stem.1" not in stage  # shared, as ResNet's downsample
    assert "trunk_output.block2.block2-2.f.a.1" not in stage  # skippable block
    assert num_stages("regnet_y_1_6gf") == 4  # built on the meta device (see regnet.py)
