"""``python cli.py claims --preset mini``: results/README.md, one section per claim of the
paper with our verdicts, from the tables ``reproduce`` wrote and the finished run records
(nothing is trained or measured here).
"""
from __future__ import annotations

import dataclasses
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from analysis.claims import claims_markdown
from analysis.reference import load_reference
from analysis.figures import FIG7_ROLES
from analysis.tables import table6, table7
from paper.collect import finished_evals
from paper.plan import plan_runs, select_artifacts
from paper.study import study_for
from repro.files import write_text
from repro.runs import RunRecord, collect_environment

CONVERGED_PRESETS = ("mini", "paper")
# The converged study's scope: seeds per artifact, and the architectures of an artifact where
# a preset's study keeps to fewer than the preset names (mini's ablations: resnet_mini only).
STUDY_SEEDS = {"table1": 3, "table6": 3, "fig3": 3, "fig4": 3, "table3": 2, "table4": 2, "table7": 2, "fig7": 2}
STUDY_ARCHS = {("mini", "table3"): ("resnet_mini",)}
NAMED_RUNS = 10  # the unfinished runs the header names one by one; more are counted


def reproduce_command(preset: str, artifact: str) -> str:
    seeds = STUDY_SEEDS.get(artifact, 1) if preset in CONVERGED_PRESETS else 1
    archs = STUDY_ARCHS.get((preset, artifact), ())
    return (f"python cli.py reproduce {artifact} --preset {preset}" + (f" --seeds {seeds}" if seeds > 1 else "")
            + "".join(f" --arch {arch}" for arch in archs))


def unfinished_study_runs(results_dir: str | Path, preset: str) -> list[str]:
    """Ids of the runs in a converged preset's study scope (``STUDY_SEEDS``, ``STUDY_ARCHS``)
    that have not finished under ``results_dir``."""
    study, left = study_for(preset), {}
    for artifact, seeds in STUDY_SEEDS.items():
        scope = dataclasses.replace(study, only_archs=STUDY_ARCHS.get((preset, artifact), ()))
        left.update({run_id: None for run_id, run in plan_runs(select_artifacts([artifact]), scope, seeds,
                                                               results_dir).items() if run.status != "finished"})
    return list(left)


def study_state(results_dir: str | Path, preset: str) -> str:
    """Whether the preset's study scope has finished, naming the runs it still lacks."""
    left = unfinished_study_runs(results_dir, preset)
    if not left:
        return "complete: every run of its scope has finished"
    named = (", ".join(f"`{run_id}`" for run_id in left) if len(left) <= NAMED_RUNS else
             f"`python cli.py reproduce ARTIFACT --preset {preset} --seeds N --dry-run` lists an artifact's")
    return (f"{len(left)} run{'s' * (len(left) > 1)} of its scope not finished yet ({named}); "
            "the verdicts below use the finished ones")


def written_frames(folder: Path) -> dict[str, pd.DataFrame]:
    """The tables ``reproduce`` wrote and the measurements it cached, by name."""
    return {path.stem: pd.read_csv(path) for path in [*sorted((folder / "tables").glob("table*.csv")),
                                                       *sorted((folder / "measurements").glob("*.csv"))]}


def commits_text(identities: list[dict]) -> str:
    """Commits in order, "+" marking uncommitted changes."""
    return ", ".join((g.get("commit") or "?")[:8] + ("+" if g.get("dirty") else "") for g in identities) or "?"


def run_summary(runs_folder: Path) -> list[str]:
    """One line per finished run: id, where it ran, its commits and wall time; then their count.
    Unfinished records are left out: they exist only on the machine that trains them (a
    committed README would count another machine's runs), and the header names the runs
    the study still lacks (``study_state``)."""
    lines, lower_bounds = [], 0
    for spec_file in sorted(runs_folder.glob("*/spec.json")):
        record = RunRecord(spec_file.parent)
        if not record.is_finished():
            continue
        seconds, complete = record.wall_time()
        lower_bounds += not complete
        wall = f"{'>= ' if not complete else ''}{seconds / 3600:.2f} h" if seconds else "?"
        lines.append(f"| `{record.path.name}` | {record.device_names()} | {commits_text(record.code_identities())} "
                     f"| {wall} |")
    header = ["| finished run | device | commits (+: uncommitted changes) | wall time |", "|---|---|---|---|"]
    footer = [f"{len(lines)} finished run{'s' * (len(lines) != 1)} (a table uses a run once it has finished)."]
    if lower_bounds:
        footer.append(f"A wall time with >= is a lower bound ({lower_bounds} run{'s' * (lower_bounds > 1)}): "
                      "a training process of the run was killed (a session's end, a machine taken back), and the "
                      "time it spent after its last checkpoint, or all of it where it was recorded before segments "
                      "noted their checkpoints, went unrecorded.")
    return (header if lines else []) + lines + ["", " ".join(footer)]


def write_claims(results_dir: str | Path = "results", preset: str = "mini") -> Path:
    """Writes ``<results_dir>/README.md`` for ``preset``'s tables and runs; returns its path."""
    root = Path(results_dir)
    folder = root / preset
    tables = written_frames(folder)
    evals = finished_evals(root, preset, [a.name for a in select_artifacts(["fig4", "fig7"])])
    if "table6" not in tables and (evals["role"] == "ADN").any():
        # the untrained sub-networks' claim needs only ADN's runs: judge it from those that finished
        tables["table6"] = table6(evals, load_reference())
    if evals["role"].isin(FIG7_ROLES).any():
        # figure 7 writes no table: its splits are judged like table 7's, from its runs
        tables["fig7"] = table7(evals, FIG7_ROLES)
    body = claims_markdown(tables, evals, preset, preset in CONVERGED_PRESETS,
                           lambda artifact: reproduce_command(preset, artifact))
    env = collect_environment()
    text = "\n".join([
        "# Results: the paper's claims against our runs", "",
        f"Written by `python cli.py claims --preset {preset}` at commit {commits_text([env.get('git') or {}])} on "
        f"{datetime.now(timezone.utc).isoformat(timespec='minutes')}, from `{preset}/tables/*.csv`, `{preset}/measurements/*.csv` "
        f"and the finished run records in `{preset}/runs/`; do not edit by hand. Every table and figure beside it has a "
        "`.provenance.json` naming its runs, their commits, the hardware and the library versions.", "",
        "- `quick/`: one-epoch runs of every artifact, a smoke test of the whole pipeline; not converged.",
        "- `mini/`: the converged CPU-sized study (15 epochs, resnet_mini / vit_mini / mobilenet_v2_mini on "
        f"Fashion-MNIST, seeds): {study_state(root, 'mini')}.",
        "- `benchmarks/`: speed ratios measured within one run (see the README's Benchmarks).", "",
        f"## Claims ({preset})", "", body,
        f"## Runs of `{preset}`", "", *run_summary(folder / "runs"), ""])
    return write_text(root / "README.md", text)
