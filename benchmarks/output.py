"""Where every benchmark writes what it measured: results/benchmarks/<name>-<cpu|cuda>.json
(engine_throughput on a CPU without bf16 units: -cpu-no-bf16.json),
its rows with the settings, the device, the command and the code identity that produced them.
"""
from __future__ import annotations

import time
from pathlib import Path

import torch

from repro.files import write_json
from repro.precision import native_bf16
from repro.runs import collect_environment, command_line, git_identity, hardware

RESULTS = Path(__file__).resolve().parents[1] / "results" / "benchmarks"


def device_name(device: str) -> str | None:
    """The GPU's name for a CUDA device, else the CPU model."""
    return torch.cuda.get_device_name(device) if device.startswith("cuda") else hardware()["cpu"]


def start_benchmark() -> None:
    """Fixes the code identity that ``write_benchmark`` records to the one at the start:
    a benchmark can run for many minutes, and commits may land meanwhile."""
    git_identity()


def device_kind(device: str, by_bf16: bool = False) -> str:
    """"cuda" or "cpu"; ``by_bf16``: "cpu-no-bf16" for a CPU without bf16 units, whose
    bf16 timings are of another kind (``repro.precision``)."""
    if device.startswith("cuda"):
        return "cuda"
    return "cpu-no-bf16" if by_bf16 and native_bf16(device) is False else "cpu"


def write_benchmark(name: str, device: str, rows: list[dict], settings: dict, by_bf16: bool = False) -> Path:
    """Writes one benchmark's rows with provenance (git commit and dirty flag, versions,
    hardware, whether it has bf16 units, command, UTC time) to ``<name>-<device_kind>.json``;
    returns the file. A later run on the same kind of device replaces it: the README quotes
    the newest one."""
    out = RESULTS / f"{name}-{device_kind(device, by_bf16)}.json"
    return write_json(out, {"benchmark": name, "device": device, "device_name": device_name(device),
                            "native_bf16": native_bf16(device), **settings,
                            "rows": rows, "command": command_line(),
                            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                            **collect_environment()})
