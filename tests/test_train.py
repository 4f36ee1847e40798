"""The training engine on real data: it learns, logs, reuses, resumes exactly, stops on NaN,
and runs under DDP with identical weights on every rank."""
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from repro.checkpoints import load_checkpoint
from repro.errors import ReproError
from repro.methods import METHODS
from repro.presets import make_spec
from repro.train import Runtime, TrainingDiverged, train
from tests.conftest import needs_fashion

ROOT = Path(__file__).resolve().parents[1]


def quiet(results_dir, **kw):
    return Runtime(results_dir=str(results_dir), progress=False, **kw)


def weights(path):
    return load_checkpoint(path).state_dict()


@needs_fashion
def test_smoke_adn_run_learns_and_leaves_a_record(tmp_path):
    spec = make_spec("resnet_mini", "adn", "fashion_mnist", "smoke", seed=0)
    result = train(spec, quiet(tmp_path))
    record = result.record
    assert record.path.name == spec.run_id and record.is_finished()
    assert json.loads(record.spec_file.read_text()) == spec.to_dict()
    env = record.env()
    assert env["status"] == "finished" and env["wall_s"] > 0 and env["versions"]["torch"] == torch.__version__
    assert "commit" in env["git"] and env["hardware"]["cpu_count"] >= 1
    (line,) = record.metrics()
    assert {"train_loss_ce", "train_loss_kd", "images_per_s", "epoch_s", "data_share_pct"} <= set(line)
    assert line["machine_load_5min"] >= 0
    assert line["val_acc1_pct_FFFF"] > 30 and line["val_acc1_pct_TTTT"] > 30  # chance: 10%
    table = record.evaluation()
    assert len(table) == 2 * 16 and set(table["split"]) == {"val", "test"}
    test = table[table["split"] == "test"].set_index("skip")
    assert test.loc["FFFF", "acc1_pct"] > 30 and test.loc["TTTT", "acc1_pct"] > 30
    assert test.loc["FFFF", "gflops"] > test.loc["TTTT", "gflops"]
    model = load_checkpoint(record.model_file)
    assert model.config.arch == "resnet_mini"

    # a finished run is reused, never overwritten
    before = {p.name: p.stat().st_mtime_ns for p in record.path.iterdir()}
    again = train(spec, quiet(tmp_path))
    assert again.reused and {p.name: p.stat().st_mtime_ns for p in record.path.iterdir()} == before


@needs_fashion
def test_unfinished_run_needs_resume(tmp_path):
    spec = make_spec("resnet_mini", "individual", "fashion_mnist", "smoke", options={"depth": "TTTT"},
                     recipe={"train_subset": 256})
    record_dir = tmp_path / "smoke" / "runs" / spec.run_id
    record_dir.mkdir(parents=True)
    (record_dir / "spec.json").write_text(json.dumps(spec.to_dict()))
    with pytest.raises(ReproError, match="--resume"):
        train(spec, quiet(tmp_path))


def _interrupted_run(results_dir, args):
    command = [sys.executable, "cli.py", "train", *args, "--results-dir", str(results_dir), "--no-progress"]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = None
    deadline = time.time() + 240
    while time.time() < deadline and process.poll() is None:
        found = list(Path(results_dir).glob("*/runs/*/metrics.jsonl"))
        if found and found[0].read_text().strip():
            metrics = found[0]
            break
        time.sleep(0.2)
    assert metrics is not None, process.communicate()
    time.sleep(1.5)  # into the second epoch
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    return process.returncode, stderr, metrics.parent


@needs_fashion
def test_interrupted_run_resumes_to_the_same_weights(tmp_path):
    args = ["--arch", "resnet_mini", "--method", "adn", "--preset", "smoke", "--epochs", "3",
            "--train-subset", "640"]
    spec = make_spec("resnet_mini", "adn", "fashion_mnist", "smoke", recipe={"epochs": 3, "train_subset": 640})
    returncode, stderr, run_dir = _interrupted_run(tmp_path / "interrupted", args)
    assert returncode == 2 and "--resume" in stderr and "Traceback" not in stderr
    assert json.loads((run_dir / "env.json").read_text())["status"] == "interrupted"
    assert (run_dir / "checkpoint.pt").is_file() and not (run_dir / "model.pt").exists()
    resumed = train(spec, quiet(tmp_path / "interrupted", resume=True))
    assert not resumed.reused and run_dir == resumed.record.path
    straight = train(spec, quiet(tmp_path / "straight"))
    a, b = weights(resumed.record.model_file), weights(straight.record.model_file)
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)
    assert [m["train_loss_ce"] for m in resumed.record.metrics()] == \
        pytest.approx([m["train_loss_ce"] for m in straight.record.metrics()], rel=1e-6)
    assert len(resumed.record.env()["segments"]) == 2


@needs_fashion
def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    spec = make_spec("resnet_mini", "individual", "fashion_mnist", "smoke", options={"depth": "FFFF"},
                     recipe={"epochs": 2, "train_subset": 256})
    method = METHODS.get("individual")
    original = method.train_step

    def poisoned(images, targets, ctx):
        result = original(images, targets, ctx)
        if ctx.global_step == 20:  # second epoch (16 steps per epoch)
            result.losses["ce"] = torch.tensor(float("nan"))
        return result

    monkeypatch.setitem(METHODS._entries, "individual", dataclasses.replace(method, train_step=poisoned))
    # read at the epoch's end (16 steps < LOG_EVERY_STEPS): the message names the steps since the last read
    with pytest.raises(TrainingDiverged, match="nan at epoch 2, steps 1-16; stopped without saving: the last good"):
        train(spec, quiet(tmp_path))
    run_dir = tmp_path / "smoke" / "runs" / spec.run_id
    saved = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    assert saved["train_state"]["epoch"] == 1 and saved["train_state"]["step"] == 0
    assert json.loads((run_dir / "env.json").read_text())["status"] == "failed"


@pytest.mark.parametrize("method, options, message", [
    ("adn", {"depth": "TTTT"}, "depth does not apply to method adn"),
    ("individual", {}, "needs --depth"),
    ("individual", {"depth": "TTT"}, "S=4"),
    ("adn", {"distill_strategy": "nope"}, "unknown distill strategy"),
])
def test_bad_options_fail_cleanly(tmp_path, method, options, message):
    spec = make_spec("resnet_mini", method, "fashion_mnist", "smoke", options=options)
    with pytest.raises(ReproError, match=message):
        train(spec, quiet(tmp_path))


def test_unknown_names_fail_cleanly():
    with pytest.raises(ReproError, match="unknown preset"):
        make_spec("resnet_mini", "adn", "fashion_mnist", "nope")
    with pytest.raises(ReproError, match="unknown training method"):
        make_spec("resnet_mini", "nope", "fashion_mnist", "smoke")


def test_bad_data_path_fails_cleanly(tmp_path):
    spec = make_spec("resnet_mini", "adn", "imagenet", "smoke")
    with pytest.raises(ReproError) as error:
        train(spec, quiet(tmp_path, data_path=str(tmp_path / "missing")))
    assert "\n" not in str(error.value)


def _ddp_worker(rank, world_size, port, results_dir, out_dir):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE=str(world_size))
    torch.set_num_threads(1)
    spec = make_spec("resnet_mini", "adn", "fake", "smoke",
                     recipe={"train_subset": None, "val_size": 32, "test_subset": None, "epochs": 2})
    result = train(spec, Runtime(results_dir=results_dir, device="cpu", progress=False))
    torch.save(result.model.state_dict(), Path(out_dir) / f"rank{rank}.pt")


def test_ddp_two_processes_end_with_identical_weights(tmp_path):
    port = 29500 + os.getpid() % 1000
    mp.spawn(_ddp_worker, args=(2, port, str(tmp_path / "results"), str(tmp_path)), nprocs=2, join=True)
    a = torch.load(tmp_path / "rank0.pt", weights_only=True)
    b = torch.load(tmp_path / "rank1.pt", weights_only=True)
    (saved,) = (tmp_path / "results").glob("*/runs/*/model.pt")
    assert a.keys() == b.keys() == load_checkpoint(saved).state_dict().keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)
    record = json.loads((saved.parent / "env.json").read_text())
    assert record["status"] == "finished" and len((saved.parent / "metrics.jsonl").read_text().splitlines()) == 2
