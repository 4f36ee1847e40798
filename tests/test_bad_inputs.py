"""Every bad command line is one short message on stderr, exit status 2, no traceback, and
no run directory left behind (issue 16). Each case names the value the message must quote."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from cli import cli  # noqa: E402
from repro.checkpoints import save_checkpoint  # noqa: E402
from repro.errors import ReproError  # noqa: E402
from repro.models import build_model  # noqa: E402
from repro.resume import Checkpointer  # noqa: E402
from repro.runs import RunRecord  # noqa: E402

TRAIN = ["train", "--arch", "resnet_mini", "--results-dir", "{results}"]
NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device")

# (id, command line, text the message must contain: the bad value or the file it names[, marks])
CASES = [
    # the cases
    ("cuda-without-gpu", ["latency", "--arch", "resnet_mini", "--device", "cuda"], "no CUDA device", NO_CUDA),
    ("lr-negative", TRAIN + ["--lr", "-1"], "-1"),
    ("evaluate-csv", ["evaluate", "{csv}"], "{csv}"),
    ("results-dir-in-proc", ["train", "--arch", "resnet_mini", "--results-dir", "/proc/x"], "/proc/x"),
    ("epochs-zero", TRAIN + ["--epochs", "0"], "0 is not in the range"),
    ("unknown-arch", ["flops", "--arch", "nope"], "'nope'"),
    ("unknown-artifact", ["reproduce", "table9", "--results-dir", "{results}"], "'table9'"),
    ("flops-output-unwritable", ["flops", "--arch", "resnet_mini", "--output", "/proc/x/flops.csv"], "/proc/x/flops.csv"),
    ("data-path-missing", TRAIN + ["--data-path", "{missing}"], "{missing}"),
    # recipe and method options
    ("batch-size-zero", TRAIN + ["--batch-size", "0"], "0 is not in the range"),
    ("lr-nan", TRAIN + ["--lr", "nan"], "'nan'"),
    ("lr-inf", TRAIN + ["--lr", "inf"], "'inf'"),
    ("lr-not-a-number", TRAIN + ["--lr", "fast"], "'fast'"),
    ("epochs-not-a-number", TRAIN + ["--epochs", "abc"], "'abc'"),
    ("label-smoothing-one", TRAIN + ["--label-smoothing", "1"], "1.0"),
    ("label-smoothing-negative", TRAIN + ["--label-smoothing", "-0.1"], "-0.1"),
    ("ema-decay-one", TRAIN + ["--ema-decay", "1"], "1.0"),
    ("ema-decay-zero", TRAIN + ["--ema-decay", "0"], "0.0"),
    ("train-subset-zero", TRAIN + ["--train-subset", "0"], "0 is not in the range"),
    ("seed-negative", TRAIN + ["--seed", "-1"], "-1"),
    ("alpha-above-one", TRAIN + ["--alpha", "1.5"], "1.5"),
    ("temperature-zero", TRAIN + ["--temperature", "0"], "0.0"),
    ("kl-topk-zero", TRAIN + ["--kl-topk", "0"], "0 is not in the range"),
    ("split-not-numbers", TRAIN + ["--split", "a,b"], "'a,b'"),
    ("depth-malformed", TRAIN + ["--method", "individual", "--depth", "TTTX"], "'TTTX'"),
    ("teacher-missing", TRAIN + ["--method", "kd_individual", "--depth", "TTTT", "--teacher", "{missing}"], "{missing}"),
    ("amp-on-cpu", TRAIN + ["--amp", "fp16", "--device", "cpu"], "amp=fp16"),
    ("unknown-method", TRAIN + ["--method", "nope"], "'nope'"),
    ("unknown-dataset", TRAIN + ["--dataset", "nope"], "'nope'"),
    ("unknown-preset", TRAIN + ["--preset", "nope"], "'nope'"),
    ("unknown-option", TRAIN + ["--bogus"], "--bogus"),
    ("unknown-command", ["nope"], "'nope'"),
    # run-time options
    ("workers-negative", TRAIN + ["--workers", "-1"], "-1"),
    ("device-malformed", TRAIN + ["--device", "gpu"], "'gpu'"),
    ("device-index-absent", TRAIN + ["--device", "cuda:99"], "cuda:99"),
    ("results-dir-is-a-file", ["train", "--arch", "resnet_mini", "--results-dir", "{file}"], "{file}"),
    ("results-dir-below-a-file", ["train", "--arch", "resnet_mini", "--results-dir", "{file}/sub"], "{file}"),
    # measuring commands
    ("evaluate-missing", ["evaluate", "{missing}"], "{missing}"),
    ("evaluate-truncated", ["evaluate", "{truncated}"], "{truncated}"),
    ("evaluate-batch-size-zero", ["evaluate", "{ckpt}", "--batch-size", "0"], "0 is not in the range"),
    ("evaluate-output-is-a-folder", ["evaluate", "{ckpt}", "--output", "{folder}"], "{folder}"),
    ("evaluate-device-malformed", ["evaluate", "{ckpt}", "--device", "cuda:x"], "'cuda:x'"),
    ("latency-repeats-zero", ["latency", "--arch", "resnet_mini", "--repeats", "0"], "0 is not in the range"),
    ("latency-threads-zero", ["latency", "--arch", "resnet_mini", "--threads", "0"], "0 is not in the range"),
    ("latency-resolution-negative", ["latency", "--arch", "resnet_mini", "--resolution", "-5"], "-5"),
    ("latency-checkpoint-csv", ["latency", "--arch", "resnet_mini", "--checkpoint", "{csv}"], "{csv}"),
    ("norms-csv", ["norms", "{csv}"], "{csv}"),
    ("norms-images-zero", ["norms", "{ckpt}", "--images", "0"], "0 is not in the range"),
    ("norms-data-path-missing", ["norms", "{ckpt}", "--data-path", "{missing}"], "{missing}"),
    ("flops-resolution-zero", ["flops", "--arch", "resnet_mini", "--resolution", "0"], "0 is not in the range"),
    ("flops-split-too-short", ["flops", "--arch", "resnet_mini", "--split", "1,1"], "expected 4 numbers"),
    ("reproduce-seeds-zero", ["reproduce", "table1", "--seeds", "0", "--results-dir", "{results}"], "0 is not in the range"),
    ("reproduce-results-dir-in-proc", ["reproduce", "table1", "--dry-run", "--results-dir", "/proc/x"], "/proc/x"),
]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("inputs")
    ckpt = save_checkpoint(root / "adn.pt", build_model("resnet_mini", 10))
    truncated = root / "truncated.pt"
    truncated.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])
    (root / "table.csv").write_text("skip,acc1_pct\nFFFF,90.0\n")
    (root / "file").write_text("not a folder")
    (root / "folder").mkdir()
    return {"ckpt": ckpt, "truncated": truncated, "csv": root / "table.csv", "file": root / "file",
            "folder": root / "folder", "missing": root / "nowhere"}


def fill(text: str, paths: dict) -> str:
    return text.format(**{k: str(v) for k, v in paths.items()})


def check_one_line(returncode: int, stdout: str, stderr: str, expected: str) -> None:
    assert returncode == 2, (stdout, stderr)
    lines = stderr.strip().splitlines()
    assert 1 <= len(lines) <= 3 and lines[0].startswith("error: "), stderr
    assert expected in stderr, stderr
    assert "Traceback" not in stderr + stdout and "Usage:" not in stderr, stderr


@pytest.mark.parametrize("args, expected", [pytest.param(*c[1:3], id=c[0], marks=c[3:]) for c in CASES])
def test_bad_command_line_is_one_line_and_exit_2(files, tmp_path, args, expected):
    results = tmp_path / "results"
    paths = {**files, "results": results}
    result = CliRunner().invoke(cli, [fill(a, paths) for a in args])
    check_one_line(result.exit_code, result.stdout, result.stderr, fill(expected, paths))
    assert not list(results.glob("*/runs/*")), "a run directory was created"


@pytest.mark.parametrize("args, expected", [
    (["flops", "--arch", "nope"], "'nope'"),
    (["evaluate", "{csv}"], "{csv}"),
    (TRAIN + ["--epochs", "0"], "0 is not in the range"),
])
def test_a_real_process_prints_only_the_line(files, tmp_path, args, expected):
    paths = {**files, "results": tmp_path / "results"}
    done = subprocess.run([sys.executable, "cli.py", *[fill(a, paths) for a in args]], cwd=ROOT,
                          capture_output=True, text=True)
    check_one_line(done.returncode, done.stdout, done.stderr, fill(expected, paths))
    assert len(done.stderr.strip().splitlines()) == 1 and done.stdout == ""


def test_help_still_works():
    result = CliRunner().invoke(cli, ["train", "--help"])
    assert result.exit_code == 0 and "--epochs" in result.stdout


# --------------------------------------------------------------------------- --resume (item 5)
FAKE_RUN = ["train", "--arch", "resnet_mini", "--method", "individual", "--depth", "TTTT", "--dataset", "fake",
            "--preset", "quick", "--train-subset", "64", "--batch-size", "32", "--no-progress"]


def unfinished_run(results: Path) -> Path:
    """Starts the fake run's record the way a killed first attempt leaves it."""
    from repro.presets import make_spec
    from repro.runs import RunRecord, run_directory

    spec = make_spec("resnet_mini", "individual", "fake", "quick", 0, recipe={"train_subset": 64, "batch_size": 32},
                     options={"depth": "TTTT"})
    record = RunRecord(run_directory(results, spec))
    record.create(spec)
    record.start_segment(None)
    record.end_segment(0.0, "failed")
    return record.path


def test_resume_from_a_corrupt_checkpoint_says_so_and_never_starts_over(files, tmp_path):
    run_dir = unfinished_run(tmp_path)
    checkpoint = run_dir / "checkpoint.pt"
    checkpoint.write_bytes(files["truncated"].read_bytes())
    before = {p.name: p.read_bytes() for p in run_dir.iterdir()}
    result = CliRunner().invoke(cli, FAKE_RUN + ["--resume", "--results-dir", str(tmp_path)])
    check_one_line(result.exit_code, result.stdout, result.stderr, str(checkpoint))
    assert "corrupt or truncated" in result.stderr and len(result.stderr) < 400
    assert {p.name: p.read_bytes() for p in run_dir.iterdir()} == before  # nothing touched


def test_resume_without_a_checkpoint_says_it_starts_over_and_records_it(tmp_path):
    run_dir = unfinished_run(tmp_path)
    result = CliRunner().invoke(cli, FAKE_RUN + ["--resume", "--results-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "no checkpoint to resume from" in result.stderr and "from the beginning" in result.stderr
    env = json.loads((run_dir / "env.json").read_text())
    assert env["status"] == "finished"
    assert env["segments"][-1]["restart"] == "no checkpoint" and env["segments"][-1]["resumed_from"] is None


def test_a_checkpoint_whose_record_was_lost_is_not_resumed_into_a_new_record(tmp_path):
    # a run's record files replaced (a tree copied over the run's folder) while its ignored
    # checkpoint stayed: resuming would start a record at the checkpoint's epoch
    finished = CliRunner().invoke(cli, FAKE_RUN + ["--results-dir", str(tmp_path)])
    assert finished.exit_code == 0, finished.output
    (run_dir,) = (tmp_path / "quick" / "runs").iterdir()
    assert (run_dir / "checkpoint.pt").exists()
    for name in ("env.json", "metrics.jsonl", "eval.csv"):
        (run_dir / name).unlink()
    before = {p.name: p.read_bytes() for p in run_dir.iterdir()}
    result = CliRunner().invoke(cli, FAKE_RUN + ["--resume", "--results-dir", str(tmp_path)])
    check_one_line(result.exit_code, result.stdout, result.stderr, "has a checkpoint after 1 epochs but its record holds 0")
    assert {p.name: p.read_bytes() for p in run_dir.iterdir()} == before  # nothing written
    # and it refuses before loading anything: the model, optimiser and random generators keep their state
    record = RunRecord(run_dir)
    model = build_model(record.spec().arch, num_classes=10)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    weights, rng = {k: v.clone() for k, v in model.state_dict().items()}, torch.get_rng_state()
    with pytest.raises(ReproError, match="record holds 0"):
        Checkpointer(record.spec(), record, model, optimizer, None, None, True).resume_point(resume=True)
    assert all(torch.equal(v, weights[k]) for k, v in model.state_dict().items())
    assert torch.equal(torch.get_rng_state(), rng) and not optimizer.state_dict()["state"]
