"""ADN with skip-aware projection shortcuts (issue 13, beyond the paper): the extra norms,
extraction, checkpoints, the spec hash and one smoke training run."""
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from repro.checkpoints import load_checkpoint, save_checkpoint
from repro.errors import ReproError
from repro.methods import METHODS, check_options
from repro.models import ARCHS, build_model, extract_subnetwork, has_shortcut_norms
from repro.models.adaptive import SkipAware, SkipAwareBatchNorm2d
from repro.presets import make_spec
from tests.conftest import needs_fashion, small_input

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from cli import cli  # noqa: E402


def skip_aware_paths(model) -> dict[str, int]:
    return {p: m.stage for p, m in model.skip_aware_modules()}


def perturb_skip_norms(model) -> None:
    """Skip-aware norms start as copies; make each set differ so that using the wrong one shows."""
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for _, module in model.skip_aware_modules():
            if isinstance(module, SkipAwareBatchNorm2d):
                for norm in (module, module.skip):
                    norm.running_mean.copy_(torch.randn(norm.running_mean.shape, generator=generator) * 0.1)
                    norm.running_var.copy_(torch.rand(norm.running_var.shape, generator=generator) + 0.5)
                    norm.weight.copy_(torch.rand(norm.weight.shape, generator=generator) + 0.5)


def test_one_extra_norm_per_projection_shortcut_of_a_mandatory_block():
    official = skip_aware_paths(build_model("resnet_mini"))
    variant = skip_aware_paths(build_model("resnet_mini", skip_aware_shortcuts=True))
    # resnet_mini's stages all start with a projection shortcut (first block, mandatory)
    assert set(variant) - set(official) == {f"layer{i}.0.downsample.1" for i in range(1, 5)}
    assert set(official) <= set(variant)
    assert all(variant[f"layer{i}.0.downsample.1"] == i - 1 for i in range(1, 5))  # its own stage's flag
    model = build_model("resnet50", skip_aware_shortcuts=True)
    extra = {k for k in model.state_dict() if "downsample.1.skip." in k}
    assert {k.split(".downsample")[0] for k in extra} == {f"net.layer{i}.0" for i in range(1, 5)}
    assert model.config.skip_aware_shortcuts and not build_model("resnet50").config.skip_aware_shortcuts


def test_extracted_subnetworks_equal_the_adaptive_model_for_every_config():
    model = build_model("resnet_mini", skip_aware_shortcuts=True).eval()
    perturb_skip_norms(model)
    x = small_input(ARCHS.get("resnet_mini"))
    outputs = {}
    with torch.no_grad():
        for config in model.configs():
            plain = extract_subnetwork(model, config).eval()
            assert not any(isinstance(m, SkipAware) for m in plain.modules())
            outputs[str(config)] = model(x, config)
            torch.testing.assert_close(plain(x), outputs[str(config)], rtol=0, atol=0)
    # the shortcut norms switch: TFFF differs from FFFF even in stage 1's shortcut alone
    assert not torch.equal(outputs["TFFF"], outputs["FFFF"])


def test_checkpoint_round_trip_rebuilds_the_extra_norms(tmp_path):
    model = build_model("resnet_mini", skip_aware_shortcuts=True).eval()
    perturb_skip_norms(model)
    path = save_checkpoint(tmp_path / "model.pt", model)
    loaded = load_checkpoint(path)
    assert loaded.config == model.config and loaded.config.skip_aware_shortcuts
    x = small_input(ARCHS.get("resnet_mini"))
    with torch.no_grad():
        for config in ("FFFF", "TFTF", "TTTT"):
            torch.testing.assert_close(loaded(x, config), model(x, config), rtol=0, atol=0)


def test_option_is_in_the_hash_only_when_set_and_only_for_adn():
    default = make_spec("resnet_mini", "adn", "fake", "smoke")
    assert make_spec("resnet_mini", "adn", "fake", "smoke", options={"skip_aware_shortcuts": False}).hash == default.hash
    variant = make_spec("resnet_mini", "adn", "fake", "smoke", options={"skip_aware_shortcuts": True})
    assert variant.hash != default.hash
    check_options(variant)
    assert "skip_aware_shortcuts" in METHODS.get("adn").reads
    with pytest.raises(ReproError, match="does not apply"):
        check_options(make_spec("resnet_mini", "individual", "fake", "smoke",
                                options={"depth": "TTTT", "skip_aware_shortcuts": True}))


def test_networks_without_shared_shortcut_norms_refuse_the_option():
    assert has_shortcut_norms("resnet_mini") and not has_shortcut_norms("vit_mini")
    with pytest.raises(ReproError, match="no shared shortcut norms"):
        build_model("vit_mini", skip_aware_shortcuts=True)
    with pytest.raises(ReproError, match="need skip-aware norms"):
        build_model("resnet_mini", skip_aware_norms=False, skip_aware_shortcuts=True)


def test_methods_lists_the_option():
    result = CliRunner().invoke(cli, ["methods"])
    assert result.exit_code == 0 and "--skip-aware-shortcuts" in result.output


@pytest.mark.slow
@needs_fashion
def test_smoke_training_run(tmp_path):
    result = CliRunner().invoke(cli, ["train", "--arch", "resnet_mini", "--preset", "smoke", "--skip-aware-shortcuts",
                                      "--results-dir", str(tmp_path), "--no-progress", "--device", "cpu"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    (model_file,) = tmp_path.glob("smoke/runs/*/model.pt")
    model = load_checkpoint(model_file)
    assert model.config.skip_aware_shortcuts
    assert "layer2.0.downsample.1" in skip_aware_paths(model)
