"""Choosing the sub-network for a device and a budget (issue 17).

``select(model, accuracy, budget_ms=...)`` measures every sub-network of ``model`` on this
device (``repro.measure.latency.measure_latency``, one fair interleaved comparison) or reuses a
cached measurement of the same architecture, input, batch size, threads and device, joins
it with the sub-networks' accuracy, and returns the Pareto frontier over the budget's cost
with the most accurate sub-network within the budget::

    python cli.py select results/quick/runs/<run>/model.pt --budget-ms 2.5
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from repro.deploy.frontier import best_within, describe, one_budget, pareto_frontier
from repro.errors import ReproError
from repro.files import write_json, write_text

if TYPE_CHECKING:
    import pandas as pd

MEASURED = ("latency_ms", "latency_iqr_ms", "energy_mj", "energy_std_mj", "energy_source", "gflops", "params_m",
            "device", "batch_size", "threads")


@dataclass(frozen=True)
class Choice:
    """What ``select`` found: ``skip`` within ``bound`` of ``cost`` (a column of ``table``)."""

    skip: str
    cost: str
    bound: float
    frontier: pd.DataFrame  # the Pareto frontier over ``cost``, cheapest first; ``chosen`` marks ``skip``
    table: pd.DataFrame  # every sub-network: accuracy joined with its measurement
    measurement: str  # "measured" or the cache file reused

    @property
    def row(self) -> pd.Series:
        return self.frontier[self.frontier["chosen"]].iloc[0]

    def summary(self) -> str:
        row = self.row
        return (f"{self.skip}: {row['acc1_pct']:.2f}% top-1 at {describe(self.cost, row[self.cost])} "
                f"(budget {describe(self.cost, self.bound)}; {row['gflops']:.4g} GFLOPs)")


def select(model, accuracy: pd.DataFrame, *, budget_ms: float | None = None, budget_gflops: float | None = None,
           budget_mj: float | None = None, device: str = "cpu", batch_size: int = 1, threads: int | None = None,
           input_shape: tuple[int, int, int] | None = None, repeats: int = 30,
           measurements: pd.DataFrame | None = None, cache_dir: str | Path | None = None,
           remeasure: bool = False) -> Choice:
    """The most accurate sub-network of ``model`` (an ``AdaptiveDepthNetwork``) within one budget.

    accuracy: ``skip, acc1_pct`` of every sub-network (e.g. a run's eval.csv, test split;
        see ``checkpoint_accuracy``).
    budget_ms / budget_gflops / budget_mj: exactly one, per forward pass of a batch of
        ``batch_size`` (GFLOPs per image).
    measurements: a ``measure_latency`` table to use instead of measuring; otherwise the
        cached one under ``cache_dir`` (default ``$XDG_CACHE_HOME/adn-repro``) unless
        ``remeasure``, else a new measurement (energy only for an energy budget).
    Raises ReproError when no sub-network fits the budget, naming the cheapest.
    """
    cost, bound = one_budget(budget_ms, budget_gflops, budget_mj)
    check_adaptive(model, "select")
    source = "given"
    if measurements is None:
        measurements, source = measure_subnetworks(model, input_shape, device=device, batch_size=batch_size,
                                                   threads=threads, repeats=repeats, energy=cost == "energy_mj",
                                                   cache_dir=cache_dir, remeasure=remeasure)
    table = join_accuracy(model, accuracy, measurements)
    if table[cost].isna().all():
        raise ReproError(f"no sub-network has {cost} on {table['device'].iloc[0]}: "
                         f"{'no energy counter is readable there' if cost == 'energy_mj' else 'not measured'}")
    frontier = pareto_frontier(table, cost)
    best = best_within(frontier, cost, bound)
    if best is None:
        cheapest = frontier.iloc[0]
        raise ReproError(f"no sub-network fits {describe(cost, bound)}: the cheapest, {cheapest['skip']}, "
                         f"needs {describe(cost, cheapest[cost])}")
    frontier = frontier.assign(within_budget=frontier[cost] <= bound, chosen=frontier.index == best)
    return Choice(frontier["skip"][best], cost, bound, frontier, table, source)


def check_adaptive(model, what: str) -> None:
    from repro.models import is_adaptive

    if not is_adaptive(model):
        raise ReproError(f"{what} needs an adaptive-depth network; this is a network of one fixed depth")


def join_accuracy(model, accuracy: pd.DataFrame, measurements: pd.DataFrame) -> pd.DataFrame:
    """One row per sub-network: ``skip, acc1_pct`` and the measured columns."""
    configs = [str(c) for c in model.configs()]
    accuracy = accuracy.assign(skip=[str(model.parse_skip(s)) for s in accuracy["skip"]])
    missing = sorted(set(configs) - set(accuracy["skip"]))
    if missing:
        raise ReproError(f"no accuracy for sub-network{'s' * (len(missing) > 1)} {', '.join(missing)}")
    measured = measurements.assign(skip=[str(model.parse_skip(s)) for s in measurements["skip"]])
    table = accuracy[["skip", "acc1_pct"]].drop_duplicates("skip").merge(
        measured[["skip", *[c for c in MEASURED if c in measured]]], on="skip", how="inner")
    if len(table) != len(configs):
        raise ReproError(f"the measurement covers {len(table)} of the {len(configs)} sub-networks")
    return table.set_index("skip").loc[configs].reset_index()


def measure_subnetworks(model, input_shape=None, *, device="cpu", batch_size=1, threads=None, repeats=30,
                        energy=False, cache_dir=None, remeasure=False) -> tuple[pd.DataFrame, str]:
    """``measure_latency`` of every sub-network, or a cached one of the same settings on
    the same kind of device; returns (table, "measured" or the cache file)."""
    from repro.measure.latency import measure_latency

    config = model.config
    shape = tuple(input_shape or (config.in_channels, config.image_size, config.image_size))
    used_threads = threads or torch.get_num_threads()
    key = {"arch_config": config.to_dict(), "input_shape": list(shape), "batch_size": batch_size,
           "threads": used_threads, "repeats": repeats, "device": device_identity(device),
           "torch": torch.__version__}
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    # A measurement with energy also serves a request without.
    for with_energy in ((True,) if energy else (True, False)):
        path = _cache_file(folder, {**key, "energy": with_energy})
        if not remeasure and path.is_file():
            import pandas as pd

            return pd.read_csv(path), str(path)
    table = measure_latency(model, shape, device=device, batch_size=batch_size, threads=used_threads,
                            repeats=repeats, energy=energy)
    path = _cache_file(folder, {**key, "energy": energy})
    write_json(path.with_suffix(".json"), {**key, "energy": energy})
    write_text(path, table.to_csv(index=False))
    return table, "measured"


def device_identity(device: str) -> str:
    """What latency depends on besides the network: the device's model name."""
    from repro.runs import hardware

    device = torch.device(device)
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    return f"cpu: {hardware()['cpu']}"


def default_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "adn-repro"


def _cache_file(folder: Path, key: dict) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return folder / f"latency-{digest}.csv"


def checkpoint_accuracy(checkpoint: str | Path, model, *, dataset: str | None = None, data_path: str | None = None,
                        test_subset: int | None = None, batch_size: int = 256,
                        device: str = "cpu") -> tuple[pd.DataFrame, str]:
    """(``skip, acc1_pct`` of every sub-network, where it came from): the test split of the
    run's eval.csv when ``checkpoint`` lies in a run directory (spec.json beside it), else
    (or with ``test_subset``) an evaluation on the test set of ``dataset`` (default: the
    checkpoint's own, else fashion_mnist). Our runs evaluate their EMA weights where they
    keep them: load the checkpoint with ``ema=True`` to match."""
    from repro.checkpoints import checkpoint_dataset
    from repro.evaluate import evaluate_on_dataset

    run = Path(checkpoint).parent
    eval_file = run / "eval.csv"
    if test_subset is None and eval_file.is_file() and (run / "spec.json").is_file():
        import pandas as pd

        table = pd.read_csv(eval_file, dtype={"skip": str})
        split = "test" if (table["split"] == "test").any() else "val"
        return table.loc[table["split"] == split, ["skip", "acc1_pct"]], f"{eval_file} ({split} split)"
    dataset = dataset or checkpoint_dataset(checkpoint) or "fashion_mnist"
    table = evaluate_on_dataset(model, dataset, data_path=data_path, batch_size=batch_size, test_subset=test_subset,
                                device=device, source=str(checkpoint))
    images = int(table["images"].iloc[0])
    return table[["skip", "acc1_pct"]], f"evaluated on {images} {dataset} test images"
