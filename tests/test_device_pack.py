"""scripts/device/pack.py: what a device session brings back fits the tool's limits, and a run
whose checkpoint is left behind comes back not at all (never as epochs without a checkpoint)."""
import importlib.util
import json
import os
import tarfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("device_pack", ROOT / "scripts" / "device" / "pack.py")
pack = importlib.util.module_from_spec(spec)
spec.loader.exec_module(pack)


def make_run(root: Path, name: str, epochs: int, status: str, checkpoint_bytes: int) -> Path:
    run = root / "results" / "mini" / "runs" / name
    run.mkdir(parents=True)
    (run / "env.json").write_text(json.dumps({"status": status}))
    (run / "metrics.jsonl").write_text("".join(json.dumps({"epoch": e}) + "\n" for e in range(1, epochs + 1)))
    (run / "checkpoint.pt").write_bytes(os.urandom(checkpoint_bytes))
    return run


def names(tarball: Path) -> set[str]:
    with tarfile.open(tarball) as tar:
        return set(tar.getnames())


def test_the_furthest_runs_checkpoints_come_back_and_the_rest_not_at_all(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    old = make_run(tmp_path, "old", 3, "interrupted", 10)  # written before the session: not its work
    os.utime(old / "checkpoint.pt", (time.time() - 3600,) * 2)
    for f in old.iterdir():
        os.utime(f, (time.time() - 3600,) * 2)
    marker = tmp_path / ".session-start"
    marker.touch()
    os.utime(marker, (time.time() - 60,) * 2)
    make_run(tmp_path, "far", 9, "interrupted", 600)
    make_run(tmp_path, "near", 2, "interrupted", 600)
    make_run(tmp_path, "done", 15, "finished", 600)
    (tmp_path / "results" / "mini" / "runs" / "done" / "model.pt").write_bytes(b"weights")
    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.setattr(pack, "LIMIT", 1000)  # one checkpoint per tarball
    summary = pack.pack(marker, out, checkpoint_files=1)
    assert summary["checkpoints"] == [["far"]] and summary["left_out"] == ["near"]
    assert names(out / "checkpoints-1.tgz") == {"results/mini/runs/far/checkpoint.pt"}
    records = names(out / "records.tgz")
    assert "results/mini/runs/far/metrics.jsonl" in records and "results/mini/runs/done/env.json" in records
    assert not any(n.startswith(("results/mini/runs/near", "results/mini/runs/old")) for n in records)
    assert not any(n.endswith((".pt",)) for n in records)
