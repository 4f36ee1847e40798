"""What a ``reproduce`` command will do, before it does it: the runs its artifacts need
(each once, keyed by run id), in which order they train, which are finished, and how
long the rest and the missing measurements should take (``--dry-run`` prints it).
"""
from __future__ import annotations

import functools
import json
import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from paper.artifacts import ARTIFACTS, Artifact, RunNeed
from paper.measurements import MEASUREMENTS, FinishedRun, MeasureContext, cache_files, is_cached
from paper.study import STUDIES, Study
from repro.data import DATASETS
from repro.errors import ReproError
from repro.measure.flops import arch_summary
from repro.methods.kd import teacher_finished
from repro.models import ARCHS
from repro.precision import FP32_PRODUCTS, products_in_fp32
from repro.presets import make_spec
from repro.runs import RunRecord, run_directory, segment_hardware
from repro.specs import RunSpec

# The plan's times are for this many CPU cores (its output says so).
PLAN_CORES = 2
# The run records committed with the toolkit: a plan for another results folder (a study
# trained anew) is estimated from their speeds too.
COMMITTED_RESULTS = Path(__file__).resolve().parents[1] / "results"
# Images per second of an individual full-depth network's training step on 2 CPU cores
# (measured here on the quick preset), and each method's cost relative to it.
CPU_IMAGES_PER_S = {"resnet_mini": 400.0, "vit_mini": 300.0, "mobilenet_v2_mini": 150.0}
METHOD_COST = {"individual": 1.0, "stochastic_depth": 1.0, "kd_individual": 1.4, "adn": 1.6, "alphanet": 3.2}
# Seconds each measurement took here at the quick preset's settings (2 CPU cores,
# results/quick/measurements/*.json): the estimate for one never measured under --results-dir.
CPU_MEASURE_S = {"timing": 216.0, "depth_width_latency": 245.0, "latency": 7.0, "norms": 2.0,
                 "cams": 1.0, "layouts": 1.0}


@dataclass
class PlannedRun:
    spec: RunSpec
    record: RunRecord
    roles: list[tuple[str, str]] = field(default_factory=list)  # (artifact, role)

    @property
    def status(self) -> str:
        if self.record.is_finished():
            return "finished"
        return "to resume" if self.record.checkpoint_file.is_file() else "to train"

    @property
    def fraction_left(self) -> float:
        """The share of the run's epochs still to train, from its metrics (an epoch under
        way counts as not begun): 1 for a run never started, 0 for a finished one."""
        if self.record.is_finished():
            return 0.0
        done = max((line.get("epoch", 0) for line in self.record.metrics()), default=0)
        return max(0.0, 1.0 - done / max(1, self.spec.recipe.epochs))


def select_artifacts(names: list[str]) -> list[Artifact]:
    if "all" in names:
        return [entry for _, entry in ARTIFACTS.items()]
    return [ARTIFACTS.get(name) for name in dict.fromkeys(names)]


def run_needs(art: Artifact, study: Study) -> list[RunNeed]:
    """The artifact's runs, of the study's ``only_archs`` when it names some."""
    return [need for need in art.runs(study) if not study.only_archs or need.arch in study.only_archs]


def plan_runs(artifacts: list[Artifact], study: Study, seeds: int, results_dir) -> dict[str, PlannedRun]:
    """Every run the artifacts need, once, keyed by run id."""
    if seeds < 1:
        raise ReproError(f"--seeds {seeds}: need at least one seed")
    plan: dict[str, PlannedRun] = {}
    for art in artifacts:
        for need in run_needs(art, study):
            for seed in need.seeds(seeds):
                spec = spec_for(need, study, seed)
                entry = plan.setdefault(spec.run_id, PlannedRun(spec, RunRecord(run_directory(results_dir, spec))))
                entry.roles.append((art.name, need.role))
    return plan


def spec_for(need: RunNeed, study: Study, seed: int) -> RunSpec:
    return make_spec(need.arch, need.method, study.dataset, study.preset, seed, options=need.options_dict())


TEACHER_READERS = ("kd_individual",)  # methods that read finished runs of the same plan


def can_start(spec: RunSpec, results_dir) -> bool:
    """Whether a run can start now: a KD student only once its teacher has finished."""
    return spec.method not in TEACHER_READERS or teacher_finished(spec, results_dir)


def training_order(runs) -> list[PlannedRun]:
    """Teachers first (kd_individual runs read the finished individual networks), then seed
    by seed, so that an interrupted study has whole seeds rather than one seed of everything;
    within a seed, the runs nearest their end first (a resumed run finishes soonest)."""
    return sorted(runs, key=lambda p: (p.spec.method in TEACHER_READERS, p.spec.seed, p.fraction_left))


def measured_rates(*results_dirs) -> dict[tuple, list[float]]:
    """Training images/s per CPU thread of every finished run under ``results_dirs`` (each
    folder once) that trained on the CPU alone, by ``rate_key``: the network trained (arch,
    method, depth and split: resnet_mini's individual TTTF network trains at nearly three
    times the images/s of its FFFF one), batch size, and whether its bf16 matrix products
    ran in fp32 kernels: a bf16 run on a CPU without bf16 units (``repro.precision``) is
    slower than on one with them (resnet_mini's ADN runs: 105-129 against 300-360 images/s
    on one thread each), so the two kinds of machine estimate apart. Per thread, because a
    run trained one per core beside another is half the machine: two of them give what a
    run alone on both cores would. A run whose segments ran both ways, or with different
    thread counts, gives no rate."""
    rates = defaultdict(list)
    folders = dict.fromkeys(Path(folder).resolve() for folder in results_dirs)
    for spec_file in (found for folder in folders for found in folder.glob("*/runs/*/spec.json")):
        record = RunRecord(spec_file.parent)
        try:
            spec = record.spec()
        except ReproError:
            continue
        if record.is_finished() and all(d["kind"] == "cpu" for d in record.segment_devices()):
            env = record.env()
            kinds = {segment.get("bf16_kernels") == FP32_PRODUCTS for segment in env.get("segments", [])}
            threads = training_threads(env)
            if len(kinds) == 1 and threads:
                rates[rate_key(spec, kinds.pop())] += [
                    m["images_per_s"] / threads for m in record.metrics() if m.get("images_per_s")]
    return rates


def rate_key(spec: RunSpec, fp32_products: bool) -> tuple:
    """What a run's training speed depends on: the network it trains, its batch size and
    whether its bf16 matrix products run in fp32 kernels."""
    split = tuple(spec.options.split) if spec.options.split else None
    return spec.arch, spec.method, spec.options.depth, split, spec.recipe.batch_size, fp32_products


def training_threads(env: dict) -> int | None:
    """The CPU threads a run trained with (from its ``env.json``), at most its machine's
    cores (more threads than cores ran no faster); None when its segments differ or did not
    say."""
    counts = set()
    for segment in env.get("segments") or [{}]:
        hardware = segment_hardware(env, segment)
        threads, cores = hardware.get("torch_threads"), hardware.get("cpu_count")
        counts.add(min(threads, cores or threads) if threads else None)
    return counts.pop() if len(counts) == 1 else None


def expected_seconds(spec: RunSpec, rates: dict[tuple, list[float]]) -> float | None:
    """Rough training time of the run alone on ``PLAN_CORES`` CPU cores of this machine:
    from finished runs that trained the same network on CPUs of its kind (``measured_rates``,
    per thread) if there are any, else from the built-in rates above.
    Two runs at a time each take about twice as long; the plan's total holds either way.
    None when unknown."""
    r = spec.recipe
    epoch = DATASETS.get(spec.dataset).train_images
    images = r.epochs * min(r.train_subset or epoch, epoch)
    per_thread = rates.get(rate_key(spec, products_in_fp32(r.amp, "cpu")))
    if per_thread:
        rate = sorted(per_thread)[len(per_thread) // 2] * PLAN_CORES
    elif spec.arch in CPU_IMAGES_PER_S:
        rate = CPU_IMAGES_PER_S[spec.arch] / METHOD_COST.get(spec.method, 2.0)
    else:
        return None
    return images / rate * 1.1  # + per-epoch validation and the final evaluation


def describe_plan(plan: dict[str, PlannedRun], results_dir, training: bool = True) -> tuple[list[str], float | None]:
    """One line per run: its status and, when ``training``, how long the unfinished ones
    should take (``expected_seconds``, from the speeds of runs finished under
    ``results_dir`` and of the committed ones); and their total (None when unknown). Not
    training, the unfinished runs are marked "left out" and cost nothing."""
    lines, total = [], 0.0
    rates = measured_rates(results_dir, COMMITTED_RESULTS)
    for entry in training_order(plan.values()):
        roles = "; ".join(sorted({f"{a}: {r}" for a, r in entry.roles}))
        status = entry.status if training or entry.status == "finished" else "left out"
        eta = ""
        if status not in ("finished", "left out"):
            seconds = expected_seconds(entry.spec, rates)
            seconds = None if seconds is None else seconds * entry.fraction_left
            total = None if seconds is None or total is None else total + seconds
            eta = "unknown" if seconds is None else f"~{seconds / 60:.1f} min"
        lines.append(f"  {status:10s} {entry.spec.run_id:48s} {eta:>10s}  [{roles}]")
    return lines, total


# Settings that scale a measurement's work linearly (resolution: quadratically, the
# architecture: by its super-net's FLOPs per image); epoch_images only sizes the timing's
# extrapolation to an epoch.
WORK_SETTINGS = ("batch", "batch_size", "steps", "repeats", "images")
SCALE_SETTINGS = (*WORK_SETTINGS, "resolution", "arch", "epoch_images")


@functools.cache  # read from arch_summary's file cache once per dry run, not per comparison
def _arch_work(arch: str, resolution) -> float:
    """The super-net's GFLOPs per image at ``resolution`` (the architecture's own when None);
    1 for a name that is not a registered architecture."""
    if arch not in ARCHS.names():
        return 1.0
    native = ARCHS.get(arch).resolution
    gflops = float(arch_summary([arch]).iloc[0]["super_gflops"])
    return gflops * (float(resolution or native) / native) ** 2


def _work(settings: dict) -> float:
    if "arch" in settings:
        work = _arch_work(settings["arch"], settings.get("resolution"))
    else:
        work = float(settings.get("resolution", 1)) ** 2
    for key in WORK_SETTINGS:
        work *= float(settings.get(key, 1))
    return work


def _same_kind(a: dict, b: dict) -> bool:
    """Whether two settings differ only in how much work they ask for."""
    return ({k: v for k, v in a.items() if k not in SCALE_SETTINGS} ==
            {k: v for k, v in b.items() if k not in SCALE_SETTINGS})


def _settings(name: str, study: Study) -> dict:
    return json.loads(json.dumps(MEASUREMENTS.get(name).settings(study)))


def expected_measure_seconds(name: str, study: Study, results_dir) -> float | None:
    """How long the measurement took before under ``results_dir`` (any preset) with the
    same settings; else the time of the one of the same kind (on any architecture) nearest
    in work (those measured, and ``CPU_MEASURE_S`` at the quick preset's settings), scaled
    by work; else ``CPU_MEASURE_S``; None when unknown."""
    settings = _settings(name, study)
    before: list[tuple[dict, float]] = []
    for info_file in sorted(Path(results_dir).glob(f"*/measurements/{name}.json")):
        try:
            info = json.loads(info_file.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(info.get("settings"), dict) and info.get("wall_s") is not None:
            before.append((info["settings"], float(info["wall_s"])))
    if name in CPU_MEASURE_S:
        before.append((_settings(name, STUDIES["quick"]), CPU_MEASURE_S[name]))
    for earlier, wall in before:
        if earlier == settings:
            return wall
    alike = [(earlier, wall) for earlier, wall in before if _same_kind(earlier, settings)]
    if not alike:
        return CPU_MEASURE_S.get(name)
    earlier, wall = min(alike, key=lambda e: abs(math.log(_work(settings) / _work(e[0]))))
    return wall * _work(settings) / _work(earlier)


def describe_measurements(artifacts: list[Artifact], study: Study, plan: dict[str, PlannedRun], seeds: int,
                          results_dir, device: str = "cpu") -> tuple[list[str], int, float | None]:
    """One line per measurement: cached (and where) or to measure (and how long) on
    ``device``; the number to measure and their expected seconds (None when unknown)."""
    folder = Path(results_dir) / study.preset / "measurements"
    users: dict[str, list[Artifact]] = {}
    for art in artifacts:
        for name in art.measurements:
            users.setdefault(name, []).append(art)
    lines, todo, total = [], 0, 0.0
    for name, arts in sorted(users.items()):
        ctx = MeasureContext(study, finished_runs(arts[0], study, plan, seeds, planned=True), device=device)
        used_by = ", ".join(a.name for a in arts)
        if is_cached(name, ctx, folder):
            lines.append(f"  {'cached':10s} {'measurement ' + name:48s} {'':>10s}  [{used_by}; "
                         f"{cache_files(name, folder, device)[1]}]")
            continue
        todo += 1
        seconds = expected_measure_seconds(name, study, results_dir)
        total = None if seconds is None or total is None else total + seconds
        eta = "unknown" if seconds is None else f"~{seconds:.0f} s" if seconds < 60 else f"~{seconds / 60:.1f} min"
        lines.append(f"  {'to measure':10s} {'measurement ' + name:48s} {eta:>10s}  [{used_by}]")
    return lines, todo, total


def expected_time(training: bool, train_s: float | None, measuring: bool, measure_s: float | None) -> str:
    if not (training or measuring):
        return ""
    if (training and train_s is None) or (measuring and measure_s is None):
        return "; expected time unknown (no measured rate for some runs or measurements)"
    parts = ([f"training ~{train_s / 60:.0f} min"] if training else []) + \
        ([f"measuring ~{measure_s / 60:.1f} min"] if measuring else [])
    total = (train_s if training else 0.0) + (measure_s if measuring else 0.0)
    return f", expected ~{total / 60:.0f} min on {PLAN_CORES} CPU cores ({', '.join(parts)})"


def _needed_entries(art: Artifact, study: Study, plan: dict[str, PlannedRun], seeds: int):
    """(need, seed, planned run) for every run the artifact needs."""
    for need in run_needs(art, study):
        for seed in need.seeds(seeds):
            yield need, seed, plan[spec_for(need, study, seed).run_id]


def finished_runs(art: Artifact, study: Study, plan: dict[str, PlannedRun], seeds: int, *,
                  planned: bool = False, partial: bool = False) -> list[FinishedRun]:
    """The artifact's runs, which must have finished (``planned``: or be about to be trained;
    ``partial``: the unfinished ones are left out)."""
    runs = []
    for need, seed, entry in _needed_entries(art, study, plan, seeds):
        if not planned and not entry.record.is_finished():
            if partial:
                continue
            raise ReproError(f"{art.name} needs run {entry.record.path}, which has not finished")
        runs.append(FinishedRun(need.role, need.arch, need.method, seed, entry.record))
    return runs


def unfinished_runs(art: Artifact, study: Study, plan: dict[str, PlannedRun], seeds: int) -> list[str]:
    """Run ids the artifact needs that have not finished."""
    return [entry.spec.run_id for _, _, entry in _needed_entries(art, study, plan, seeds)
            if not entry.record.is_finished()]
