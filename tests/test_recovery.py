"""No work lost to a hard kill, and a prompt stop during the final evaluation (issue 11):
mid-epoch recovery checkpoints resume to bit-identical weights after SIGKILL; SIGTERM during
the final evaluation stops at once and --resume evaluates again."""
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from repro.checkpoints import load_checkpoint
from repro.presets import make_spec
from repro.train import Runtime, train
from tests.conftest import needs_fashion

ROOT = Path(__file__).resolve().parents[1]
# 1,600 images at batch 16: 100 steps; logging points (and, with --checkpoint-minutes 0,
# recovery checkpoints) every 50 steps
ARGS = ["--arch", "resnet_mini", "--method", "adn", "--preset", "smoke", "--train-subset", "1600"]
SPEC = dict(arch="resnet_mini", method="adn", dataset="fashion_mnist", preset="smoke", recipe={"train_subset": 1600})


def start(results_dir, *extra):
    command = [sys.executable, "cli.py", "train", *ARGS, "--results-dir", str(results_dir), "--no-progress", *extra]
    return subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(condition, process, seconds=240):
    deadline = time.time() + seconds
    while time.time() < deadline and process.poll() is None:
        found = condition()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"never happened; the run said: {process.communicate()}")


def run_dir(results_dir):
    found = list(Path(results_dir).glob("smoke/runs/*"))
    return found[0] if found else None


def segments(directory):
    try:
        return json.loads((directory / "env.json").read_text())["segments"] or [{}]
    except (OSError, ValueError, KeyError):  # not written yet
        return [{}]


def weights_equal(a, b):
    a, b = load_checkpoint(a).state_dict(), load_checkpoint(b).state_dict()
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)


@needs_fashion
@pytest.mark.slow
def test_sigkill_mid_epoch_resumes_from_the_recovery_checkpoint_to_identical_weights(tmp_path):
    killed = tmp_path / "killed"
    process = start(killed, "--checkpoint-minutes", "0")
    # the record notes each checkpoint right after saving it
    directory = wait_for(lambda: run_dir(killed) if run_dir(killed) and "checkpointed_at" in
                         segments(run_dir(killed))[-1] else None, process)
    process.send_signal(signal.SIGKILL)  # no handler runs: only the recovery checkpoint survives
    process.communicate()
    saved = torch.load(directory / "checkpoint.pt", weights_only=True)
    assert saved["train_state"]["epoch"] == 0 and saved["train_state"]["step"] == 50  # mid-epoch
    spec = make_spec(**SPEC)
    resumed = train(spec, Runtime(results_dir=str(killed), resume=True, progress=False))
    env = resumed.record.env()
    first, second = env["segments"]
    assert second["resumed_from"] == {"epoch": 0, "step": 50}
    # the killed segment is closed as such, its time counted up to its checkpoint
    assert first["status"] == "killed" and first["wall_s"] == first["wall_s_to_checkpoint"] > 0
    assert env["wall_s"] == pytest.approx(first["wall_s"] + second["wall_s"], abs=0.11)
    assert resumed.record.wall_time() == (env["wall_s"], False)
    straight = train(spec, Runtime(results_dir=str(tmp_path / "straight"), progress=False))
    weights_equal(resumed.record.model_file, straight.record.model_file)


@needs_fashion
@pytest.mark.slow
def test_sigterm_during_the_final_evaluation_stops_at_once_and_resume_evaluates_again(tmp_path):
    process = start(tmp_path)
    # the epoch's metrics line is written just before its checkpoint and the final evaluation
    directory = wait_for(lambda: run_dir(tmp_path) if run_dir(tmp_path) and
                         (run_dir(tmp_path) / "metrics.jsonl").is_file() and
                         (run_dir(tmp_path) / "metrics.jsonl").read_text().strip() else None, process)
    process.send_signal(signal.SIGTERM)
    started = time.time()
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 2 and time.time() - started < 20, stderr
    assert "--resume" in stderr and "Traceback" not in stderr
    env = json.loads((directory / "env.json").read_text())
    assert env["status"] == "interrupted" and not (directory / "eval.csv").exists()
    resumed = train(make_spec(**SPEC), Runtime(results_dir=str(tmp_path), resume=True, progress=False))
    assert resumed.record.is_finished() and len(resumed.record.metrics()) == 1
