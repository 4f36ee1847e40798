"""Energy read from hardware counters, where the machine has one.

Two counters are supported, both cumulative, read at the start and the end of a window:

* **NVML** (NVIDIA GPUs, Volta and later): ``nvmlDeviceGetTotalEnergyConsumption``, the
  board's energy in mJ since the driver loaded. Needs the optional package
  ``nvidia-ml-py`` (module ``pynvml``); without it energy is reported unavailable.
* **RAPL** (Intel, and AMD Zen on Linux >= 5.8) through the powercap files
  ``/sys/class/powercap/intel-rapl:<n>/energy_uj``: the CPU *package* domains only,
  summed over sockets (the core/uncore/dram sub-domains are parts of, or outside, the
  package, and ``psys`` covers the whole platform). The counter wraps at
  ``max_energy_range_uj``; one wrap per window is undone, so windows must stay shorter
  than a wrap period (minutes at full load). Since 2020 most kernels let only root read
  ``energy_uj``; a file that cannot be read makes energy unavailable, never an error.

Both count everything the chip does during the window (idle power, other processes),
not the energy of one program alone: compare configurations measured alike on one
otherwise idle machine. A CUDA device is metered by NVML only: RAPL would measure the
host CPU, not the inference.

A counter moves in steps far coarser than one fast inference (NVML: about every 20-100 ms,
so one 3 ms inference reads as 0 or a whole step). ``measure_energy`` therefore integrates
the counter over windows of many inferences (at least 1 s and at least 100 runs), divides,
and reports the spread between windows; ``counter_resolution_mj`` records the step.
"""
from __future__ import annotations

import math
import re
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

POWERCAP_ROOT = Path("/sys/class/powercap")
SOURCES = ("nvml", "rapl", "unavailable")
_PACKAGE_DOMAIN = re.compile(r"intel-rapl:\d+")  # top-level zones; sub-zones are intel-rapl:<n>:<m>


def _read_uj(path: Path) -> int:
    return int(path.read_text().strip())


class RaplCounter:
    """Sum of the CPU package energy counters under a powercap folder, in mJ."""

    def __init__(self, domains: list[Path]):
        self.domains = domains
        self.max_uj = [_read_uj(d / "max_energy_range_uj") for d in domains]

    @classmethod
    def find(cls, root: Path = POWERCAP_ROOT) -> RaplCounter | None:
        """The package domains under ``root``, or None if there are none or they cannot be read."""
        try:
            domains = sorted(d for d in root.iterdir() if _PACKAGE_DOMAIN.fullmatch(d.name)
                             and (d / "name").read_text().strip().startswith("package"))
            if not domains:
                return None
            counter = cls(domains)
            counter.read()  # energy_uj is often root-only: find out now, not mid-measurement
            return counter
        except (OSError, ValueError):
            return None

    def read(self) -> list[int]:
        """The raw counters (microjoules), one per package."""
        return [_read_uj(d / "energy_uj") for d in self.domains]

    def difference_mj(self, start: list[int], end: list[int]) -> float:
        """Energy between two readings (mJ), undoing one wrap-around per package."""
        total_uj = 0
        for before, after, max_uj in zip(start, end, self.max_uj):
            total_uj += after - before if after >= before else after + (max_uj - before)
        return total_uj / 1e3


class NvmlCounter:
    """The total-energy counter of one NVIDIA GPU, in mJ."""

    def __init__(self, pynvml, handle):
        self.pynvml = pynvml
        self.handle = handle

    @classmethod
    def find(cls, device: torch.device) -> NvmlCounter | None:
        """The counter of CUDA ``device``, or None without pynvml or counter support."""
        try:
            import pynvml
        except ImportError:
            return None
        try:
            pynvml.nvmlInit()
            counter = cls(pynvml, _nvml_handle(pynvml, device))
            counter.read()  # pre-Volta GPUs raise NVMLError_NotSupported here
            return counter
        except Exception:  # pynvml.NVMLError and its many subclasses: no usable counter
            return None

    def read(self) -> int:
        return int(self.pynvml.nvmlDeviceGetTotalEnergyConsumption(self.handle))

    def difference_mj(self, start: int, end: int) -> float:
        return float(end - start)


def _cuda_uuid(device: torch.device) -> str | None:
    uuid = getattr(torch.cuda.get_device_properties(device), "uuid", None)
    return None if uuid is None else f"GPU-{uuid}"


def _nvml_handle(pynvml, device: torch.device):
    # NVML numbers GPUs ignoring CUDA_VISIBLE_DEVICES, so find the GPU by its UUID;
    # fall back to the CUDA index, which is NVML's when all GPUs are visible.
    index = device.index if device.index is not None else torch.cuda.current_device()
    uuid = _cuda_uuid(torch.device("cuda", index))
    if uuid is not None:
        try:
            return pynvml.nvmlDeviceGetHandleByUUID(uuid)
        except Exception:
            pass
    return pynvml.nvmlDeviceGetHandleByIndex(index)


class EnergyMeter:
    """Energy used between ``start()`` and ``stop()`` (or inside a ``with`` block), in mJ.

    ``source`` says which counter is read: "nvml" (CUDA devices), "rapl" (CPU) or
    "unavailable" (no counter, not readable, or no pynvml); then ``stop()`` returns None.
    For CUDA the device is synchronised at both ends, so queued kernels are counted in
    the window they were launched in. The meter can be started again after stopping.
    """

    def __init__(self, device: torch.device | str = "cpu", *, powercap_root: Path | None = None,
                 clock: Callable[[], float] = time.perf_counter):
        self.device = torch.device(device)
        self.clock = clock
        if self.device.type == "cuda":
            self.counter = NvmlCounter.find(self.device)
            self.source = "unavailable" if self.counter is None else "nvml"
        else:
            self.counter = RaplCounter.find(POWERCAP_ROOT if powercap_root is None else powercap_root)
            self.source = "unavailable" if self.counter is None else "rapl"
        self.energy_mj: float | None = None  # of the last finished window
        self.seconds: float | None = None
        self._start = None

    @property
    def available(self) -> bool:
        return self.counter is not None

    def start(self) -> None:
        self._synchronize()
        self._start = (self.counter.read() if self.counter else None, self.clock())

    def stop(self) -> float | None:
        """Ends the window; returns its energy in mJ (None when unavailable)."""
        if self._start is None:
            raise RuntimeError("EnergyMeter.stop() called before start()")
        self._synchronize()
        end, now = (self.counter.read() if self.counter else None), self.clock()
        start, then = self._start
        self._start = None
        self.seconds = now - then
        self.energy_mj = None if self.counter is None else self.counter.difference_mj(start, end)
        return self.energy_mj

    def _synchronize(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def __enter__(self) -> EnergyMeter:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def counter_resolution_mj(meter: EnergyMeter, max_seconds: float = 1.0, steps: int = 5) -> float:
    """The smallest step between two different readings of ``meter``'s counter (mJ), polled
    for up to ``max_seconds`` or ``steps`` changes: the least energy a window can resolve.
    NaN without a counter or when it did not move."""
    if not meter.available:
        return math.nan
    counter, clock = meter.counter, meter.clock
    previous, start, seen = counter.read(), clock(), []
    while len(seen) < steps and clock() - start < max_seconds:
        reading = counter.read()
        if reading != previous:
            seen.append(counter.difference_mj(previous, reading))
            previous = reading
    return min(seen) if seen else math.nan


@dataclass(frozen=True)
class EnergyEstimate:
    """Energy of one call (mJ), from ``windows`` meter windows of ``runs`` calls in all."""

    mj: float  # mean over windows of (window energy / calls in it); NaN when unavailable
    std_mj: float  # standard deviation of that per-call energy between windows (NaN with one)
    windows: int
    runs: int  # calls, all windows together
    window_s: float  # mean window length


UNAVAILABLE = EnergyEstimate(math.nan, math.nan, 0, 0, math.nan)


def measure_energy(candidates: dict[str, Callable[[], object]], meter: EnergyMeter, *, windows: int = 3,
                   min_seconds: float = 1.0, min_runs: int = 100) -> dict[str, EnergyEstimate]:
    """Energy per call of each zero-argument callable: each window calls it until both
    ``min_seconds`` have passed and ``min_runs`` calls were made, then divides the window's
    energy by its calls. Windows of the candidates are interleaved (A B C, B C A, ...), so
    drifts hit them alike. ``UNAVAILABLE`` estimates when the meter has no counter."""
    from repro.measure.interleaved import interleaved_order

    if not meter.available:
        return {name: UNAVAILABLE for name in candidates}
    per_call: dict[str, list[float]] = {name: [] for name in candidates}
    runs = dict.fromkeys(candidates, 0)
    seconds: dict[str, list[float]] = {name: [] for name in candidates}
    for name in interleaved_order(list(candidates), windows):
        fn, calls = candidates[name], 0
        with meter:
            start = meter.clock()
            while calls < min_runs or meter.clock() - start < min_seconds:
                fn()
                calls += 1
        per_call[name].append(meter.energy_mj / calls)
        runs[name] += calls
        seconds[name].append(meter.seconds)
    return {name: EnergyEstimate(statistics.fmean(values),
                                 statistics.stdev(values) if len(values) > 1 else math.nan,
                                 len(values), runs[name], statistics.fmean(seconds[name]))
            for name, values in per_call.items()}
