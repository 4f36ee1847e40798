"""``python cli.py reproduce ARTIFACT|all``: train the runs an artifact needs that do not
exist yet (resuming unfinished ones), measure what it needs, and write it.

    results/<preset>/tables/<name>.csv, .md, .provenance.json
    results/<preset>/figures/<name>.png, .pdf, .provenance.json

Finished runs are reused, never retrained; an interrupted ``reproduce`` continues where
it stopped when run again. Every output is written atomically.
"""
from __future__ import annotations

import dataclasses
import json
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import torch

from repro.artifacts import ARTIFACTS, Artifact, ArtifactInputs, RunNeed
from repro.data import DATASETS
from repro.errors import ReproError
from repro.files import atomic_write, check_writable, write_json, write_text
from repro.measurements import MEASUREMENTS, FinishedRun, MeasureContext, cache_files, is_cached, measure
from repro.presets import make_spec
from repro.runs import RunRecord, collect_environment, command_line, run_directory
from repro.specs import RunSpec
from repro.study import Study, study_for
from repro.train import Interrupted, Runtime, train

# Images per second of an individual full-depth network's training step on 2 CPU cores
# (measured here on the quick preset), and each method's cost relative to it.
CPU_IMAGES_PER_S = {"resnet_mini": 400.0, "vit_mini": 300.0, "mobilenet_v2_mini": 150.0}
METHOD_COST = {"individual": 1.0, "kd_individual": 1.4, "adn": 1.6, "alphanet": 3.2}
# Seconds each measurement took here at the quick preset's settings (2 CPU cores,
# results/quick/measurements/*.json): the estimate for one never measured under --results-dir.
CPU_MEASURE_S = {"timing": 216.0, "depth_width_latency": 50.0, "latency": 7.0, "norms": 2.0,
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
            for seed in range(seeds):
                spec = spec_for(need, study, seed)
                entry = plan.setdefault(spec.run_id, PlannedRun(spec, RunRecord(run_directory(results_dir, spec))))
                entry.roles.append((art.name, need.role))
    return plan


def spec_for(need: RunNeed, study: Study, seed: int) -> RunSpec:
    return make_spec(need.arch, need.method, study.dataset, study.preset, seed, options=need.options_dict())


TEACHER_READERS = ("kd_individual",)  # methods that read finished runs of the same plan


def training_order(runs) -> list[PlannedRun]:
    """Teachers first (kd_individual runs read the finished individual networks), then seed
    by seed, so that an interrupted study has whole seeds rather than one seed of everything."""
    return sorted(runs, key=lambda p: (p.spec.method in TEACHER_READERS, p.spec.seed))


def measured_rates(results_dir) -> dict[tuple, list[float]]:
    """Training images/s of every finished run under ``results_dir``, by (arch, method,
    batch size)."""
    rates = defaultdict(list)
    for spec_file in Path(results_dir).glob("*/runs/*/spec.json"):
        record = RunRecord(spec_file.parent)
        try:
            spec = record.spec()
        except ReproError:
            continue
        if record.is_finished():
            rates[spec.arch, spec.method, spec.recipe.batch_size] += [
                m["images_per_s"] for m in record.metrics() if m.get("images_per_s")]
    return rates


def expected_seconds(spec: RunSpec, rates: dict[tuple, list[float]]) -> float | None:
    """Rough training time on 2 CPU cores: from finished runs of the same architecture and
    method (``measured_rates``) if there are any, else from the measured rates above. None
    when unknown."""
    r = spec.recipe
    epoch = DATASETS.get(spec.dataset).train_images
    images = r.epochs * min(r.train_subset or epoch, epoch)
    rates = rates.get((spec.arch, spec.method, r.batch_size))
    if rates:
        rate = sorted(rates)[len(rates) // 2]
    elif spec.arch in CPU_IMAGES_PER_S:
        rate = CPU_IMAGES_PER_S[spec.arch] / METHOD_COST.get(spec.method, 2.0)
    else:
        return None
    return images / rate * 1.1  # + per-epoch validation and the final evaluation


def describe_plan(plan: dict[str, PlannedRun], results_dir) -> tuple[list[str], float | None]:
    lines, total = [], 0.0
    rates = measured_rates(results_dir)
    for entry in training_order(plan.values()):
        roles = "; ".join(sorted({f"{a}: {r}" for a, r in entry.roles}))
        status = entry.status
        seconds = None if status == "finished" else expected_seconds(entry.spec, rates)
        if status != "finished":
            total = None if seconds is None or total is None else total + seconds
        eta = "" if status == "finished" else (f"~{seconds / 60:.1f} min" if seconds is not None else "unknown")
        lines.append(f"  {status:10s} {entry.spec.run_id:48s} {eta:>10s}  [{roles}]")
    return lines, total


def expected_measure_seconds(name: str, study: Study, results_dir) -> float | None:
    """How long the measurement took before with the same settings under ``results_dir``
    (any preset), else ``CPU_MEASURE_S``; None when unknown."""
    settings = json.loads(json.dumps(MEASUREMENTS.get(name).settings(study)))
    for info_file in Path(results_dir).glob(f"*/measurements/{name}.json"):
        try:
            info = json.loads(info_file.read_text())
        except (OSError, ValueError):
            continue
        if info.get("settings") == settings and info.get("wall_s") is not None:
            return float(info["wall_s"])
    return CPU_MEASURE_S.get(name)


def describe_measurements(artifacts: list[Artifact], study: Study, plan: dict[str, PlannedRun], seeds: int,
                          results_dir) -> tuple[list[str], int, float | None]:
    """One line per measurement: cached (and where) or to measure (and how long);
    the number to measure and their expected seconds (None when unknown)."""
    folder = Path(results_dir) / study.preset / "measurements"
    users: dict[str, list[Artifact]] = {}
    for art in artifacts:
        for name in art.measurements:
            users.setdefault(name, []).append(art)
    lines, todo, total = [], 0, 0.0
    for name, arts in sorted(users.items()):
        ctx = MeasureContext(study, finished_runs(arts[0], study, plan, seeds, planned=True))
        used_by = ", ".join(a.name for a in arts)
        if is_cached(name, ctx, folder):
            lines.append(f"  {'cached':10s} {'measurement ' + name:48s} {'':>10s}  [{used_by}; "
                         f"{cache_files(name, folder)[1]}]")
            continue
        todo += 1
        seconds = expected_measure_seconds(name, study, results_dir)
        total = None if seconds is None or total is None else total + seconds
        eta = "unknown" if seconds is None else f"~{seconds:.0f} s" if seconds < 60 else f"~{seconds / 60:.1f} min"
        lines.append(f"  {'to measure':10s} {'measurement ' + name:48s} {eta:>10s}  [{used_by}]")
    return lines, todo, total


def reproduce(names: list[str], preset: str = "quick", seeds: int = 1, runtime: Runtime = Runtime(), *,
              dry_run: bool = False, echo=print, jobs: int = 1, archs: tuple[str, ...] = ()) -> list[Path]:
    """Trains what is missing (``jobs`` runs at once) and writes the artifacts (of the
    architectures ``archs`` only, when given); returns the files written."""
    study = dataclasses.replace(study_for(preset), only_archs=tuple(archs))
    artifacts = select_artifacts(names)
    check_writable(Path(runtime.results_dir) / preset / "tables" / "table.csv")
    plan = plan_runs(artifacts, study, seeds, runtime.results_dir)
    lines, total = describe_plan(plan, runtime.results_dir)
    measure_lines, to_measure, measure_s = describe_measurements(artifacts, study, plan, seeds, runtime.results_dir)
    todo = [p for p in plan.values() if p.status != "finished"]
    echo(f"{', '.join(a.name for a in artifacts)} (preset {preset}, {seeds} seed{'s' * (seeds > 1)}): "
         f"{len(plan)} runs, {len(todo)} to train, {to_measure} measurement{'s' * (to_measure != 1)} to take"
         + expected_time(bool(todo), total, bool(to_measure), measure_s))
    for line in lines + measure_lines:
        echo(line)
    if dry_run:
        return []
    started = time.perf_counter()
    train_missing(todo, runtime, echo, jobs)
    written = []
    for art in artifacts:
        written += write_artifact(art, study, plan, seeds, runtime, echo, started)
    echo(f"done in {time.perf_counter() - started:.0f} s")
    return written


def expected_time(training: bool, train_s: float | None, measuring: bool, measure_s: float | None) -> str:
    if not (training or measuring):
        return ""
    if (training and train_s is None) or (measuring and measure_s is None):
        return "; expected time unknown (no measured rate for some runs or measurements)"
    train_s, measure_s = train_s or 0.0, measure_s or 0.0
    return (f", expected ~{(train_s + measure_s) / 60:.0f} min on 2 CPU cores (training ~{train_s / 60:.0f} min, "
            f"measuring ~{measure_s / 60:.1f} min)")


def train_missing(todo: list[PlannedRun], runtime: Runtime, echo, jobs: int = 1) -> None:
    ordered = training_order(todo)
    resuming = dataclasses.replace(runtime, resume=True)
    if jobs > 1 and len(ordered) > 1:
        return train_in_workers(ordered, resuming, echo, jobs)
    for i, entry in enumerate(ordered, 1):
        echo(f"[{i}/{len(ordered)}] training {entry.spec.run_id} ({entry.status})")
        try:
            train(entry.spec, resuming)
        except Interrupted:
            raise ReproError(f"interrupted while training {entry.spec.run_id}; its checkpoint is saved and "
                             f"finished runs are kept: run the same reproduce command again to continue") from None


def train_in_workers(ordered: list[PlannedRun], runtime: Runtime, echo, jobs: int) -> None:
    """``jobs`` runs at once; the KD students' wave starts when their teachers' has ended."""
    from repro.run_pool import FINISHED, train_concurrently

    students = [p.spec for p in ordered if p.spec.method in TEACHER_READERS]
    waves = [w for w in ([p.spec for p in ordered if p.spec.method not in TEACHER_READERS], students) if w]
    echo(f"training {len(ordered)} runs, {jobs} at a time")
    try:
        outcome = train_concurrently(waves, runtime, jobs)
    except KeyboardInterrupt:
        raise ReproError("interrupted: every running run saved its checkpoint and finished runs are kept; run the "
                         "same reproduce command again to continue") from None
    failed = {run_id: message for run_id, (status, message) in outcome.items() if status != FINISHED}
    if failed:
        names = "; ".join(f"{run_id} ({message or 'stopped'})" for run_id, message in failed.items())
        raise ReproError(f"{len(failed)} of {len(ordered)} runs did not finish: {names}; the others are kept")


# --------------------------------------------------------------------------- frames
def finished_runs(art: Artifact, study: Study, plan: dict[str, PlannedRun], seeds: int, *,
                  planned: bool = False) -> list[FinishedRun]:
    """The artifact's runs, which must have finished (``planned``: or be about to be trained)."""
    runs = []
    for need in run_needs(art, study):
        for seed in range(seeds):
            entry = plan[spec_for(need, study, seed).run_id]
            if not planned and not entry.record.is_finished():
                raise ReproError(f"{art.name} needs run {entry.record.path}, which has not finished")
            runs.append(FinishedRun(need.role, need.arch, need.method, seed, entry.record))
    return runs


def evals_frame(runs: list[FinishedRun]):
    import pandas as pd

    frames = [run.record.evaluation().assign(role=run.role, arch=run.arch, method=run.method, seed=run.seed,
                                             run_id=run.record.path.name, dataset=run.record.spec().dataset)
              for run in runs]
    columns = ["role", "arch", "method", "seed", "run_id", "dataset", "split", "skip", "acc1_pct", "acc5_pct",
               "loss", "gflops", "params_m"]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


def runs_frame(runs: list[FinishedRun]):
    import pandas as pd

    rows = []
    for run in runs:
        metrics = run.record.metrics()
        env = run.record.env()
        hw = env.get("hardware", {})
        rows.append({"role": run.role, "arch": run.arch, "method": run.method, "seed": run.seed,
                     "run_id": run.record.path.name,
                     "epoch_s": _mean([m.get("epoch_s") for m in metrics]),
                     "images_per_s": _mean([m.get("images_per_s") for m in metrics]),
                     "wall_s": env.get("wall_s"),
                     "device": ", ".join(hw.get("cuda_devices") or []) or hw.get("cpu") or "cpu"})
    return pd.DataFrame(rows, columns=["role", "arch", "method", "seed", "run_id", "epoch_s", "images_per_s",
                                       "wall_s", "device"])


def _mean(values):
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else float("nan")


# --------------------------------------------------------------------------- writing
def measurement_device(runtime: Runtime) -> str:
    if runtime.device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return runtime.device


def write_artifact(art: Artifact, study: Study, plan: dict[str, PlannedRun], seeds: int, runtime: Runtime,
                   echo, reproduce_started: float) -> list[Path]:
    from analysis.reference import load_reference

    started = time.perf_counter()
    runs = finished_runs(art, study, plan, seeds)
    root = Path(runtime.results_dir) / study.preset
    ctx = MeasureContext(study, runs, runtime.data_path, measurement_device(runtime))
    measured = {name: measure(name, ctx, root / "measurements", echo) for name in art.measurements}
    inputs = ArtifactInputs(study, evals_frame(runs), runs_frame(runs), measured, load_reference())
    output = art.build(inputs)
    if art.kind == "table":
        folder = root / "tables"
        paths = [write_text(folder / f"{art.name}.csv", output.to_csv(index=False)),
                 write_text(folder / f"{art.name}.md", table_markdown(art, study, output, runs))]
    else:
        folder = root / "figures"
        paths = [save_figure(output, folder / f"{art.name}.png"), save_figure(output, folder / f"{art.name}.pdf")]
        import matplotlib.pyplot as plt
        plt.close(output)
    envs = [r.record.env() for r in runs]
    provenance = {
        "artifact": art.name, "title": art.title, "preset": study.preset, "dataset": study.dataset,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "command": command_line(),
        "build_s": round(time.perf_counter() - started, 1),
        "reproduce_wall_s": round(time.perf_counter() - reproduce_started, 1),
        "training_wall_s": sum(env.get("wall_s") or 0 for env in envs),
        "runs": [{"role": r.role, "run_id": r.record.path.name, "seed": r.seed, "wall_s": env.get("wall_s"),
                  "git": env.get("git"), "hardware": env.get("hardware", {}).get("cpu")} for r, env in zip(runs, envs)],
        "measurements": list(art.measurements), **collect_environment()}
    paths.append(write_json(folder / f"{art.name}.provenance.json", provenance))
    echo(f"wrote {', '.join(str(p) for p in paths[:-1])}")
    return paths


def save_figure(figure, path: Path) -> Path:
    return atomic_write(path, lambda tmp: figure.savefig(tmp, format=path.suffix[1:], dpi=150, bbox_inches="tight"))


def code_identity_line(runs: list[FinishedRun]) -> str:
    """Which commits the runs were started from (and whether the code differed from them)."""
    counts: dict[str, int] = {}
    for run in runs:
        git = run.record.env().get("git") or {}
        name = (git.get("commit") or "unknown")[:10] + (" (uncommitted changes)" if git.get("dirty") else "")
        counts[name] = counts.get(name, 0) + 1
    return "Runs trained from commit " + ", ".join(f"{c} ({n} run{'s' * (n > 1)})" for c, n in counts.items()) + "."


def table_markdown(art: Artifact, study: Study, table, runs: list[FinishedRun]) -> str:
    from analysis.aggregate import to_markdown
    from analysis.verdicts import RULE, verdicts

    seeds = sorted({r.seed for r in runs})
    lines = [f"# {art.name}: {art.title}", "",
             f"Preset `{study.preset}`, data set `{study.dataset}`, seeds {', '.join(map(str, seeds)) or '-'}; "
             f"written by `python cli.py reproduce {art.name} --preset {study.preset}` from the run records listed "
             f"in `{art.name}.provenance.json`.", "", code_identity_line(runs), ""]
    if study.dataset != "imagenet":
        lines += ["Our networks are the CPU-sized analogues on a small data set; the paper's columns are its "
                  "ImageNet numbers (see analysis/reference/paper.csv). Compare directions and gaps, not values.", ""]
    lines += [to_markdown(table), ""]
    converged = study.preset not in ("smoke", "quick")
    notes = verdicts(art.name, table, converged)
    if notes:
        lines += ["## Against the paper", "",
                  f"Rule: {RULE}." if converged else
                  f"The `{study.preset}` preset trains one epoch: far from convergence, so every verdict here is "
                  f"INCONCLUSIVE by construction (rule for converged presets: {RULE}).", ""]
        lines += [f"- {note}" for note in notes] + [""]
    return "\n".join(lines)
