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
"""
from __future__ import annotations

import re
import time
from pathlib import Path

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

    def __init__(self, device: torch.device | str = "cpu", *, powercap_root: Path | None = None):
        self.device = torch.device(device)
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
        self._start = (self.counter.read() if self.counter else None, time.perf_counter())

    def stop(self) -> float | None:
        """Ends the window; returns its energy in mJ (None when unavailable)."""
        if self._start is None:
            raise RuntimeError("EnergyMeter.stop() called before start()")
        self._synchronize()
        end, now = (self.counter.read() if self.counter else None), time.perf_counter()
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
