"""Latency/energy tables (repro.measure.latency) and hardware energy counters (repro.measure.energy)."""
import copy
import functools
import math
import sys
import types
from pathlib import Path

import pytest
import torch
import torchvision

from repro.errors import ReproError
from repro.measure import energy, interleaved, latency
from repro.measure.energy import SOURCES, EnergyMeter, counter_resolution_mj, measure_energy
from repro.measure.flops import count_flops, count_params
from repro.measure.latency import (COLUMNS, measure_depth_and_width, measure_latency, measure_networks,
                                   measure_width_latency, width_variants)
from repro.models import build_individual, build_model, extract_subnetwork

SHAPE = (1, 28, 28)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # These machines are shared: two OpenMP threads competing with other processes for two
    # cores spin-wait and run ~100x slower than one thread.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def measured():
    """One small measurement shared by the tests: three configs, 1 thread (2 before)."""
    original = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        model = build_model("resnet_mini")
        table = measure_latency(model, SHAPE, ["FFFF", "TFTF", "base"], threads=1, repeats=3, warmup=1,
                                energy_window_s=0.05, energy_window_runs=2)
        threads_after = torch.get_num_threads()
    finally:
        torch.set_num_threads(original)
    return model, table, threads_after


def test_one_row_per_config_with_the_expected_columns(measured):
    _, table, _ = measured
    assert list(table.columns) == ["skip", *COLUMNS]
    assert list(table.skip) == ["FFFF", "TFTF", "TTTT"]
    assert (table.latency_ms > 0).all() and (table.runs == 3).all()
    assert (table.latency_q1_ms <= table.latency_ms).all() and (table.latency_ms <= table.latency_q3_ms).all()
    assert (table.latency_iqr_ms >= 0).all()
    assert list(table.device) == ["cpu"] * 3 and (table.batch_size == 1).all()
    # Fewer blocks, fewer FLOPs and parameters.
    assert table.gflops.is_monotonic_decreasing and table.params_m.is_monotonic_decreasing


def test_threads_are_set_for_the_measurement_and_restored(measured):
    _, table, threads_after = measured
    assert (table.threads == 1).all()
    assert threads_after == 2


def test_the_model_is_left_untouched(measured):
    model, _, _ = measured
    assert model.training
    assert all(p.device.type == "cpu" for p in model.parameters())


def test_energy_is_nan_exactly_when_no_counter_is_readable(measured):
    _, table, _ = measured
    assert set(table.energy_source) <= set(SOURCES)
    for source, value in zip(table.energy_source, table.energy_mj):
        assert math.isnan(value) == (source == "unavailable")


def test_fixed_depth_network_gives_one_row_and_uses_rapl_when_readable(measured, monkeypatch, tmp_path):
    _fake_package(tmp_path, "intel-rapl:0", "package-0", energy_uj=5_000)
    monkeypatch.setattr(energy, "POWERCAP_ROOT", tmp_path)
    table = measure_latency(build_individual("resnet_mini", "TTTT"), SHAPE, repeats=2, warmup=0,
                            energy_windows=2, energy_window_s=0, energy_window_runs=2)
    assert list(table.skip) == ["TTTT"]
    assert table.energy_source[0] == "rapl" and table.energy_mj[0] == 0.0  # the fake counter stands still
    assert table.energy_windows[0] == 2 and table.energy_runs[0] == 4 and table.energy_std_mj[0] == 0.0
    assert math.isnan(table.energy_resolution_mj[0])  # a counter that never moves has no known step
    # The individual base-net has the ADN base-net's FLOPs (it only lacks the skip-aware norms).
    adn = measured[1].set_index("skip")
    assert table.gflops[0] == pytest.approx(adn.gflops["TTTT"])


@pytest.mark.parametrize("kwargs", [dict(input_shape=(28, 28)), dict(threads=0), dict(repeats=0),
                                    dict(batch_size=0), dict(energy_windows=0), dict(energy_window_s=-1)])
def test_bad_settings_are_one_line_errors(kwargs):
    kwargs = {"input_shape": SHAPE, **kwargs}
    with pytest.raises(ReproError):
        measure_latency(build_model("resnet_mini"), kwargs.pop("input_shape"), **kwargs)


# --------------------------------------------------------------------------- width variants
def test_width_variant_one_is_torchvision_resnet50():
    variants = width_variants((0.25, 1.0))
    assert list(variants) == ["width x0.25", "width x1.00"]
    full, reference = variants["width x1.00"], torchvision.models.resnet50()
    shapes = {k: v.shape for k, v in full.state_dict().items()}
    assert shapes == {k: v.shape for k, v in reference.state_dict().items()}
    assert count_params(full) == count_params(reference) == 25_557_032
    assert count_flops(full, (3, 224, 224)) == 4_111_512_576  # 4.11 GFLOPs (fvcore, BN included)
    quarter = variants["width x0.25"]
    assert quarter.conv1.out_channels == 16 and quarter.layer4[0].conv1.out_channels == 128


def test_measure_width_latency_table():
    table = measure_width_latency((3, 64, 64), (0.25, 0.5), repeats=2, warmup=0, energy=False)
    assert list(table.columns) == ["model", *COLUMNS]
    assert list(table.model) == ["width x0.25", "width x0.50"]
    assert table.gflops[0] < table.gflops[1] < 4.11 * (64 / 224) ** 2
    assert (table.latency_ms > 0).all()


# --------------------------------------------------------------------------- fair comparisons
class FakeClock:
    """Seconds that pass only when the test says so."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_the_same_network_under_two_labels_is_treated_alike(monkeypatch):
    """Issue 17: width x1.00 and FFFF (one network) were measured in separate groups and
    disagreed. In one comparison every network gets the same warm-up, rounds, memory format
    and input, interleaved; with a clock that charges every forward pass alike, their
    timings come out identical."""
    clock, calls = FakeClock(), []
    monkeypatch.setattr(latency, "time_interleaved", functools.partial(interleaved.time_interleaved, clock=clock))
    net = extract_subnetwork(build_model("resnet_mini"), "FFFF")
    networks = {"FFFF": net, "width x1.00": copy.deepcopy(net)}

    for label, module in networks.items():
        def record(module, args, label=label):
            if not torch.is_inference_mode_enabled():
                return  # fvcore's FLOP count traces each network once, outside the measurement
            clock.now += 0.002
            x = args[0]
            calls.append((label, x.is_contiguous(memory_format=torch.channels_last),
                          module.conv1.weight.is_contiguous(memory_format=torch.channels_last), x.data_ptr()))
        module.register_forward_pre_hook(record)

    table = measure_networks(networks, SHAPE, repeats=4, warmup=3, channels_last=True, energy=False)
    labels = [c[0] for c in calls]
    assert labels.count("FFFF") == labels.count("width x1.00") == 3 + 4
    assert all(set(labels[i:i + 2]) == set(networks) for i in range(0, len(labels), 2))  # interleaved rounds
    assert labels[:2] != labels[2:4]  # each round starts one further along
    assert all(c[1] and c[2] for c in calls) and len({c[3] for c in calls}) == 1  # one format, one input
    rows = table.set_index("network")
    same = ["latency_ms", "latency_q1_ms", "latency_q3_ms", "runs", "warmup", "memory_format", "gflops", "params_m"]
    assert rows.loc["FFFF", same].tolist() == rows.loc["width x1.00", same].tolist()
    assert rows.loc["FFFF", "latency_ms"] == pytest.approx(2.0)
    assert (rows.memory_format == "channels_last").all()


def test_depth_and_width_are_one_comparison():
    model = build_model("resnet50", image_size=32)
    table = measure_depth_and_width(model, (3, 32, 32), ["FFFF", "TTTT"], (0.25, 1.0), repeats=2, warmup=1,
                                    energy=False)
    assert list(table.columns) == ["kind", "network", *COLUMNS]
    assert list(table.kind) == ["depth", "depth", "width", "width"]
    assert list(table.network) == ["FFFF", "TTTT", "width x0.25", "width x1.00"]
    rows = table.set_index("network")
    # width x1.00 is torchvision's ResNet50, the network FFFF is.
    assert rows.gflops["width x1.00"] == pytest.approx(rows.gflops["FFFF"])
    assert rows.params_m["width x1.00"] == pytest.approx(rows.params_m["FFFF"])
    assert (table.runs == 2).all() and (table.warmup == 1).all()


def test_width_variants_only_for_resnet50():
    with pytest.raises(ReproError, match="resnet50"):
        width_variants(arch="vit_b_16")


# --------------------------------------------------------------------------- energy counters
def _fake_package(root, folder, name, energy_uj, max_uj=10_000):
    zone = root / folder
    zone.mkdir(parents=True)
    (zone / "name").write_text(name + "\n")
    (zone / "energy_uj").write_text(f"{energy_uj}\n")
    (zone / "max_energy_range_uj").write_text(f"{max_uj}\n")
    return zone


def test_rapl_sums_packages_and_undoes_a_wrap_around(tmp_path):
    package0 = _fake_package(tmp_path, "intel-rapl:0", "package-0", energy_uj=1_000)
    package1 = _fake_package(tmp_path, "intel-rapl:1", "package-1", energy_uj=9_000)
    core = _fake_package(tmp_path, "intel-rapl:0:0", "core", energy_uj=0)  # part of package-0
    psys = _fake_package(tmp_path, "intel-rapl:2", "psys", energy_uj=0)  # whole platform
    meter = EnergyMeter("cpu", powercap_root=tmp_path)
    assert meter.source == "rapl" and meter.available
    with meter:
        (package0 / "energy_uj").write_text("4000\n")  # +3000 uJ
        (package1 / "energy_uj").write_text("500\n")  # wrapped: 10000 - 9000 + 500 = 1500 uJ
        for zone in (core, psys):
            (zone / "energy_uj").write_text("7777\n")
    assert meter.energy_mj == pytest.approx(4.5)
    meter.start()  # a second window starts from the new readings
    (package0 / "energy_uj").write_text("4100\n")
    assert meter.stop() == pytest.approx(0.1)


def test_rapl_missing_or_unreadable_is_unavailable(tmp_path, monkeypatch):
    meter = EnergyMeter("cpu", powercap_root=tmp_path / "absent")
    assert meter.source == "unavailable"
    with meter:
        pass
    assert meter.energy_mj is None

    _fake_package(tmp_path, "intel-rapl:0", "psys", energy_uj=1)  # no package domain
    assert EnergyMeter("cpu", powercap_root=tmp_path).source == "unavailable"

    _fake_package(tmp_path, "intel-rapl:1", "package-0", energy_uj=1)
    assert EnergyMeter("cpu", powercap_root=tmp_path).source == "rapl"

    def root_only(path):
        raise PermissionError(13, "Permission denied", str(path))
    monkeypatch.setattr(energy, "_read_uj", root_only)
    assert EnergyMeter("cpu", powercap_root=tmp_path).source == "unavailable"


def test_cuda_without_pynvml_is_unavailable(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml -> ImportError
    assert EnergyMeter("cuda").source == "unavailable"


def test_nvml_counter_difference(monkeypatch):
    readings = iter([1_000, 1_000, 1_600])  # mJ: probe at construction, start, stop
    fake = types.SimpleNamespace(
        nvmlInit=lambda: None,
        nvmlDeviceGetHandleByIndex=lambda index: f"gpu{index}",
        nvmlDeviceGetTotalEnergyConsumption=lambda handle: next(readings))
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    monkeypatch.setattr(energy, "_cuda_uuid", lambda device: None)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: None)
    meter = EnergyMeter("cuda:0")
    assert meter.source == "nvml" and meter.counter.handle == "gpu0"
    with meter:
        pass
    assert meter.energy_mj == 600.0


# --------------------------------------------------------------------------- energy windows
class CoarseCounter:
    """A counter that moves in whole joules (like NVML's coarse updates) under a fake clock;
    each reading takes 0.1 ms at an idle 50 W (5 mJ)."""

    def __init__(self, clock, step_mj=1000.0):
        self.clock, self.step_mj, self.energy_mj = clock, step_mj, 0.0

    def read(self):
        self.clock.now += 1e-4
        self.energy_mj += 5.0
        return math.floor(self.energy_mj / self.step_mj) * self.step_mj

    def difference_mj(self, start, end):
        return end - start


def _coarse_meter(monkeypatch):
    clock = FakeClock()
    counter = CoarseCounter(clock)
    meter = EnergyMeter("cpu", powercap_root=Path("/absent"), clock=clock)
    monkeypatch.setattr(meter, "counter", counter)

    def inference():  # 3 ms at 100 W: 300 mJ
        clock.now += 0.003
        counter.energy_mj += 300.0
    return meter, inference


def test_energy_is_integrated_over_windows_of_many_inferences(monkeypatch):
    meter, inference = _coarse_meter(monkeypatch)
    counter_step = counter_resolution_mj(meter)
    estimate = measure_energy({"net": inference}, meter, windows=3, min_seconds=1.0, min_runs=100)["net"]
    assert counter_step == 1000.0
    assert estimate.windows == 3 and estimate.runs >= 3 * 333  # 1 s of 3 ms inferences per window
    assert estimate.window_s >= 1.0
    assert estimate.mj == pytest.approx(300.0, rel=0.01)  # one 1 J step over ~333 runs: <= 1% off
    assert estimate.std_mj < 3.0

    # One inference per window reads as 0 or a whole joule: the quantisation the issue saw.
    single = measure_energy({"net": inference}, meter, windows=6, min_seconds=0, min_runs=1)["net"]
    assert single.runs == 6 and single.std_mj > 300.0


def test_energy_windows_need_100_runs_even_when_a_second_passes_sooner(monkeypatch):
    meter, _ = _coarse_meter(monkeypatch)
    counter = meter.counter

    def slow_inference():  # 50 ms each: 20 runs make a second, but a window needs 100
        meter.clock.now += 0.05
        counter.energy_mj += 5000.0
    estimate = measure_energy({"slow": slow_inference}, meter, windows=2)["slow"]
    assert estimate.runs == 200 and estimate.window_s >= 5.0
    assert estimate.mj == pytest.approx(5000.0, rel=0.01)


def test_energy_unavailable_without_a_counter():
    meter = EnergyMeter("cpu", powercap_root=Path("/absent"))
    estimate = measure_energy({"net": lambda: None}, meter)["net"]
    assert math.isnan(estimate.mj) and estimate.windows == 0
    assert math.isnan(counter_resolution_mj(meter))


# --------------------------------------------------------------------------- on a GPU
@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("batch_size", [1, 64])
def test_width_one_and_ffff_agree_on_the_gpu(batch_size):
    """Issue 17 acceptance: measured alike, width x1.00 (torchvision's ResNet50) and the
    ADN super-net FFFF (the same network) have medians within 5 %."""
    table = measure_depth_and_width(build_model("resnet50"), (3, 224, 224), ["FFFF", "TTTT"], (0.25, 1.0),
                                    device="cuda", batch_size=batch_size, repeats=100, warmup=10, energy=False)
    rows = table.set_index("network")
    assert rows.latency_ms["width x1.00"] == pytest.approx(rows.latency_ms["FFFF"], rel=0.05), table.to_string()
    assert rows.latency_ms["TTTT"] < rows.latency_ms["FFFF"]
