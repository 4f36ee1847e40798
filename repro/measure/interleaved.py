"""Wall-clock timing that is fair between the things compared.

Candidates run interleaved, after an interleaved warm-up, so that drifts of the machine
(clock frequency, other load, a GPU warming up) hit all of them alike; each round starts
at the next candidate (A B C, B C A, C A B, ...) so none always runs right after the
same neighbour. On a CUDA device each run is timed with CUDA events recorded around it
on an idle stream (the device is synchronised before), on a CPU with ``time.perf_counter``.
Reports medians and quartiles.
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


def interleaved_order(names: list[str], rounds: int) -> list[str]:
    """The order in which ``time_interleaved`` runs ``names`` over ``rounds`` rounds:
    every round runs each name once, starting one further along each time."""
    n = len(names)
    return [names[(r + i) % n] for r in range(rounds) for i in range(n)]


def time_interleaved(candidates: dict[str, Callable[[], object]], repeats: int = 30, warmup: int = 3,
                     device: torch.device | str | None = None,
                     clock: Callable[[], float] = time.perf_counter) -> dict[str, Timing]:
    """Median time of one call of each zero-argument callable (ms), over ``repeats``
    interleaved rounds after ``warmup`` interleaved rounds; ``clock`` (seconds) times CPU runs."""
    cuda = device is not None and torch.device(device).type == "cuda"
    names = list(candidates)
    for name in interleaved_order(names, warmup):
        candidates[name]()
    samples: dict[str, list[float]] = {name: [] for name in names}
    for name in interleaved_order(names, repeats):
        if cuda:
            samples[name].append(_cuda_ms(candidates[name], torch.device(device)))
        else:
            start = clock()
            candidates[name]()
            samples[name].append((clock() - start) * 1e3)
    return {name: _summary(values) for name, values in samples.items()}


def _cuda_ms(fn: Callable[[], object], device: torch.device) -> float:
    torch.cuda.synchronize(device)
    stream = torch.cuda.current_stream(device)
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record(stream)
    fn()
    end.record(stream)
    end.synchronize()
    return start.elapsed_time(end)


def _summary(values_ms: list[float]) -> Timing:
    q1, median, q3 = statistics.quantiles(values_ms, n=4) if len(values_ms) > 1 else (values_ms[0],) * 3
    return Timing(median, q1, q3, len(values_ms))
