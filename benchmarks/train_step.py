"""What does a training step cost, per method? Ratios measured within one run.

1. ADN step (Algorithm 1, two backward passes) / (super-net fwd+bwd + base-net fwd+bwd
   timed separately): the method's own overhead. Goal <= 1.10.
2. Per-step time of every method (individual FFFF and TTTT, kd_individual, alphanet, adn)
   as a ratio to individual FFFF; the paper's Table 2 expects ADN far cheaper than
   AlphaNet-style training (2 vs 4 forward+backward passes).
3. Data-pipeline share of a resnet_mini Fashion-MNIST ADN step (batch fetch + on-device
   augmentation). Goal < 5%.
4. Peak memory of a two-backward ADN step vs an individual super-net step (peak RSS
   growth over the set-up, sampled every ms, each in a fresh process, on CPU). Goal <= 1.15x.

    python benchmarks/train_step.py [--steps 8] [--resnet50-batch 16] [--no-resnet50]

Writes results/benchmarks/train_step-cpu.json with provenance (benchmarks/output.py): one
row per number printed, its ``measure`` saying which of the four above it belongs to.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.output import start_benchmark, write_benchmark  # noqa: E402
from repro.measure.interleaved import time_interleaved  # noqa: E402
from repro.measure.train_cost import Workload, make_workloads, table2_methods  # noqa: E402
from repro.methods.losses import soft_cross_entropy  # noqa: E402
from repro.models import num_stages  # noqa: E402
from repro.skip import SkipConfig  # noqa: E402
from repro.specs import MethodOptions  # noqa: E402


def pass_timer(model, images, targets, config):
    def run():
        model.zero_grad(set_to_none=True)
        soft_cross_entropy(model(images, config), targets).backward()
    return run


def step_ratios(arch, images, targets, num_classes, channels_last, steps):
    workloads = make_workloads(arch, table2_methods(num_stages(arch)), images, targets, num_classes=num_classes,
                               channels_last=channels_last)
    adn = workloads["adn"].model
    x = workloads["adn"].images
    s = adn.num_stages
    candidates = {name: w.step for name, w in workloads.items()}
    candidates["super-net fwd+bwd"] = pass_timer(adn, x, targets, SkipConfig.super_net(s))
    candidates["base-net fwd+bwd"] = pass_timer(adn, x, targets, SkipConfig.base_net(s))
    return time_interleaved(candidates, repeats=steps, warmup=2)


def step_rows(arch, batch, timings) -> list[dict]:
    """Per-step times as ratios to individual FFFF, the ADN step's overhead over its two
    passes timed apart, and AlphaNet-style training against ADN."""
    base = timings["individual FFFF"].median_ms
    rows = [{"measure": "step_time", "arch": arch, "batch": batch, "candidate": name, "median_ms": t.median_ms,
             "iqr_ms": t.iqr_ms, "ratio": t.median_ms / base, "reference": "individual FFFF"}
            for name, t in timings.items()]
    separate = timings["super-net fwd+bwd"].median_ms + timings["base-net fwd+bwd"].median_ms
    rows.append({"measure": "adn_overhead", "arch": arch, "batch": batch, "candidate": "adn",
                 "ratio": timings["adn"].median_ms / separate, "reference": "super-net fwd+bwd + base-net fwd+bwd",
                 "goal_max": 1.10})
    rows.append({"measure": "alphanet_vs_adn", "arch": arch, "batch": batch, "candidate": "alphanet",
                 "ratio": timings["alphanet"].median_ms / timings["adn"].median_ms, "reference": "adn"})
    return rows


def report(title, rows):
    print(f"\n{title}")
    for row in rows:
        if row["measure"] == "step_time":
            print(f"  {row['candidate']:22s} {row['median_ms']:9.1f} ms/step (IQR {row['iqr_ms']:.1f})"
                  f"   x{row['ratio']:.2f} of individual FFFF")
        elif row["measure"] == "adn_overhead":
            print(f"  ADN step / (super fwd+bwd + base fwd+bwd) = {row['ratio']:.3f} (goal <= 1.10)")
        else:
            print(f"  alphanet / adn = {row['ratio']:.2f}")


def data_share(steps) -> dict:
    from repro.data import load_data

    data = load_data("fashion_mnist", batch_size=128, channels_last=True)
    batches = iter(data.train.epoch(0))
    images, targets = next(batches)
    adn = Workload("resnet_mini", "adn", None, images, targets, num_classes=10, channels_last=True)
    timings = time_interleaved({"fetch + augment": lambda: next(batches), "adn step": adn.step},
                               repeats=steps, warmup=2)
    fetch, step = timings["fetch + augment"].median_ms, timings["adn step"].median_ms
    row = {"measure": "data_share", "arch": "resnet_mini", "batch": 128, "fetch_ms": fetch, "adn_step_ms": step,
           "share_pct": 100 * fetch / (fetch + step), "goal_max_pct": 5}
    print(f"\nresnet_mini on Fashion-MNIST, batch 128: batch fetch + augmentation {fetch:.2f} ms,"
          f" ADN step {step:.1f} ms: data share {row['share_pct']:.2f}% (goal < 5%)")
    return row


def rss_mib() -> float:
    """Resident set size of this process now (Linux)."""
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_memory_child(method: str, one_backward: bool) -> None:
    """Run in a fresh process: prints the peak RSS growth (MiB) over 3 steps above the
    RSS after set-up, sampled every millisecond by a background thread."""
    torch.manual_seed(0)
    images, targets = torch.randn(256, 1, 28, 28), torch.randint(0, 10, (256,))
    depth = "FFFF" if method == "individual" else None
    work = Workload("resnet_mini", method, depth, images, targets, num_classes=10, channels_last=True,
                    options=MethodOptions(two_backward=False) if one_backward else None)
    baseline, peak, done = rss_mib(), [0.0], threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], rss_mib())
            time.sleep(0.001)

    sampler = threading.Thread(target=sample)
    sampler.start()
    for _ in range(3):
        work.step()
    done.set()
    sampler.join()
    print(peak[0] - baseline)


def memory_ratios() -> list[dict]:
    def measure(*args):
        out = subprocess.run([sys.executable, __file__, "--memory-child", *args], capture_output=True, text=True, check=True)
        return float(out.stdout.strip().splitlines()[-1])
    individual, adn, adn_one = measure("individual"), measure("adn"), measure("adn", "one-backward")
    print(f"\npeak RSS growth over 3 steps (resnet_mini, batch 256, CPU): individual FFFF {individual:.0f} MiB, "
          f"ADN two-backward {adn:.0f} MiB (x{adn / individual:.2f}, goal <= 1.15), ADN one summed backward "
          f"{adn_one:.0f} MiB (x{adn_one / individual:.2f})")
    return [{"measure": "peak_rss_growth", "arch": "resnet_mini", "batch": 256, "candidate": name,
             "peak_rss_growth_mib": mib, "ratio": mib / individual, "reference": "individual FFFF", **goal}
            for name, mib, goal in (("individual FFFF", individual, {}), ("adn two-backward", adn, {"goal_max": 1.15}),
                                    ("adn one summed backward", adn_one, {}))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--resnet50-batch", type=int, default=16)
    parser.add_argument("--no-resnet50", action="store_true")
    parser.add_argument("--memory-child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        return peak_memory_child(args.memory_child[0], "one-backward" in args.memory_child)
    start_benchmark()
    torch.manual_seed(0)
    print(f"CPU, {torch.get_num_threads()} threads; medians of {args.steps} interleaved steps")
    images, targets = torch.randn(128, 1, 28, 28), torch.randint(0, 10, (128,))
    rows = step_rows("resnet_mini", 128, step_ratios("resnet_mini", images, targets, 10, True, args.steps))
    report("resnet_mini, batch 128 of 1x28x28 (channels_last)", rows)
    rows.append(data_share(args.steps * 3))
    rows += memory_ratios()
    if not args.no_resnet50:
        b = args.resnet50_batch
        images, targets = torch.randn(b, 3, 224, 224), torch.randint(0, 1000, (b,))
        resnet50 = step_rows("resnet50", b, step_ratios("resnet50", images, targets, 1000, False, max(3, args.steps // 2)))
        report(f"resnet50, fake ImageNet-size batch {b} of 3x224x224", resnet50)
        rows += resnet50
    out = write_benchmark("train_step", "cpu", rows, {"steps": args.steps, "resnet50_batch": args.resnet50_batch,
                                                      "resnet50": not args.no_resnet50,
                                                      "threads": torch.get_num_threads()})
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
