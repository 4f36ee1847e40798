"""The finished runs of a results folder as the evals frame the tables and figures take.

``reproduce`` builds its frames from the runs it planned for a fixed number of seeds;
``finished_evals`` instead takes whatever finished runs a folder holds (any seeds, any
subset of the roles), so that a notebook can plot a study that is still under way
(notebooks/03-pareto.ipynb).
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from paper.measurements import FinishedRun
from paper.plan import run_needs, select_artifacts, spec_for
from paper.reproduce import evals_frame
from paper.study import study_for
from repro.runs import RunRecord

# Figure 4's runs (ADN, individual networks, KD-individual, the skip-aware-shortcut variant,
# stochastic depth, AlphaNet-style) and Table 2's (the same methods, under their timing labels).
PARETO_ARTIFACTS = ("fig4", "table2")


def finished_evals(results_dir: str | Path, preset: str, artifacts: Sequence[str] = PARETO_ARTIFACTS):
    """One row per (run, split, sub-network) of every finished run under
    ``<results_dir>/<preset>/runs`` that ``artifacts`` need, for any seed: the columns of
    ``paper.reproduce.evals_frame`` plus whatever else the runs' eval.csv hold (the
    ``*_recalibrated`` accuracies). A run's role is the one the first artifact naming it
    gives it; runs no artifact names, and unfinished ones, are left out. Empty (with the
    columns) when none is there."""
    study = study_for(preset)
    needs = [need for art in select_artifacts(list(artifacts)) for need in run_needs(art, study)]
    runs = []
    for spec_file in sorted((Path(results_dir) / preset / "runs").glob("*/spec.json")):
        record = RunRecord(spec_file.parent)
        if not record.is_finished():
            continue
        seed = record.spec().seed
        role = next((need for need in needs if spec_for(need, study, seed).run_id == record.path.name), None)
        if role is not None:
            runs.append(FinishedRun(role.role, role.arch, role.method, seed, record))
    return evals_frame(runs)
