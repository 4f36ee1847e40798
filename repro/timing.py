"""Wall-clock timing that is fair between the things compared.

Candidates run interleaved (A B C A B C ...), after a warm-up, so that drifts of the
machine (frequency, other load) hit all of them alike; reports medians and quartiles.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Callable

import torch


@dataclass(frozen=True)
class Timing:
    median_ms: float
    q1_ms: float
    q3_ms: float
    runs: int

    @property
    def iqr_ms(self) -> float:
        return self.q3_ms - self.q1_ms


def _synchronize(device: torch.device | str | None) -> None:
    if device is not None and torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def time_interleaved(candidates: dict[str, Callable[[], object]], repeats: int = 30, warmup: int = 3,
                     device: torch.device | str | None = None) -> dict[str, Timing]:
    """Median wall time of each zero-argument callable, measured in interleaved rounds."""
    for _ in range(warmup):
        for fn in candidates.values():
            fn()
    samples: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(repeats):
        for name, fn in candidates.items():
            _synchronize(device)
            start = time.perf_counter()
            fn()
            _synchronize(device)
            samples[name].append((time.perf_counter() - start) * 1e3)
    return {name: _summary(values) for name, values in samples.items()}


def _summary(values_ms: list[float]) -> Timing:
    q1, median, q3 = statistics.quantiles(values_ms, n=4) if len(values_ms) > 1 else (values_ms[0],) * 3
    return Timing(median, q1, q3, len(values_ms))
