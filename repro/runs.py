"""Run records: one directory per training run, named by its spec.

    <results>/<preset>/runs/<run_id>/
        spec.json       the RunSpec (what was trained)
        env.json        provenance: git commit and dirty flag, versions, hardware, command,
                        wall time, status ("running" | "interrupted" | "failed" | "finished"),
                        and one segment per start or resume (a segment whose process was
                        killed is closed as "killed" when the next one starts)
        metrics.jsonl   one JSON line per epoch
        eval.csv        the finished model's sub-networks on val and test:
                        split,skip,acc1_pct,acc5_pct,loss,gflops,params_m
        checkpoint.pt   the latest training state (resume); model.pt: the final model
                        (both left out of git: records are committed without them)

A finished record is reused, never overwritten.
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import torch

from repro.errors import ReproError
from repro.files import append_line, write_json, write_text
from repro.specs import RunSpec

REPO_ROOT = Path(__file__).resolve().parents[1]


def run_directory(results_dir: str | Path, spec: RunSpec) -> Path:
    return Path(results_dir) / spec.preset / "runs" / spec.run_id


@dataclass(frozen=True)
class RunRecord:
    path: Path

    @property
    def spec_file(self) -> Path:
        return self.path / "spec.json"

    @property
    def env_file(self) -> Path:
        return self.path / "env.json"

    @property
    def metrics_file(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def eval_file(self) -> Path:
        return self.path / "eval.csv"

    @property
    def checkpoint_file(self) -> Path:
        return self.path / "checkpoint.pt"

    @property
    def model_file(self) -> Path:
        return self.path / "model.pt"

    def exists(self) -> bool:
        return self.spec_file.is_file()

    def is_finished(self) -> bool:
        return self.exists() and self.env().get("status") == "finished" and self.eval_file.is_file()

    def spec(self) -> RunSpec:
        return RunSpec.from_dict(self._read_json(self.spec_file))

    def env(self) -> dict:
        return self._read_json(self.env_file) if self.env_file.is_file() else {}

    def code_identities(self) -> list[dict]:
        """The code this run was trained with, in order and without repeats: the identity
        (``{"commit", "dirty"}``) it started from and that of each resume."""
        env = self.env()
        identities = [env.get("git")] + [segment.get("git") for segment in env.get("segments", [])[1:]]
        unique = {(g.get("commit"), bool(g.get("dirty"))): g for g in identities if g}
        return list(unique.values())

    def segment_devices(self) -> list[dict]:
        """Where each training segment ran: ``{"kind": "cpu"|"cuda"|..., "name": the CPU's
        model or the GPUs' names}``. A segment records its device and hardware since
        2026-11-27; an older one is read from the hardware the record held when it ended
        (a device asked for with ``--device cpu`` ran on the CPU even where CUDA existed)."""
        env = self.env()
        devices = []
        for segment in env.get("segments", []):
            hardware = segment_hardware(env, segment)
            gpus = hardware.get("cuda_devices") or []
            kind = segment.get("device") or ("cuda" if gpus and "--device cpu" not in segment.get("command", "")
                                             else "cpu")
            kind = kind.split(":")[0]
            devices.append({"kind": kind, "name": ", ".join(gpus) if kind == "cuda" else hardware.get("cpu") or kind})
        return devices

    def device_names(self) -> str:
        """The devices the run trained on, in order without repeats ('NVIDIA H200, AMD EPYC')."""
        names = dict.fromkeys(d["name"] for d in self.segment_devices())
        if not names:
            hardware = self.env().get("hardware", {})
            names = {", ".join(hardware.get("cuda_devices") or []) or hardware.get("cpu") or "cpu": None}
        return ", ".join(names)

    def metrics(self) -> list[dict]:
        if not self.metrics_file.is_file():
            return []
        return [json.loads(line) for line in self.metrics_file.read_text().splitlines() if line.strip()]

    def evaluation(self):
        import pandas as pd

        return pd.read_csv(self.eval_file)

    # ------------------------------------------------------------------ writing (rank 0)
    def create(self, spec: RunSpec) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        write_json(self.spec_file, spec.to_dict())
        write_json(self.env_file, {**collect_environment(), "status": "running", "wall_s": 0.0, "segments": []})
        self.metrics_file.touch()

    def start_segment(self, resumed_from: dict | None, **fields) -> float:
        """Records that training (re)starts now (``fields``: notes such as why it restarts);
        returns the start time for ``end_segment``."""
        env = self.env()
        now = collect_environment()
        if env["segments"] and "hardware" not in env["segments"][-1]:
            # recorded before segments named their hardware: the record's still is that of its last segment
            env["segments"][-1]["hardware"] = env.get("hardware")
        # the run keeps the commit it was started with; each segment names its own, and its hardware
        env.update({key: value for key, value in now.items() if key != "git"})
        env["status"] = "running"
        for segment in env["segments"]:
            if "status" not in segment:
                _close_killed(env, segment)
        env["segments"].append({"started_at": _now(), "resumed_from": resumed_from, **fields,
                                "command": command_line(), "git": now["git"], "hardware": now["hardware"]})
        write_json(self.env_file, env)
        return time.perf_counter()

    def end_segment(self, started: float, status: str, **fields) -> None:
        env = self.env()
        elapsed = time.perf_counter() - started
        env["wall_s"] = round(env.get("wall_s", 0.0) + elapsed, 1)
        env["status"] = status
        env["segments"][-1].update({"ended_at": _now(), "wall_s": round(elapsed, 1), "status": status})
        env.update(fields)
        write_json(self.env_file, env)

    def checkpointed(self, started: float) -> None:
        """Notes in the open segment that a checkpoint was just saved, and the segment's time
        so far: if the process is then killed (SIGKILL, a machine taken back), the next
        segment closes this one as ``killed`` with the time up to that checkpoint."""
        env = self.env()
        elapsed = time.perf_counter() - started
        env["segments"][-1].update({"checkpointed_at": _now(), "wall_s_to_checkpoint": round(elapsed, 1)})
        write_json(self.env_file, env)

    def wall_time(self) -> tuple[float | None, bool]:
        """(seconds of training recorded, whether that is all of it): a killed segment counts
        up to its last checkpoint, and one killed before any checkpoint (or recorded before
        2026-11-28, when segments began noting their checkpoints) not at all, so the record
        then holds a lower bound."""
        env = self.env()
        killed = any(segment.get("status", "killed") == "killed" for segment in env.get("segments", [])[:-1])
        return env.get("wall_s"), not killed

    def append_metrics(self, line: dict) -> None:
        append_line(self.metrics_file, json.dumps(line))

    def write_evaluation(self, table) -> None:
        write_text(self.eval_file, table.to_csv(index=False))

    def _read_json(self, path: Path) -> dict:
        try:
            return json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise ReproError(f"unreadable run record file {path}: {error}") from None


def segment_hardware(env: dict, segment: dict) -> dict:
    """The hardware a training segment of a run record (``env.json``) ran on: its own, or
    for a segment written before segments named it (2026-11-27), the record's."""
    return segment.get("hardware") or env.get("hardware", {})


def _close_killed(env: dict, segment: dict) -> None:
    """Closes a segment whose process ended without closing it (killed, or the machine went
    away): its time counts up to its last checkpoint, since later work was lost and redone."""
    segment["status"] = "killed"
    segment["ended_at"] = None
    if "wall_s_to_checkpoint" in segment:
        segment["wall_s"] = segment["wall_s_to_checkpoint"]
        env["wall_s"] = round(env.get("wall_s", 0.0) + segment["wall_s"], 1)


def collect_environment() -> dict:
    """Provenance of the current process: code identity, versions, hardware."""
    import torchvision

    versions = {"python": platform.python_version(), "torch": torch.__version__, "torchvision": torchvision.__version__}
    for name in ("fvcore", "numpy", "pandas"):
        try:
            versions[name] = __import__(name).__version__
        except (ImportError, AttributeError):
            versions[name] = None
    return {"git": git_identity(), "versions": versions, "hardware": hardware()}


GIT_IDENTITY_VARIABLE = "ADN_REPRO_GIT"  # set once per command; worker processes inherit it


def git_identity() -> dict:
    """The commit this command started with and whether the code differed from it
    (results/ aside: writing tables must not mark the code dirty). Read once per command,
    so runs trained by one long ``reproduce`` all name the commit it started from, even
    if commits land while it runs."""
    known = os.environ.get(GIT_IDENTITY_VARIABLE)
    if known:
        return json.loads(known)

    def git(*args):
        result = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True)
        return result.stdout.strip() if result.returncode == 0 else None

    status = git("status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)results")
    identity = {"commit": git("rev-parse", "HEAD"), "dirty": bool(status) if status is not None else None}
    os.environ[GIT_IDENTITY_VARIABLE] = json.dumps(identity)
    return identity


def hardware() -> dict:
    info = {"platform": platform.platform(), "machine": platform.machine(), "cpu": _cpu_model(),
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "cuda_devices": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
            if torch.cuda.is_available() else []}
    return info


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def command_line() -> str:
    return " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
