"""Latency and energy of every sub-network (paper Figure 5b), and of width-scaled
ResNet50s for the depth-vs-width comparison (paper Figure 6a).

Each candidate is timed as the plain network one would deploy (``extract_subnetwork``:
only the blocks and norms it uses, no adaptive wrapper), all candidates interleaved in
rounds (A B C A B C ...) after a warm-up, so machine drifts hit them alike
(``repro.timing.time_interleaved``). Energy comes from a hardware counter when one is
readable (``repro.energy``): after the latency rounds each candidate runs ``repeats``
inferences inside one meter window, and the window's energy is divided by ``repeats``.
Energy needs whole windows per candidate, which interleaving cannot give.

The paper measures on a Jetson Orin Nano at batch 1; numbers from other machines are
comparable between the rows of one table, not with the paper's milliseconds.
"""
from __future__ import annotations

import copy
import gc
import math
from contextlib import contextmanager
from typing import Iterator, Sequence

import torch
from torch import nn

from repro.energy import EnergyMeter
from repro.errors import ReproError
from repro.flops import count_flops, count_params
from repro.models.adaptive import AdaptiveDepthNetwork, extract_subnetwork
from repro.models.resnet import RESNET50_BLOCKS, bottleneck_resnet
from repro.skip import SkipLike
from repro.timing import time_interleaved

COLUMNS = ("latency_ms", "latency_q1_ms", "latency_q3_ms", "latency_iqr_ms", "runs", "energy_mj",
           "energy_source", "gflops", "params_m", "device", "batch_size", "threads")
RESNET50_WIDTHS = (64, 128, 256, 512)


def measure_latency(model, input_shape: tuple[int, int, int], configs: Sequence[SkipLike] | None = None, *,
                    device: str | torch.device = "cpu", batch_size: int = 1, threads: int | None = None,
                    repeats: int = 30, warmup: int = 5):
    """Latency (and energy, where measurable) of sub-networks of ``model``; paper Figure 5b.

    model: an ``AdaptiveDepthNetwork`` or a ``FixedDepthNetwork`` (one row). It is not
        modified: each sub-network is an extracted copy, moved to ``device``.
    input_shape: (channels, height, width) of one image.
    configs: skip configs (``"TTFF"``...); default all of the model's.
    threads: CPU threads for the measurement (``torch.set_num_threads``; the previous
        value is restored); default the current setting.
    repeats: timed rounds after ``warmup`` untimed ones; also the inferences per energy window.

    Returns a pandas DataFrame, one row per config: ``skip, latency_ms`` (median wall time
    of one forward pass of a batch), ``latency_q1_ms, latency_q3_ms, latency_iqr_ms,
    runs, energy_mj`` (per forward pass of a batch: one window of ``repeats`` passes
    divided by ``repeats``, so a mean, not a median; NaN when no counter is readable),
    ``energy_source`` ("nvml", "rapl", "unavailable"), ``gflops`` (per image, fvcore
    convention), ``params_m``, ``device, batch_size, threads`` (threads actually used).
    """
    _check(input_shape, batch_size, threads, repeats, warmup)
    parsed = [model.parse_skip(c) for c in (configs if configs is not None else model.configs())]
    networks = {str(c): _deployable(model, c) for c in parsed}
    return _measure(networks, "skip", input_shape, device=device, batch_size=batch_size,
                    threads=threads, repeats=repeats, warmup=warmup)


def width_variants(multipliers: Sequence[float] = (0.25, 0.5, 0.75, 1.0), arch: str = "resnet50",
                   num_classes: int = 1000, *, in_channels: int = 3) -> dict[str, nn.Module]:
    """Plain ResNet50s with every width scaled (stem and stages), the width-adaptive
    counterpart of paper Figure 6a (S-ResNet50-like), keyed ``"width x0.50"``.

    Stage widths are round(64 m), round(128 m), round(256 m), round(512 m), at least 8,
    with torchvision's ImageNet stem; m = 1.0 is exactly torchvision's ResNet50
    (4.11 GFLOPs at 224 px). Freshly initialised: for latency and FLOPs, not accuracy.
    """
    if arch != "resnet50":
        raise ReproError(f"width variants are implemented for resnet50 only, not {arch!r}")
    variants = {}
    for m in multipliers:
        if m <= 0:
            raise ReproError(f"width multiplier {m} must be positive")
        widths = tuple(max(8, round(w * m)) for w in RESNET50_WIDTHS)
        variants[f"width x{m:.2f}"] = bottleneck_resnet(widths, num_classes, in_channels, small_input=False,
                                                        blocks=RESNET50_BLOCKS)
    return variants


def measure_width_latency(input_shape: tuple[int, int, int] = (3, 224, 224),
                          multipliers: Sequence[float] = (0.25, 0.5, 0.75, 1.0), *, arch: str = "resnet50",
                          num_classes: int = 1000, device: str | torch.device = "cpu", batch_size: int = 1,
                          threads: int | None = None, repeats: int = 30, warmup: int = 5):
    """``measure_latency`` for the width variants of ``width_variants``: the same columns,
    with ``model`` ("width x0.50") instead of ``skip``. Plot with the depth table as
    latency vs GFLOPs to compare depth and width adaptation (paper Figure 6a)."""
    _check(input_shape, batch_size, threads, repeats, warmup)
    networks = width_variants(multipliers, arch, num_classes, in_channels=input_shape[0])
    return _measure(networks, "model", input_shape, device=device, batch_size=batch_size,
                    threads=threads, repeats=repeats, warmup=warmup)


def _deployable(model, config) -> nn.Module:
    if isinstance(model, AdaptiveDepthNetwork):
        return extract_subnetwork(model, config)
    return copy.deepcopy(model.net)  # a FixedDepthNetwork is already plain; copy to leave it be


def _measure(networks: dict[str, nn.Module], key: str, input_shape, *, device, batch_size, threads,
             repeats, warmup):
    import pandas as pd

    device = torch.device(device)
    with _num_threads(threads):
        used_threads = torch.get_num_threads()
        # FLOPs on the copies as they came (usually CPU): fvcore traces a batch of one image.
        costs = {name: (count_flops(net, tuple(input_shape)) / 1e9, count_params(net) / 1e6)
                 for name, net in networks.items()}
        networks = {name: net.eval().to(device) for name, net in networks.items()}
        x = torch.randn(batch_size, *input_shape, generator=torch.Generator().manual_seed(0)).to(device)
        gc.collect()  # fvcore's tracing leaves garbage whose collection would land in a timed run
        with torch.inference_mode():
            timings, energy, source = _time_and_meter(networks, x, device, repeats, warmup)
    rows = []
    for name in networks:
        t = timings[name]
        gflops, params_m = costs[name]
        rows.append({key: name, "latency_ms": t.median_ms, "latency_q1_ms": t.q1_ms, "latency_q3_ms": t.q3_ms,
                     "latency_iqr_ms": t.iqr_ms, "runs": t.runs, "energy_mj": energy[name],
                     "energy_source": source, "gflops": gflops, "params_m": params_m,
                     "device": str(device), "batch_size": batch_size, "threads": used_threads})
    return pd.DataFrame(rows, columns=[key, *COLUMNS])


def _time_and_meter(networks: dict[str, nn.Module], x: torch.Tensor, device: torch.device, repeats: int,
                    warmup: int):
    """Interleaved timings, then energy per forward pass (one meter window per network)."""
    candidates = {name: (lambda net=net: net(x)) for name, net in networks.items()}
    timings = time_interleaved(candidates, repeats=repeats, warmup=warmup, device=device)
    meter = EnergyMeter(device)
    energy = {name: _energy_per_run(meter, fn, repeats) for name, fn in candidates.items()}
    return timings, energy, meter.source


def _energy_per_run(meter: EnergyMeter, fn, repeats: int) -> float:
    """mJ per call of ``fn``: one meter window around ``repeats`` calls (NaN without a counter)."""
    if not meter.available:
        return math.nan
    with meter:
        for _ in range(repeats):
            fn()
    return meter.energy_mj / repeats


def _check(input_shape, batch_size, threads, repeats, warmup) -> None:
    if len(input_shape) != 3:
        raise ReproError(f"input shape {tuple(input_shape)}: expected (channels, height, width)")
    if batch_size < 1 or repeats < 1 or warmup < 0 or (threads is not None and threads < 1):
        raise ReproError(f"batch size ({batch_size}), repeats ({repeats}) and threads ({threads}) "
                         f"must be at least 1, warm-up ({warmup}) at least 0")


@contextmanager
def _num_threads(threads: int | None) -> Iterator[None]:
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
