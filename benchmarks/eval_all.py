"""How much faster is evaluating all 2^S sub-networks in one depth-first pass (stage
outputs shared between configs with the same prefix, each batch read once) than
evaluating them one by one (one pass over the data per sub-network)? Goal >= 2.5x.

Both ways must give identical numbers; the script checks that, then times them
interleaved and prints the ratio of medians.

    python benchmarks/eval_all.py [--repeats 3] [--resnet50-batches 2] [--resnet50-batch 8]

Writes results/benchmarks/eval_all-cpu.json with provenance (benchmarks/output.py).
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
from repro.evaluate import evaluate  # noqa: E402
from repro.measure.flops import subnetwork_costs  # noqa: E402
from repro.measure.interleaved import time_interleaved  # noqa: E402
from repro.models import build_model  # noqa: E402


def compare(title: str, arch: str, model, batches, input_shape, repeats: int) -> dict:
    """Checks that both ways agree, times them and prints the speed-up; returns it as a row."""
    model.eval()
    configs = model.configs()
    shared = evaluate(model, batches, configs)
    separate = [row for c in configs for row in evaluate(model, batches, [c], share_prefixes=False)]
    if [r.as_row() for r in shared] != [r.as_row() for r in separate]:
        raise SystemExit(f"{title}: shared-prefix evaluation differs from one-by-one evaluation")
    timings = time_interleaved({
        "one pass, shared prefixes": lambda: evaluate(model, batches, configs),
        "one by one": lambda: [evaluate(model, batches, [c], share_prefixes=False) for c in configs],
    }, repeats=repeats, warmup=1)
    fast, slow = timings["one pass, shared prefixes"].median_ms, timings["one by one"].median_ms
    costs = subnetwork_costs(model, input_shape, configs)
    stage_work = sum(c.gflops for c in costs)
    print(f"\n{title}: {len(configs)} sub-networks, identical results")
    print(f"  one by one                {slow / 1e3:8.2f} s")
    print(f"  one pass, shared prefixes {fast / 1e3:8.2f} s")
    print(f"  speed-up x{slow / fast:.2f} (goal >= 2.5; FLOPs of all sub-networks summed: {stage_work:.3f} G/image)")
    return {"arch": arch, "data": title, "sub_networks": len(configs), "identical": True, "one_by_one_s": slow / 1e3,
            "shared_prefixes_s": fast / 1e3, "speedup": slow / fast, "goal_min": 2.5,
            "gflops_all_subnetworks_per_image": stage_work}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--resnet50-batches", type=int, default=2)
    parser.add_argument("--resnet50-batch", type=int, default=8)
    parser.add_argument("--no-resnet50", action="store_true")
    args = parser.parse_args()
    start_benchmark()
    torch.manual_seed(0)
    print(f"CPU, {torch.get_num_threads()} threads; medians of {args.repeats} interleaved repeats")
    data = load_data("fashion_mnist", batch_size=1000, test_subset=2000, augment=False)
    rows = [compare("resnet_mini-ADN on 2,000 Fashion-MNIST test images", "resnet_mini", build_model("resnet_mini"),
                    data.test, (1, 28, 28), args.repeats)]
    if not args.no_resnet50:
        b = args.resnet50_batch
        fake = load_data("fake", batch_size=b, augment=False, fake_sizes=(b, 1, b * args.resnet50_batches))
        rows.append(compare(f"ResNet50-ADN on {args.resnet50_batches} fake ImageNet batches of {b}", "resnet50",
                            build_model("resnet50"), fake.test, (3, 224, 224), args.repeats))
    out = write_benchmark("eval_all", "cpu", rows, {"repeats": args.repeats, "resnet50_batches": args.resnet50_batches,
                                                    "resnet50_batch": args.resnet50_batch,
                                                    "resnet50": not args.no_resnet50,
                                                    "threads": torch.get_num_threads()})
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
