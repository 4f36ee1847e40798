"""``python cli.py reproduce ARTIFACT|all``: train the runs an artifact needs that do not
exist yet (resuming unfinished ones), measure what it needs, and write it.

    results/<preset>/tables/<name>.csv, .md, .provenance.json
    results/<preset>/figures/<name>.png, .pdf, .provenance.json

Finished runs are reused, never retrained; an interrupted ``reproduce`` continues where
it stopped when run again. Every output is written atomically.
"""
from __future__ import annotations

import dataclasses
import time
from datetime import datetime, timezone
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import torch

from analysis.aggregate import to_markdown
from analysis.reference import load_reference
from analysis.verdicts import TIMED, rule_for, verdicts
from paper.artifacts import Artifact, ArtifactInputs
from paper.measurements import MEASUREMENTS, FinishedRun, MeasureContext, device_kind, measure, timed_on
from paper.plan import (PlannedRun, can_start, describe_measurements, describe_plan, expected_time,
                        finished_runs, plan_runs, select_artifacts, training_order, unfinished_runs)
from paper.study import Study, study_for
from repro.cli_types import parse_device
from repro.distributed import resolve_device
from repro.errors import ReproError
from repro.evaluate import RECALIBRATED
from repro.files import atomic_write, check_writable, write_json, write_text
from repro.precision import missing_bf16_units_note
from repro.recalibrate import arch_has_batch_norm
from repro.run_lock import RunBusy
from repro.run_pool import FINISHED, train_concurrently
from repro.runs import collect_environment, command_line
from repro.stopping import Interrupted
from repro.train import Runtime, train


def reproduce(names: list[str], preset: str = "quick", seeds: int = 1, runtime: Runtime = Runtime(), *,
              dry_run: bool = False, echo=print, jobs: int = 1, archs: tuple[str, ...] = (),
              no_train: bool = False) -> list[Path]:
    """Trains what is missing (``jobs`` runs at once) and writes the artifacts (of the
    architectures ``archs`` only, when given); returns the files written. ``no_train``:
    trains nothing and writes each artifact from those of its runs that have finished
    (naming the others), skipping an artifact none of whose runs has."""
    study = dataclasses.replace(study_for(preset), only_archs=tuple(archs))
    artifacts = select_artifacts(names)
    check_device(runtime.device, no_train or dry_run)
    check_writable(Path(runtime.results_dir) / preset / "tables" / "table.csv")
    plan = plan_runs(artifacts, study, seeds, runtime.results_dir)
    lines, total = describe_plan(plan, runtime.results_dir, training=not no_train)
    measure_lines, to_measure, measure_s = describe_measurements(artifacts, study, plan, seeds, runtime.results_dir,
                                                                measurement_device(runtime))
    todo = [p for p in plan.values() if p.status != "finished"]
    runs = f"{len(todo)} unfinished left out (--no-train)" if no_train else f"{len(todo)} to train"
    echo(f"{', '.join(a.name for a in artifacts)} (preset {preset}, {seeds} seed{'s' * (seeds > 1)}): "
         f"{len(plan)} runs, {runs}, {to_measure} measurement{'s' * (to_measure != 1)} to take"
         + expected_time(bool(todo) and not no_train, total, bool(to_measure), measure_s))
    for line in lines + measure_lines:
        echo(line)
    for warning in bf16_notes(todo, runtime.device) if not no_train else ():
        echo(warning)
    if dry_run:
        return []
    started = time.perf_counter()
    if todo:
        measure_before_training(artifacts, study, runtime, echo)
    if not no_train:  # its notes said above, once for all runs
        train_missing(todo, dataclasses.replace(runtime, machine_notes=False), echo, jobs)
    written = []
    for art in artifacts:
        if not no_train:
            written += write_artifact(art, study, plan, seeds, runtime, echo, started)
            continue
        try:  # from the finished runs alone
            written += write_artifact(art, study, plan, seeds, runtime, echo, started, partial=True)
        except ReproError as error:
            echo(f"skipped {art.name}: {error}")
    echo(f"done in {time.perf_counter() - started:.0f} s")
    return written


def bf16_notes(runs: list[PlannedRun], device_choice: str) -> set[str]:
    """``missing_bf16_units_note`` for the runs to train on ``device_choice``; none for a
    device this machine does not have (a dry run planning a GPU elsewhere)."""
    try:
        device = resolve_device(device_choice)
    except ReproError:
        return set()
    return {missing_bf16_units_note(p.spec.recipe.amp, device) for p in runs} - {None}


def measure_before_training(artifacts: list[Artifact], study: Study, runtime: Runtime, echo) -> None:
    """Takes the measurements that read no trained run (timings, latencies, layouts) before
    training: on a machine not yet busy with it, and cached even if the training is stopped."""
    ctx = MeasureContext(study, [], runtime.data_path, measurement_device(runtime))
    folder = Path(runtime.results_dir) / study.preset / "measurements"
    for name in dict.fromkeys(name for art in artifacts for name in art.measurements):
        if not MEASUREMENTS.get(name).reads_runs:
            measure(name, ctx, folder, echo)


def train_missing(todo: list[PlannedRun], runtime: Runtime, echo, jobs: int = 1) -> None:
    """Trains the unfinished runs in ``training_order``. A run another process is training
    (``repro.run_lock``), and a KD student whose teacher it is, wait until the rest are done;
    then this process waits for that one to let go and finishes what it left."""
    ordered = training_order(todo)
    resuming = dataclasses.replace(runtime, resume=True)
    if jobs > 1 and len(ordered) > 1:
        return train_in_workers(ordered, resuming, echo, jobs)
    later: list[PlannedRun] = []
    for i, entry in enumerate(ordered, 1):
        if later and not can_start(entry.spec, runtime.results_dir):
            later.append(entry)  # its teacher is among the runs another process holds
            continue
        echo(f"[{i}/{len(ordered)}] training {entry.spec.run_id} ({entry.status})")
        try:
            _train_reporting_interrupts(entry, resuming)
        except RunBusy as busy:
            echo(f"  another process (pid {busy.holder}) is training it: training the others first, then waiting "
                 f"for it")
            later.append(entry)
    waiting = dataclasses.replace(resuming, wait_if_busy=True)
    for entry in later:
        echo(f"[later] waiting for {entry.spec.run_id} to be free, then training what is left of it")
        _train_reporting_interrupts(entry, waiting)


def _train_reporting_interrupts(entry: PlannedRun, runtime: Runtime) -> None:
    try:
        train(entry.spec, runtime)
    except Interrupted:
        raise ReproError(f"interrupted while training {entry.spec.run_id}; its checkpoint is saved and "
                         f"finished runs are kept: run the same reproduce command again to continue") from None


def train_in_workers(ordered: list[PlannedRun], runtime: Runtime, echo, jobs: int) -> None:
    """``jobs`` runs at once, in ``ordered``'s order; a KD student starts once its teacher
    has finished (already, or in this pool)."""
    echo(f"training {len(ordered)} runs, {jobs} at a time")
    try:
        outcome = train_concurrently([p.spec for p in ordered], runtime, jobs,
                                     ready=lambda spec: can_start(spec, runtime.results_dir))
    except KeyboardInterrupt:
        raise ReproError("interrupted: every running run saved its checkpoint and finished runs are kept; run the "
                         "same reproduce command again to continue") from None
    failed = {run_id: message for run_id, (status, message) in outcome.items() if status != FINISHED}
    if failed:
        names = "; ".join(f"{run_id} ({message or 'stopped'})" for run_id, message in failed.items())
        raise ReproError(f"{len(failed)} of {len(ordered)} runs did not finish: {names}; the others are kept")


# --------------------------------------------------------------------------- frames
def run_evaluation(run: FinishedRun) -> pd.DataFrame:
    """A run's eval.csv. A network without BatchNorm gets its ``*_recalibrated`` columns empty
    when its recipe asked for re-estimation (training skipped it: nothing to re-estimate),
    so that a table of such runs alone still tells the verdicts that its stored accuracies
    need no BatchNorm protocol (``analysis.verdicts.NO_BATCH_NORM``)."""
    table = run.record.evaluation()
    spec = run.record.spec()
    if (spec.recipe.recalibrate_bn_images and f"{RECALIBRATED[0]}_recalibrated" not in table
            and not arch_has_batch_norm(spec.arch)):
        table = table.assign(**{f"{column}_recalibrated": float("nan") for column in RECALIBRATED})
    return table


def evals_frame(runs: list[FinishedRun]):

    frames = [run_evaluation(run).assign(role=run.role, arch=run.arch, method=run.method, seed=run.seed,
                                             run_id=run.record.path.name, dataset=run.record.spec().dataset)
              for run in runs]
    columns = ["role", "arch", "method", "seed", "run_id", "dataset", "split", "skip", "acc1_pct", "acc5_pct",
               "loss", "gflops", "params_m"]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


def runs_frame(runs: list[FinishedRun]):

    rows = []
    for run in runs:
        metrics = run.record.metrics()
        env = run.record.env()
        rows.append({"role": run.role, "arch": run.arch, "method": run.method, "seed": run.seed,
                     "run_id": run.record.path.name,
                     "epoch_s": _mean([m.get("epoch_s") for m in metrics]),
                     "images_per_s": _mean([m.get("images_per_s") for m in metrics]),
                     "machine_load_5min": _mean([m.get("machine_load_5min") for m in metrics]),
                     "wall_s": env.get("wall_s"),
                     "device": run.record.device_names()})
    return pd.DataFrame(rows, columns=["role", "arch", "method", "seed", "run_id", "epoch_s", "images_per_s",
                                       "machine_load_5min", "wall_s", "device"])


def _mean(values):
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else float("nan")


# --------------------------------------------------------------------------- writing
def check_device(device: str, reads_only: bool) -> None:
    """A device this machine lacks is accepted only to read what was measured on it; to
    train or measure, the device must exist (``parse_device``'s check, index included)."""
    if reads_only:
        return
    try:
        parse_device(device, allow_auto=True)
    except ReproError as error:
        raise ReproError(f"{error} (--no-train draws the artifacts from the timings cached for it)") from None


def measurement_device(runtime: Runtime) -> str:
    if runtime.device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return runtime.device


def trained_on(runs: list[FinishedRun], device: str) -> list[FinishedRun]:
    """The runs trained wholly on ``device``'s kind: their epochs are what training cost there
    (table 2 shows them beside the timings taken on that device)."""
    return [r for r in runs if all(d["kind"] == device_kind(device) for d in r.record.segment_devices())]


def artifact_stem(art: Artifact, device: str) -> str:
    """File stem of an artifact: one drawn from timings taken off the CPU carries the device
    kind (``table2-cuda``), so the CPU's and the GPU's versions sit side by side."""
    kind = device_kind(device)
    timed = any(MEASUREMENTS.get(name).per_device for name in art.measurements)
    return f"{art.name}-{kind}" if timed and kind != "cpu" else art.name


def write_artifact(art: Artifact, study: Study, plan: dict[str, PlannedRun], seeds: int, runtime: Runtime,
                   echo, reproduce_started: float, partial: bool = False) -> list[Path]:
    """Builds and writes one artifact with its provenance; ``partial``: from its finished runs
    only, naming the missing ones (in the provenance, the table's Markdown and the output)."""
    started = time.perf_counter()
    runs = finished_runs(art, study, plan, seeds, partial=partial)
    missing = unfinished_runs(art, study, plan, seeds) if partial else []
    if missing and not runs:
        raise ReproError(f"none of its {len(missing)} runs has finished")
    if missing:
        echo(f"{art.name}: from {len(runs)} finished runs; {len(missing)} not finished: {', '.join(missing)}")
    root = Path(runtime.results_dir) / study.preset
    device = measurement_device(runtime)
    ctx = MeasureContext(study, runs, runtime.data_path, device)
    measured = {name: measure(name, ctx, root / "measurements", echo) for name in art.measurements}
    stem = artifact_stem(art, device)
    inputs = ArtifactInputs(study, evals_frame(runs), runs_frame(trained_on(runs, device)), measured,
                            load_reference())
    output = art.build(inputs)
    if art.kind == "table":
        folder = root / "tables"
        markdown = table_markdown(art, study, output, runs, missing, stem,
                                  timed_on(art.measurements, root / "measurements", device))
        paths = [write_text(folder / f"{stem}.csv", output.to_csv(index=False)),
                 write_text(folder / f"{stem}.md", markdown)]
        echo(markdown)
    else:
        folder = root / "figures"
        if missing:
            # above the figure's edge (the tight bounding box takes it in): below it sit the legends
            output.text(0.005, 1.01, f"Incomplete: drawn from {len(runs)} finished runs, {len(missing)} not finished "
                        f"(listed in {stem}.provenance.json)", fontsize=7, color="0.35", ha="left", va="bottom")
        paths = [save_figure(output, folder / f"{stem}.png"), save_figure(output, folder / f"{stem}.pdf")]
        plt.close(output)
    envs = [r.record.env() for r in runs]
    walls = [r.record.wall_time() for r in runs]
    provenance = {
        "artifact": art.name, "title": art.title, "preset": study.preset, "dataset": study.dataset,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "command": command_line(),
        "build_s": round(time.perf_counter() - started, 1),
        "reproduce_wall_s": round(time.perf_counter() - reproduce_started, 1),
        "training_wall_s": sum(wall or 0 for wall, _ in walls),
        # False where a run's killed segment left its time after the last checkpoint unrecorded
        "training_wall_s_complete": all(complete for _, complete in walls),
        "runs": [{"role": r.role, "run_id": r.record.path.name, "seed": r.seed, "wall_s": wall,
                  "wall_s_complete": complete, "git": env.get("git"), "hardware": r.record.device_names()}
                 for r, env, (wall, complete) in zip(runs, envs, walls)],
        "measurements": list(art.measurements), "unfinished_runs": missing, **collect_environment()}
    paths.append(write_json(folder / f"{stem}.provenance.json", provenance))
    echo(f"wrote {', '.join(str(p) for p in paths[:-1])}")
    return paths


def save_figure(figure, path: Path) -> Path:
    """PDFs without their creation date, so that redrawing the same figure leaves the same
    bytes (the provenance file records when it was written)."""
    kind = path.suffix[1:]
    metadata = {"CreationDate": None} if kind == "pdf" else None
    return atomic_write(path, lambda tmp: figure.savefig(tmp, format=kind, dpi=150, bbox_inches="tight",
                                                         metadata=metadata))


def code_identity_line(runs: list[FinishedRun]) -> str:
    """Which commits the runs were trained from: where each started and where each resume
    started (and whether the code differed from them)."""
    counts: dict[str, int] = {}
    for run in runs:
        names = [(g.get("commit") or "unknown")[:10] + (" (uncommitted changes)" if g.get("dirty") else "")
                 for g in run.record.code_identities()]
        for name in names or ["unknown"]:
            counts[name] = counts.get(name, 0) + 1
    return "Runs trained from commit " + ", ".join(f"{c} ({n} run{'s' * (n > 1)})" for c, n in counts.items()) + \
        " (a run resumed on another commit counts under each)."


def table_markdown(art: Artifact, study: Study, table, runs: list[FinishedRun], missing: list[str] = (),
                   stem: str | None = None, hardware: list[str] = ()) -> str:

    stem = stem or art.name
    kind = stem[len(art.name) + 1:]  # the device kind of an artifact drawn from its timings ('' on the CPU)
    seeds = sorted({r.seed for r in runs})
    command = (f"python cli.py reproduce {art.name} --preset {study.preset}"
               f"{f' --seeds {len(seeds)}' if len(seeds) > 1 else ''}"
               f"{''.join(f' --arch {a}' for a in study.only_archs)}{f' --device {kind}' if kind else ''}")
    if runs:
        lines = [f"# {stem}: {art.title}", "",
                 f"Preset `{study.preset}`, data set `{study.dataset}`, seeds {', '.join(map(str, seeds))}; "
                 f"written by `{command}` from the run records listed in `{stem}.provenance.json`.", "",
                 code_identity_line(runs), ""]
        if missing:
            lines += [f"**Incomplete**: written with `--no-train` while {len(missing)} of its runs had not finished "
                      f"({', '.join(f'`{m}`' for m in missing)}); rows that need them are missing or have fewer "
                      f"seeds.", ""]
    else:
        lines = [f"# {stem}: {art.title}", "",
                 f"Preset `{study.preset}`; written by `{command}` from measurements alone, no training runs "
                 f"(commit, settings and hardware in `{stem}.provenance.json`).", ""]
    if kind:
        on = f" ({', '.join(hardware)})" if hardware else ""
        lines += [f"Timings taken on `{kind}`{on}; `{art.name}.md` holds the CPU's.", ""]
    if study.dataset != "imagenet":
        lines += ["Our networks are the CPU-sized analogues on a small data set; the paper's columns are its "
                  "ImageNet numbers (see analysis/reference/paper.csv). Compare directions and gaps, not values.", ""]
    lines += [to_markdown(table), ""]
    lines += [art.reading, ""] if art.reading else []
    converged = study.preset not in ("smoke", "quick")
    notes = verdicts(art.name, table, converged)
    if notes:
        lines += ["## Against the paper", "",
                  f"Rule: {rule_for(art.name)}." if converged or art.name in TIMED else
                  f"The `{study.preset}` preset trains one epoch: far from convergence, so every accuracy verdict "
                  f"here is INCONCLUSIVE by construction (rule for converged presets: {rule_for(art.name)}).", ""]
        lines += [f"- {note}" for note in notes] + [""]
    return "\n".join(lines)
