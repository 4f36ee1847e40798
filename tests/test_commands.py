"""The measuring commands: evaluate, latency, norms; their outputs and their refusals."""
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from click.testing import CliRunner

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from cli import cli  # noqa: E402
from repro.checkpoints import save_checkpoint  # noqa: E402
from repro.data import load_data  # noqa: E402
from repro.evaluate import evaluate  # noqa: E402
from repro.models import build_individual, build_model  # noqa: E402
from tests.conftest import needs_fashion


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def run_process(*args):
    return subprocess.run([sys.executable, "cli.py", *map(str, args)], cwd=ROOT, capture_output=True, text=True)


@pytest.fixture(scope="module")
def adn_checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = build_model("resnet_mini", 10)
    # Non-trivial norm statistics, so that skip-aware norms change the outputs.
    model.train()
    with torch.no_grad():
        for config in ("FFFF", "TTTT", "TFTF"):
            model(torch.randn(64, 1, 28, 28), config)
    path = tmp_path_factory.mktemp("ckpt") / "adn.pt"
    save_checkpoint(path, model.eval())
    return path, model


@needs_fashion
def test_evaluate_reports_every_subnetwork_equal_to_one_by_one(adn_checkpoint, tmp_path):
    path, model = adn_checkpoint
    out = tmp_path / "eval.csv"
    result = run("evaluate", path, "--dataset", "fashion_mnist", "--test-subset", 300, "--batch-size", 128,
                 "--output", out)
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out)
    assert list(table.columns) == ["skip", "acc1_pct", "acc5_pct", "loss", "gflops", "params_m"]
    assert len(table) == 16 and table["skip"].iloc[0] == "FFFF"
    data = load_data("fashion_mnist", batch_size=128, test_subset=300, augment=False)
    for config in ("FFFF", "TFTF", "TTTT"):
        alone = evaluate(model, data.test, [model.parse_skip(config)], share_prefixes=False)[0]
        row = table[table["skip"] == config].iloc[0]
        assert row["acc1_pct"] == pytest.approx(alone.acc1_pct, abs=1e-9)
        assert row["loss"] == pytest.approx(alone.loss, rel=1e-6)
    assert table["gflops"].iloc[0] > table["gflops"].iloc[-1]


@needs_fashion
def test_evaluate_refuses_a_checkpoint_of_another_architecture_or_class_count(adn_checkpoint, tmp_path):
    path, _ = adn_checkpoint
    result = run_process("evaluate", path, "--arch", "vit_mini", "--dataset", "fashion_mnist")
    assert result.returncode == 2 and "is a resnet_mini checkpoint, not vit_mini" in result.stderr
    wrong = tmp_path / "hundred.pt"
    save_checkpoint(wrong, build_individual("resnet_mini", "FFFF", 100))
    result = run_process("evaluate", wrong, "--dataset", "fashion_mnist", "--test-subset", 10)
    assert result.returncode == 2 and "100 classes" in result.stderr
    assert "Traceback" not in result.stderr


def test_evaluate_refuses_an_unwritable_output_before_any_work(adn_checkpoint, tmp_path):
    path, _ = adn_checkpoint
    blocker = tmp_path / "file"
    blocker.write_text("keep")
    result = run_process("evaluate", path, "--output", blocker / "eval.csv")
    assert result.returncode == 2 and "cannot write" in result.stderr
    assert blocker.read_text() == "keep"


def test_latency_times_every_subnetwork(tmp_path):
    out = tmp_path / "latency.csv"
    result = run("latency", "--arch", "resnet_mini", "--repeats", 3, "--threads", 1, "--output", out)
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out)
    assert len(table) == 16 and set(table["skip"]) >= {"FFFF", "TTTT"}
    assert (table["latency_ms"] > 0).all() and (table["batch_size"] == 1).all()
    assert table.set_index("skip").loc["FFFF", "gflops"] > table.set_index("skip").loc["TTTT", "gflops"]
    assert set(table["energy_source"]) <= {"nvml", "rapl", "unavailable"}


@needs_fashion
def test_norms_of_an_adn_and_of_an_individual_network(adn_checkpoint, tmp_path):
    path, _ = adn_checkpoint
    out = tmp_path / "norms.csv"
    result = run("norms", path, "--images", 16, "--output", out)
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out)
    assert len(table) == 3 + 4 + 6 + 3  # every block of the super-net
    assert list(table["role"]).count("skippable") == 1 + 2 + 3 + 1
    assert (table["ratio_mean"] > 0).all() and (table["images"] == 16).all()
    individual = tmp_path / "base.pt"
    save_checkpoint(individual, build_individual("resnet_mini", "TTTT", 10))
    result = run("norms", individual, "--images", 8)
    assert result.exit_code == 0, result.output
    assert result.output.count("mandatory") == 2 + 2 + 3 + 2


@pytest.mark.parametrize("args, message", [
    (["reproduce", "table9"], "Invalid value"),
    (["reproduce", "table1", "--preset", "huge"], "Invalid value"),
    (["reproduce", "table1", "--seeds", "0"], "Invalid value"),
    (["norms", "missing.pt"], "checkpoint not found"),
])
def test_bad_reproduce_and_probe_arguments_fail_cleanly(args, message):
    result = run_process(*args)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
