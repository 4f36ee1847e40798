"""Does the CPU attention-kernel choice pay? vit_mini's bf16 training step with the
toolkit's kernel (math attention on short sequences, repro/models/attention.py) against
PyTorch's default (flash attention), and the same in float32, where the toolkit leaves
PyTorch's choice. Goal: the bf16 step at least 1.5x faster than with flash attention.

    python benchmarks/attention_kernel.py [--threads 1] [--steps 8] [--step adn]

Times interleaved steps on one synthetic batch of 128 Fashion-MNIST-sized images and
writes results/benchmarks/attention_kernel-cpu.json with provenance (benchmarks/output.py).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.output import start_benchmark, write_benchmark  # noqa: E402
from repro.measure.interleaved import time_interleaved  # noqa: E402
from repro.measure.train_cost import Workload  # noqa: E402
from repro.models import attention  # noqa: E402

ARCH, BATCH, SHAPE, CLASSES = "vit_mini", 128, (1, 28, 28), 10
GOAL_MIN = 1.5
STEPS = {"adn": ("adn", None), "individual FFFF": ("individual", "FFFF")}


def with_pytorch_default(step):
    """``step`` run with the toolkit's choice switched off (every sequence counts as long)."""
    def run():
        short, attention.SHORT_SEQUENCE = attention.SHORT_SEQUENCE, 0
        try:
            return step()
        finally:
            attention.SHORT_SEQUENCE = short
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1, help="Threads (1: as the study's pools train).")
    parser.add_argument("--steps", type=int, default=8, help="Timed steps per variant (interleaved rounds).")
    parser.add_argument("--step", choices=sorted(STEPS), default="adn")
    args = parser.parse_args()
    start_benchmark()
    torch.set_num_threads(args.threads)
    method, depth = STEPS[args.step]
    rows = []
    for precision, amp in (("bf16 autocast", "bf16"), ("float32", None)):
        torch.manual_seed(0)
        images, targets = torch.randn(BATCH, *SHAPE), torch.randint(0, CLASSES, (BATCH,))
        ours, default = (Workload(ARCH, method, depth, images, targets, num_classes=CLASSES, amp=amp)
                         for _ in range(2))
        timings = time_interleaved({"toolkit": ours.step, "pytorch default": with_pytorch_default(default.step)},
                                   repeats=args.steps, warmup=2)
        rows.append({"precision": precision, "step": args.step, "toolkit_ms": timings["toolkit"].median_ms,
                     "toolkit_iqr_ms": timings["toolkit"].iqr_ms,
                     "pytorch_default_ms": timings["pytorch default"].median_ms,
                     "pytorch_default_iqr_ms": timings["pytorch default"].iqr_ms,
                     "speedup": timings["pytorch default"].median_ms / timings["toolkit"].median_ms})
    out = write_benchmark("attention_kernel", "cpu", rows, {"arch": ARCH, "batch": BATCH, "threads": args.threads,
                                                            "steps": args.steps, "goal_min_bf16": GOAL_MIN})
    print(f"{ARCH} {args.step} training step, batch {BATCH}, CPU, {args.threads} thread(s), "
          f"{args.steps} interleaved steps")
    for row in rows:
        print(f"  {row['precision']:14s} toolkit {row['toolkit_ms']:8.1f} ms   PyTorch default "
              f"{row['pytorch_default_ms']:8.1f} ms   x{row['speedup']:.2f}")
    bf16 = rows[0]["speedup"]
    print(f"bf16 speed-up x{bf16:.2f} ({'meets' if bf16 >= GOAL_MIN else 'MISSES'} the x{GOAL_MIN} goal)")
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
