"""Latency and energy of every sub-network (paper Figure 5b), and of width-scaled
ResNet50s for the depth-vs-width comparison (paper Figure 6a).

Every network of one comparison is measured the same way (``measure_networks``): as the
plain network one would deploy (``extract_subnetwork``: only the blocks and norms it
uses, no adaptive wrapper), in one memory format, on one input, with cuDNN autotuning on
(CUDA) during an interleaved warm-up of the same number of rounds for each, then timed in
interleaved rounds (CUDA events on a GPU; ``repro.measure.interleaved.time_interleaved``), reporting
the median and quartiles. Depth and width variants compared in one figure are measured
in one such comparison (``measure_depth_and_width``), never in separate groups: groups
measured one after the other disagree (a GPU measured width x1.00, the very network of
FFFF, at 5.6 and 3.9 ms against 3.5 ms for FFFF).

Energy comes from a hardware counter when one is readable (``repro.measure.energy``): each
network runs in interleaved windows of at least ``energy_window_s`` seconds and
``energy_window_runs`` passes, and a window's energy is divided by its passes
(``repro.measure.energy.measure_energy``); ``energy_resolution_mj`` records the counter's step.

The paper measures on a Jetson Orin Nano at batch 1; numbers from other machines are
comparable between the rows of one table, not with the paper's milliseconds.
"""
from __future__ import annotations

import gc
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Sequence

import pandas as pd
import torch
from torch import nn

from repro.errors import ReproError
from repro.measure.energy import EnergyMeter, counter_resolution_mj, measure_energy
from repro.measure.flops import count_flops, count_params
from repro.measure.interleaved import time_interleaved
from repro.models.extract import extract_subnetwork
from repro.models.resnet import RESNET50_BLOCKS, bottleneck_resnet
from repro.skip import SkipLike

COLUMNS = ("latency_ms", "latency_q1_ms", "latency_q3_ms", "latency_iqr_ms", "runs", "warmup", "memory_format",
           "energy_mj", "energy_std_mj", "energy_windows", "energy_runs", "energy_window_s", "energy_resolution_mj",
           "energy_source", "gflops", "params_m", "device", "batch_size", "threads")
RESNET50_WIDTHS = (64, 128, 256, 512)


@dataclass(frozen=True)
class Settings:
    """How a comparison is measured; the same for every network in it.

    repeats: timed interleaved rounds, after ``warmup`` untimed ones.
    threads: CPU threads (``torch.set_num_threads``; restored after); None: the current setting.
    channels_last: every network and the input in channels-last memory format (4-D inputs).
    energy: meter energy where a counter exists (windows of at least ``energy_window_s``
        seconds and ``energy_window_runs`` passes, ``energy_windows`` per network).
    """

    device: str = "cpu"
    batch_size: int = 1
    threads: int | None = None
    repeats: int = 30
    warmup: int = 5
    channels_last: bool = False
    energy: bool = True
    energy_windows: int = 3
    energy_window_s: float = 1.0
    energy_window_runs: int = 100

    def __post_init__(self):
        if self.batch_size < 1 or self.repeats < 1 or self.warmup < 0 or (self.threads is not None and self.threads < 1):
            raise ReproError(f"batch size ({self.batch_size}), repeats ({self.repeats}) and threads ({self.threads}) "
                             f"must be at least 1, warm-up ({self.warmup}) at least 0")
        if self.energy_windows < 1 or self.energy_window_runs < 1 or self.energy_window_s < 0:
            raise ReproError("energy windows and runs per window must be at least 1, window seconds at least 0")


def measure_networks(networks: dict[str, nn.Module], input_shape: tuple[int, int, int], key: str = "network",
                     **settings) -> pd.DataFrame:
    """Latency and energy of plain networks, all measured alike in one interleaved comparison.

    networks: name -> module (moved to the device and put in eval mode; pass copies to keep yours).
    input_shape: (channels, height, width) of one image. settings: the fields of ``Settings``.

    Returns one row per network: ``<key>, latency_ms`` (median time of one forward pass of a
    batch), ``latency_q1_ms, latency_q3_ms, latency_iqr_ms, runs, warmup, memory_format,
    energy_mj`` (per forward pass of a batch: mean over windows of window energy / passes;
    NaN when no counter is readable), ``energy_std_mj`` (between windows), ``energy_windows,
    energy_runs`` (passes in all windows), ``energy_window_s, energy_resolution_mj`` (the
    counter's step), ``energy_source`` ("nvml", "rapl", "unavailable"), ``gflops`` (per
    image, fvcore convention), ``params_m, device, batch_size, threads`` (threads used).
    """
    s = Settings(**settings)
    if len(input_shape) != 3:
        raise ReproError(f"input shape {tuple(input_shape)}: expected (channels, height, width)")
    device = torch.device(s.device)
    fmt = torch.channels_last if s.channels_last else torch.contiguous_format
    with _num_threads(s.threads), _cudnn_autotuning(device):
        used_threads = torch.get_num_threads()
        # FLOPs on the networks as they came (usually CPU): fvcore traces a batch of one image.
        costs = {name: (count_flops(net, tuple(input_shape)) / 1e9, count_params(net) / 1e6)
                 for name, net in networks.items()}
        networks = {name: net.eval().to(device, memory_format=fmt) for name, net in networks.items()}
        x = torch.randn(s.batch_size, *input_shape, generator=torch.Generator().manual_seed(0)).to(device)
        x = x.contiguous(memory_format=fmt)
        gc.collect()  # fvcore's tracing leaves garbage whose collection would land in a timed run
        with torch.inference_mode():
            calls = {name: (lambda net=net: net(x)) for name, net in networks.items()}
            timings = time_interleaved(calls, repeats=s.repeats, warmup=s.warmup, device=device)
            meter = EnergyMeter(device) if s.energy else None
            energy = _energy(calls, meter, s)
            resolution = counter_resolution_mj(meter, max_seconds=max(0.1, s.energy_window_s)) if meter else float("nan")
    rows = []
    for name in networks:
        t, e = timings[name], energy[name]
        gflops, params_m = costs[name]
        rows.append({key: name, "latency_ms": t.median_ms, "latency_q1_ms": t.q1_ms, "latency_q3_ms": t.q3_ms,
                     "latency_iqr_ms": t.iqr_ms, "runs": t.runs, "warmup": s.warmup,
                     "memory_format": "channels_last" if s.channels_last else "contiguous",
                     "energy_mj": e.mj, "energy_std_mj": e.std_mj, "energy_windows": e.windows,
                     "energy_runs": e.runs, "energy_window_s": e.window_s, "energy_resolution_mj": resolution,
                     "energy_source": meter.source if meter else "unavailable", "gflops": gflops,
                     "params_m": params_m, "device": str(device), "batch_size": s.batch_size,
                     "threads": used_threads})
    return pd.DataFrame(rows, columns=[key, *COLUMNS])


def measure_latency(model, input_shape: tuple[int, int, int], configs: Sequence[SkipLike] | None = None,
                    **settings) -> pd.DataFrame:
    """``measure_networks`` for sub-networks of ``model`` (an ``AdaptiveDepthNetwork``, or a
    ``FixedDepthNetwork``: one row), keyed ``skip``; default all 2^S configs. Paper Figure 5b.
    The model is not modified: each sub-network is an extracted copy."""
    return measure_networks(subnetworks(model, configs), input_shape, "skip", **settings)


def measure_width_latency(input_shape: tuple[int, int, int] = (3, 224, 224),
                          multipliers: Sequence[float] = (0.25, 0.5, 0.75, 1.0), *, arch: str = "resnet50",
                          num_classes: int = 1000, **settings) -> pd.DataFrame:
    """``measure_networks`` for the width variants of ``width_variants``, keyed ``model``
    ("width x0.50"). To compare them with depth variants, use ``measure_depth_and_width``."""
    networks = width_variants(multipliers, arch, num_classes, in_channels=input_shape[0])
    return measure_networks(networks, input_shape, "model", **settings)


def measure_depth_and_width(model, input_shape: tuple[int, int, int], configs: Sequence[SkipLike] | None = None,
                            multipliers: Sequence[float] = (0.25, 0.5, 0.75, 1.0), **settings) -> pd.DataFrame:
    """Sub-networks of ``model`` and width variants of its architecture (resnet50) in one
    interleaved comparison (paper Figure 6a): columns ``kind`` ("depth", "width"),
    ``network`` ("TTFF", "width x0.50") and those of ``measure_networks``."""
    config = model.config
    depth = subnetworks(model, configs)
    width = width_variants(multipliers, config.arch, config.num_classes, in_channels=input_shape[0])
    table = measure_networks({**depth, **width}, input_shape, "network", **settings)
    table.insert(0, "kind", ["depth"] * len(depth) + ["width"] * len(width))
    return table


def subnetworks(model, configs: Sequence[SkipLike] | None = None) -> dict[str, nn.Module]:
    """Plain copies of sub-networks of ``model``, keyed by skip config (default: all)."""
    parsed = [model.parse_skip(c) for c in (configs if configs is not None else model.configs())]
    return {str(c): extract_subnetwork(model, c) for c in parsed}


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


def _energy(calls, meter: EnergyMeter | None, s: Settings):
    from repro.measure.energy import UNAVAILABLE

    if meter is None:
        return dict.fromkeys(calls, UNAVAILABLE)
    return measure_energy(calls, meter, windows=s.energy_windows, min_seconds=s.energy_window_s,
                          min_runs=s.energy_window_runs)


@contextmanager
def _cudnn_autotuning(device: torch.device) -> Iterator[None]:
    """cuDNN picks the fastest kernels for each network during its warm-up (restored after)."""
    previous = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = device.type == "cuda" or previous
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = previous


@contextmanager
def _num_threads(threads: int | None) -> Iterator[None]:
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
