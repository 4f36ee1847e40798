"""Residual norm ratios (paper Figure 3) and stage Grad-CAMs (paper Figure 8)."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from repro.errors import ReproError
from repro.models import build_individual, build_model
from repro.measure.probes import residual_norm_ratios, stage_grad_cams

COLUMNS = ["stage", "block", "role", "path", "ratio_mean", "ratio_std", "images"]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # These machines are shared: two OpenMP threads competing with other processes for two
    # cores spin-wait and run ~100x slower than one thread.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _images(n=4):
    return torch.randn(n, 1, 28, 28)


def _no_hooks(model):
    return all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


def _capture(module):
    """A hook recording the last input and output of ``module``; returns (store, handle)."""
    store = {}
    handle = module.register_forward_hook(lambda m, args, out: store.update(input=args[0], output=out))
    return store, handle


# --------------------------------------------------------------------------- norm ratios
def test_one_row_per_running_block():
    model = build_model("resnet_mini")
    table = residual_norm_ratios(model, _images())
    assert list(table.columns) == COLUMNS
    assert len(table) == 16 and (table.images == 4).all()
    assert list(table.role).count("skippable") == 7
    assert list(table.stage) == [1] * 3 + [2] * 4 + [3] * 6 + [4] * 3
    assert list(table.block[:3]) == [1, 2, 3] and table.path[0] == "layer1.0"
    assert (table.ratio_mean > 0).all() and (table.ratio_std >= 0).all()
    base = residual_norm_ratios(model, _images(), "TTTT")
    assert len(base) == 9 and set(base.role) == {"mandatory"}


def test_a_zero_residual_branch_gives_zero_ratios():
    model = build_model("resnet_mini")
    with torch.no_grad():
        for block in model.blocks():
            for bn in block.module.bn3.modules():  # the main norm and its skip-aware copy
                if isinstance(bn, nn.BatchNorm2d):
                    bn.weight.zero_()
                    bn.bias.zero_()
    for skip in ("FFFF", "TFTF"):
        assert (residual_norm_ratios(model, _images(), skip).ratio_mean == 0).all()


@pytest.mark.parametrize("skip, path", [("FFFF", "layer2.0"), ("FFFF", "layer3.4"), ("TTTT", "layer2.0")])
def test_ratio_equals_a_direct_computation(skip, path):
    model = build_model("resnet_mini").eval()
    block = model.net.get_submodule(path)
    if hasattr(block.bn3, "skip"):  # make the skip-aware norm differ, so using the wrong one shows
        with torch.no_grad():
            block.bn3.skip.weight.uniform_(2, 3)
    images = _images()
    table = residual_norm_ratios(model, images, skip).set_index("path")

    store, handle = _capture(block)
    with torch.no_grad():
        model(images, skip)  # also leaves the selection at ``skip`` for the calls below
        h = store["input"]
        branch = F.relu(block.bn1(block.conv1(h)))
        branch = F.relu(block.bn2(block.conv2(branch)))
        branch = block.bn3(block.conv3(branch))
        shortcut = block.downsample(h) if block.downsample is not None else h
    handle.remove()
    ratios = branch.flatten(1).norm(dim=1) / shortcut.flatten(1).norm(dim=1)
    assert table.ratio_mean[path] == pytest.approx(ratios.mean().item(), rel=1e-5)
    assert table.ratio_std[path] == pytest.approx(ratios.std().item(), rel=1e-4)


def test_vit_ratio_is_output_minus_input():
    model = build_model("vit_mini").eval()
    images = _images()
    table = residual_norm_ratios(model, images).set_index("path")
    assert len(table) == 12
    path = "encoder.layers.encoder_layer_5"
    store, handle = _capture(model.net.get_submodule(path))
    with torch.no_grad():
        model(images)
    handle.remove()
    h = store["input"].flatten(1)
    expected = ((store["output"].flatten(1) - h).norm(dim=1) / h.norm(dim=1)).mean()
    assert table.ratio_mean[path] == pytest.approx(expected.item(), rel=1e-5)


def test_fixed_depth_network_and_chunked_batches():
    model = build_individual("resnet_mini", "TTFF")
    images = _images(5)
    table = residual_norm_ratios(model, images)
    assert len(table) == 2 + 2 + 6 + 3
    assert list(table.path) == [b.path for b in model.blocks()]
    chunked = residual_norm_ratios(model, images, batch_size=2)  # eval mode: chunks do not matter
    assert (chunked.images == 5).all()
    assert chunked.ratio_mean.tolist() == pytest.approx(table.ratio_mean.tolist(), rel=1e-5)


def test_mobilenet_blocks_without_residual_are_left_out():
    model = build_model("mobilenet_v2_mini")
    table = residual_norm_ratios(model, _images())
    residual = [b.path for b in model.blocks() if b.module.use_res_connect]
    assert list(table.path) == residual and len(residual) < len(model.blocks())


def test_hooks_removed_and_mode_restored_even_on_error():
    model = build_model("resnet_mini").train()
    residual_norm_ratios(model, _images())
    assert _no_hooks(model) and model.training
    with pytest.raises(RuntimeError):
        residual_norm_ratios(model, torch.randn(2, 3, 28, 28))  # wrong channel count: fails mid-forward
    assert _no_hooks(model) and model.training


# --------------------------------------------------------------------------- Grad-CAM
def _check_cams(cams, paths, n=4):
    assert list(cams) == paths
    for cam in cams.values():
        assert cam.shape == (n, 28, 28)
        assert cam.min() >= 0 and cam.max() <= 1


def test_grad_cams_of_a_resnet_stage():
    model = build_model("resnet_mini").train()
    cams = stage_grad_cams(model, _images(), stage=3)
    _check_cams(cams, [f"layer3.{i}" for i in range(6)])
    assert all(cam.flatten(1).amax(dim=1).eq(1).all() for cam in cams.values())  # normalised per image
    _check_cams(stage_grad_cams(model, _images(), stage=3, skip="TTTT", target_classes=[0, 1, 2, 3]),
                [f"layer3.{i}" for i in range(3)])
    assert _no_hooks(model) and model.training
    assert all(p.requires_grad and p.grad is None for p in model.parameters())


def test_grad_cams_of_mobilenet_and_vit_stages():
    mobilenet = build_model("mobilenet_v2_mini")
    stage = [b.path for b in mobilenet.blocks() if b.stage == 1]
    _check_cams(stage_grad_cams(mobilenet, _images(), stage=2, target_classes=3), stage)

    vit = build_model("vit_mini")
    nn.init.normal_(vit.net.heads.head.weight)  # torchvision zero-inits the head: no gradient at all
    cams = stage_grad_cams(vit, _images(), stage=2, skip="FTFF")
    _check_cams(cams, ["encoder.layers.encoder_layer_3", "encoder.layers.encoder_layer_4"])
    assert all(cam.max() > 0 for cam in cams.values())
    assert _no_hooks(vit)


def test_grad_cam_errors_are_one_line():
    model = build_model("resnet_mini")
    with pytest.raises(ReproError, match="stages 1 to 4"):
        stage_grad_cams(model, _images(), stage=5)
    with pytest.raises(ReproError, match="target classes"):
        stage_grad_cams(model, _images(), stage=1, target_classes=[1, 2])
    assert _no_hooks(model)
