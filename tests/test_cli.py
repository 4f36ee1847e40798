"""The command line: output, files, and one-line errors with a non-zero exit."""
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from cli import cli  # noqa: E402


def run(*args):
    return CliRunner().invoke(cli, list(args))


def test_flops_writes_one_row_per_subnetwork(tmp_path):
    out = tmp_path / "flops.csv"
    result = run("flops", "--arch", "resnet_mini", "--output", str(out))
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out)
    assert list(table.columns) == ["skip", "gflops", "params_m"]
    assert len(table) == 16 and table["skip"].iloc[0] == "FFFF" and table["skip"].iloc[-1] == "TTTT"
    assert table["gflops"].iloc[0] > table["gflops"].iloc[-1] > 0


def test_archs_lists_the_registry():
    result = run("archs")
    assert result.exit_code == 0
    for name in ("resnet50", "mobilenet_v2", "vit_b_16", "vit_b_32", "swin_t", "resnet_mini", "vit_mini"):
        assert name in result.output
    assert "4.1115" in result.output  # ResNet50 super-net GFLOPs


@pytest.mark.parametrize("args, message", [
    (["flops", "--arch", "resnet_mini", "--split", "1,1"], "expected 4 numbers"),
    (["flops", "--arch", "resnet_mini", "--split", "a,b"], "comma-separated"),
    (["flops", "--arch", "vit_b_16", "--resolution", "100"], "divisible by its patch size"),
])
def test_bad_input_is_one_line_and_exit_2(args, message):
    result = subprocess.run([sys.executable, "cli.py", *args], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_unwritable_output_is_refused(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = subprocess.run([sys.executable, "cli.py", "flops", "--arch", "resnet_mini", "--output",
                             str(blocker / "out.csv")], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 2 and "cannot write" in result.stderr
    assert blocker.read_text() == "x"
