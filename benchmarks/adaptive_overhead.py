"""Does the adaptive wrapper cost time? ResNet50-ADN vs plain torchvision ResNets.

Times, at batch 1 on the CPU, the ADN super-net (FFFF) against torchvision's ResNet50 and
the ADN base-net (TTTT) against a plain torchvision ResNet of the base-net's depth
(Bottleneck blocks 2,2,3,2), interleaved, and prints the median ratios. Goal: <= 1.05.

    python benchmarks/adaptive_overhead.py [--threads 2] [--repeats 40]

Writes results/benchmarks/adaptive_overhead-cpu.json with provenance (benchmarks/output.py).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torchvision
from torchvision.models.resnet import Bottleneck, ResNet

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.output import start_benchmark, write_benchmark  # noqa: E402
from repro.measure.interleaved import time_interleaved  # noqa: E402
from repro.models import build_model  # noqa: E402

PAIRS = (("ADN super-net (FFFF)", "torchvision ResNet50"), ("ADN base-net (TTTT)", "torchvision ResNet 2,2,3,2"))
GOAL_MAX = 1.05


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--repeats", type=int, default=40)
    parser.add_argument("--resolution", type=int, default=224)
    args = parser.parse_args()
    start_benchmark()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    adaptive = build_model("resnet50").eval()
    plain_full = torchvision.models.resnet50().eval()
    plain_base = ResNet(Bottleneck, [2, 2, 3, 2]).eval()
    x = torch.randn(1, 3, args.resolution, args.resolution)
    candidates = {
        "ADN super-net (FFFF)": lambda: adaptive(x, "FFFF"),
        "torchvision ResNet50": lambda: plain_full(x),
        "ADN base-net (TTTT)": lambda: adaptive(x, "TTTT"),
        "torchvision ResNet 2,2,3,2": lambda: plain_base(x),
    }
    with torch.inference_mode():
        timings = time_interleaved(candidates, repeats=args.repeats, warmup=5)

    rows = [{"adn": adn, "plain": plain, "adn_median_ms": timings[adn].median_ms, "adn_iqr_ms": timings[adn].iqr_ms,
             "plain_median_ms": timings[plain].median_ms, "plain_iqr_ms": timings[plain].iqr_ms,
             "ratio": timings[adn].median_ms / timings[plain].median_ms, "goal_max": GOAL_MAX} for adn, plain in PAIRS]
    out = write_benchmark("adaptive_overhead", "cpu", rows,
                          {"batch": 1, "resolution": args.resolution, "threads": args.threads, "repeats": args.repeats})

    print(f"batch 1, {args.resolution}px, CPU, {args.threads} threads, {args.repeats} interleaved runs")
    for name, t in timings.items():
        print(f"  {name:28s} median {t.median_ms:8.2f} ms  (IQR {t.iqr_ms:.2f} ms)")
    for row in rows:
        verdict = "within" if row["ratio"] <= GOAL_MAX else "OVER"
        print(f"ratio {row['adn']} / {row['plain']}: {row['ratio']:.3f} ({verdict} the 5% goal)")
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
