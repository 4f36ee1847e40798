"""Training throughput (images/s) of every engine mode this machine has, as ratios to eager
fp32, measured within one run: resnet_mini, batch 128, channels-last, Fashion-MNIST-sized
images, the ADN step (Algorithm 1) and the individual FFFF step.

Modes: eager fp32 (the reference); bf16 autocast (CPU with AVX512-BF16/AMX, or GPU; on a
CPU without them as training runs it, matrix products in fp32 kernels: repro/precision.py,
and PyTorch's own bf16 kernels as a control);
torch.compile (CUDA: reduce-overhead, i.e. CUDA graphs; CPU: inductor), fp32 and bf16; and
N concurrent runs in aggregate (N worker processes, eager fp32; on CPU the cores are split
between them, one thread each by default, against one process using them all).

    python benchmarks/engine_throughput.py [--steps 12] [--jobs 2] [--no-compile] [--device cpu|cuda]

Writes results/benchmarks/engine_throughput-<cpu|cuda>.json (-cpu-no-bf16.json on a CPU that
has no bf16 units: repro/precision.py) with provenance and prints the table. In-process modes are
timed interleaved (repro.measure.interleaved.time_interleaved).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.output import device_name, start_benchmark, write_benchmark  # noqa: E402
from repro.measure.interleaved import time_interleaved  # noqa: E402
from repro.measure.train_cost import Workload  # noqa: E402
from repro.precision import products_in_fp32  # noqa: E402

ARCH, BATCH, SHAPE, CLASSES = "resnet_mini", 128, (1, 28, 28), 10
STEPS = {"adn": ("adn", None), "individual FFFF": ("individual", "FFFF")}


def workload(step: str, device: str, amp=None, compile=False, fp32_products=None) -> Workload:
    torch.manual_seed(0)
    images = torch.randn(BATCH, *SHAPE, device=device)
    targets = torch.randint(0, CLASSES, (BATCH,), device=device)
    method, depth = STEPS[step]
    return Workload(ARCH, method, depth, images, targets, num_classes=CLASSES, channels_last=True, amp=amp,
                    compile=compile, fp32_products=fp32_products)


def in_process_modes(device: str, use_compile: bool) -> dict[str, dict]:
    modes = {"eager fp32": {}, "bf16 autocast": {"amp": "bf16"}}
    if products_in_fp32("bf16", device):
        modes["bf16 autocast, PyTorch's bf16 kernels"] = {"amp": "bf16", "fp32_products": False}
    if use_compile:
        modes.update({"compiled fp32": {"compile": True}, "compiled bf16": {"compile": True, "amp": "bf16"}})
    return modes


def worker(step: str, device: str, steps: int, threads: int | None) -> None:
    """One concurrent run: eager fp32 steps; prints images/s over the timed steps."""
    if threads:
        torch.set_num_threads(threads)
    w = workload(step, device)
    for _ in range(2):
        w.step()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        w.step()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    print(json.dumps({"images_per_s": steps * BATCH / (time.perf_counter() - start)}))


def concurrent(step: str, device: str, steps: int, jobs: int, threads: int | None) -> float:
    """Aggregate images/s of ``jobs`` worker processes started at once."""
    command = [sys.executable, __file__, "--worker", step, "--device", device, "--steps", str(steps)]
    if threads:
        command += ["--threads", str(threads)]
    processes = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True) for _ in range(jobs)]
    rates = []
    for process in processes:
        out, _ = process.communicate()
        if process.returncode != 0:
            raise SystemExit(f"worker failed with status {process.returncode}")
        rates.append(json.loads(out.strip().splitlines()[-1])["images_per_s"])
    return sum(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=12, help="Timed steps per mode (interleaved rounds).")
    parser.add_argument("--jobs", type=int, default=2, help="Concurrent runs for the aggregate mode.")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--no-compile", dest="compile", action="store_false")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args.worker, args.device, args.steps, args.threads)
    start_benchmark()

    cpu = args.device == "cpu"
    threads_each = max(1, torch.get_num_threads() // args.jobs) if cpu else None
    rows = []
    for step in STEPS:
        modes = in_process_modes(args.device, args.compile)
        loads = {name: workload(step, args.device, **settings) for name, settings in modes.items()}
        timings = time_interleaved({name: w.step for name, w in loads.items()}, repeats=args.steps, warmup=3,
                                   device=args.device)
        reference = BATCH / timings["eager fp32"].median_ms * 1e3
        for name, t in timings.items():
            rate = BATCH / t.median_ms * 1e3
            rows.append({"step": step, "mode": name, "images_per_s": rate, "ratio": rate / reference})
        # one process with every thread vs N at once, each alone on its share, in the same run
        alone = concurrent(step, args.device, args.steps, 1, None)
        together = concurrent(step, args.device, args.steps, args.jobs, threads_each)
        label = f"{args.jobs} concurrent runs" + (f" x {threads_each} thread(s)" if cpu else "")
        rows.append({"step": step, "mode": "1 process (subprocess, all threads)", "images_per_s": alone,
                     "ratio": alone / reference})
        rows.append({"step": step, "mode": label, "images_per_s": together, "ratio": together / reference})

    out = write_benchmark("engine_throughput", args.device, rows, {"steps": args.steps, "jobs": args.jobs},
                          by_bf16=True)  # bf16 autocast on a CPU without bf16 units is another story
    print(f"\nresnet_mini, batch {BATCH}, channels-last, {args.device} ({device_name(args.device)}), "
          f"{torch.get_num_threads()} threads; ratio = images/s / eager fp32 images/s of the same step")
    for row in rows:
        print(f"  {row['step']:16s} {row['mode']:40s} {row['images_per_s']:8.0f} img/s   x{row['ratio']:.2f}")
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    main()
