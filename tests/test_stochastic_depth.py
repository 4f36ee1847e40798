"""The stochastic-depth (LayerDrop-style) baseline (issue 18): skippable blocks are dropped
per sample in training only, the network is an ADN without skip-aware norms, and a smoke
run trains and evaluates its sub-networks."""
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from click.testing import CliRunner

from repro.checkpoints import load_checkpoint
from repro.errors import ReproError
from repro.methods import METHODS, check_options
from repro.presets import make_spec

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from cli import cli  # noqa: E402
from tests.conftest import needs_fashion

INFO = SimpleNamespace(name="fake", num_classes=10, in_channels=1, image_size=16)


def build(arch="resnet_mini", **options):
    spec = make_spec(arch, "stochastic_depth", "fake", "smoke", options=options)
    check_options(spec)
    return METHODS.get("stochastic_depth").build_model(spec, INFO)


def test_no_skip_aware_norms_and_the_default_rate():
    model = build()
    assert not any(".skip." in name for name in model.state_dict())
    assert make_spec("resnet_mini", "stochastic_depth", "fake", "smoke").options.drop_rate == 0.2


def test_each_sample_runs_one_of_the_sub_networks_in_training_and_the_super_net_in_evaluation():
    # vit_mini: no BatchNorm and no dropout, so a sample's output depends on its own path only
    model = build("vit_mini", drop_rate=0.5)
    torch.nn.init.normal_(model.net.heads.head.weight)  # torchvision starts it at zero: all logits 0
    x = torch.randn(16, 1, 16, 16)
    with torch.no_grad():
        model.eval()
        per_config = torch.stack([model(x, c) for c in model.configs()])  # (configs, batch, classes)
        torch.testing.assert_close(model(x), per_config[0])  # evaluation: the super-net, no drops
        model.train()
        torch.manual_seed(0)
        trained = model(x)
    distance = (per_config - trained).abs().amax(-1)  # (configs, batch)
    matched = distance.argmin(0)
    assert torch.all(distance.min(0).values < 1e-3)  # (eval-mode attention takes a fused kernel)
    assert len(set(matched.tolist())) > 2  # samples took different paths


def test_rate_zero_and_near_one_are_the_super_and_base_nets_in_training():
    x = torch.randn(4, 1, 16, 16)
    for rate, config in ((0.0, "FFFF"), (1 - 1e-9, "TTTT")):
        model = build(drop_rate=rate).train()
        with torch.no_grad():
            torch.testing.assert_close(model(x), model(x, config), rtol=0, atol=0)


def test_options_are_checked():
    with pytest.raises(ReproError, match="drop-rate must be in"):
        build(drop_rate=1.0)
    with pytest.raises(ReproError, match="does not apply"):
        check_options(make_spec("resnet_mini", "adn", "fake", "smoke", options={"drop_rate": 0.1}))
    result = CliRunner().invoke(cli, ["methods"])
    assert "stochastic_depth" in result.output


@pytest.mark.slow
@needs_fashion
def test_smoke_training_run(tmp_path):
    result = CliRunner().invoke(cli, ["train", "--arch", "resnet_mini", "--method", "stochastic_depth", "--preset",
                                      "smoke", "--results-dir", str(tmp_path), "--no-progress", "--device", "cpu"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    (model_file,) = tmp_path.glob("smoke/runs/*/model.pt")
    model = load_checkpoint(model_file)
    assert not model.config.skip_aware_norms and len(model.configs()) == 16
    assert "TTTT" in result.output and "FFFF" in result.output
