"""GPU checks of the engine (run where CUDA exists, skipped elsewhere): AMP steps, the
captured (CUDA-graph) step against eager, a one-process NCCL run under torchrun, and
``latency --device cuda``."""
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from cli import cli
from repro.presets import make_spec
from repro.measure.train_cost import Workload
from repro.train import Runtime, train

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]
FAKE = {"train_subset": 256, "batch_size": 32, "val_size": 64, "test_subset": 64, "recalibrate_bn_images": 64}


def losses(steps, **engine):
    torch.manual_seed(0)
    images = torch.randn(64, 1, 28, 28, device="cuda")
    targets = torch.randint(0, 10, (64,), device="cuda")
    w = Workload("resnet_mini", "adn", None, images, targets, num_classes=10, channels_last=True, **engine)
    return [{k: float(v) for k, v in w.step().items()} for _ in range(steps)]


@pytest.mark.parametrize("amp", ["fp16", "bf16"])
def test_amp_run_on_the_gpu_finishes_with_finite_losses(tmp_path, amp):
    spec = make_spec("resnet_mini", "adn", "fake", "quick", recipe={**FAKE, "amp": amp})
    result = train(spec, Runtime(results_dir=str(tmp_path), device="cuda", progress=False))
    (line,) = result.record.metrics()
    assert all(torch.isfinite(torch.tensor(v)) for k, v in line.items() if k.startswith("train_loss"))


def test_captured_step_gives_the_eager_losses_over_50_steps():
    eager, captured = losses(50), losses(50, compile=True)
    for step, (a, b) in enumerate(zip(eager, captured)):
        for part in a:
            assert b[part] == pytest.approx(a[part], rel=1e-3, abs=1e-4), (step, part)


def test_one_process_nccl_run_under_torchrun(tmp_path):
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=1", "cli.py", "train",
               "--arch", "resnet_mini", "--dataset", "fake", "--preset", "quick", "--train-subset", "256",
               "--batch-size", "32", "--device", "cuda", "--results-dir", str(tmp_path), "--no-progress"]
    out = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    (record,) = tmp_path.glob("quick/runs/*/env.json")
    assert '"status": "finished"' in record.read_text()


def test_latency_on_the_gpu():
    result = CliRunner().invoke(cli, ["latency", "--arch", "resnet_mini", "--device", "cuda", "--repeats", "5"])
    assert result.exit_code == 0, result.output
    assert "TTTT" in result.output
