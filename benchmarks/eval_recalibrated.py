"""How much faster is the recalibrated evaluation (BatchNorm statistics re-estimated for each
of the 2^S sub-networks, then every sub-network on the data) with one model copy whose
statistics are swapped per sub-network, so that stage outputs are shared as in
``evaluate``, than with one copy per sub-network evaluated on its own? Goal >= 1.5x (the
re-estimation itself is not shared: it runs each sub-network on its own in both ways).

It first checks that the two give the same numbers to the last digit, then times them
in alternation and prints the ratio of their medians.

    python benchmarks/eval_recalibrated.py [--repeats 3] [--test-images 1000] [--recalibration-images 512]

Writes results/benchmarks/eval_recalibrated-cpu.json with provenance (benchmarks/output.py).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.output import start_benchmark, write_benchmark  # noqa: E402
from repro.data import load_data  # noqa: E402
from repro.evaluate import evaluate, evaluate_recalibrated  # noqa: E402
from repro.measure.interleaved import time_interleaved  # noqa: E402
from repro.models import build_model  # noqa: E402
from repro.recalibrate import recalibrated, recalibration_images  # noqa: E402


def one_copy_each(model, batches, configs, recalibration):
    """The way before: a re-estimated copy per sub-network, evaluated alone."""
    return [evaluate(recalibrated(model, c, recalibration), batches, [c], share_prefixes=False)[0] for c in configs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--test-images", type=int, default=1000)
    parser.add_argument("--recalibration-images", type=int, default=512)
    args = parser.parse_args()
    start_benchmark()
    torch.manual_seed(0)
    data = load_data("fashion_mnist", batch_size=256, test_subset=args.test_images, augment=False)
    recalibration = recalibration_images(data.train, args.recalibration_images)
    model = build_model("resnet_mini").eval()
    configs = model.configs()
    shared = evaluate_recalibrated(model, {"test": data.test}, configs, recalibration)["test"]
    if [r.as_row() for r in shared] != [r.as_row() for r in one_copy_each(model, data.test, configs, recalibration)]:
        raise SystemExit("the shared recalibrated evaluation differs from one copy per sub-network")
    print(f"CPU, {torch.get_num_threads()} threads; medians of {args.repeats} interleaved repeats")
    timings = time_interleaved({
        "one copy, shared stages": lambda: evaluate_recalibrated(model, {"test": data.test}, configs, recalibration),
        "one copy each": lambda: one_copy_each(model, data.test, configs, recalibration),
    }, repeats=args.repeats, warmup=1)
    fast, slow = timings["one copy, shared stages"].median_ms, timings["one copy each"].median_ms
    print(f"resnet_mini-ADN, {len(configs)} sub-networks, {args.test_images} test images, statistics re-estimated "
          f"on {args.recalibration_images}: identical results")
    print(f"  one copy each            {slow / 1e3:8.2f} s")
    print(f"  one copy, shared stages  {fast / 1e3:8.2f} s")
    print(f"  speed-up x{slow / fast:.2f} (goal >= 1.5)")
    row = {"arch": "resnet_mini", "sub_networks": len(configs), "identical": True, "one_copy_each_s": slow / 1e3,
           "shared_stages_s": fast / 1e3, "speedup": slow / fast, "goal_min": 1.5}
    out = write_benchmark("eval_recalibrated", "cpu", [row], {
        "repeats": args.repeats, "test_images": args.test_images,
        "recalibration_images": args.recalibration_images, "threads": torch.get_num_threads()})
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
