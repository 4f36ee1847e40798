"""Accuracy vs GFLOPs of every network a results folder holds, per role (pandas only).

``evals`` is the per-(run, split, sub-network) frame of the tables and figures
(``paper.collect.finished_evals`` gathers it from a results folder). Shown by
notebooks/03-pareto.ipynb with ``analysis.figures.frontiers``.
"""
from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from analysis.aggregate import ordered_unique, pareto_frontier, summarize

RECALIBRATED = "acc1_pct_recalibrated"
RECALIBRATED_SUFFIX = " (recalibrated BN)"


def with_recalibrated(evals: pd.DataFrame, roles: Sequence[str] = ("ADN",)) -> pd.DataFrame:
    """``evals`` plus, for each of ``roles``, its rows again as role "<role> (recalibrated
    BN)" with ``acc1_pct`` taken from ``acc1_pct_recalibrated`` (BatchNorm statistics
    re-estimated per sub-network). Rows without that column's value (records written before
    it existed) get no copy."""
    if RECALIBRATED not in evals.columns:
        return evals
    rows = evals[evals["role"].isin(roles) & evals[RECALIBRATED].notna()]
    if not len(rows):
        return evals
    copies = rows.assign(acc1_pct=rows[RECALIBRATED], role=rows["role"] + RECALIBRATED_SUFFIX)
    # each copy right after its role, so that tables and legends list them together
    order = [name for role in ordered_unique(evals["role"])
             for name in (role, role + RECALIBRATED_SUFFIX)]
    rank = {name: i for i, name in enumerate(order)}
    both = pd.concat([evals, copies], ignore_index=True)
    return both.sort_values("role", key=lambda role: role.map(rank), kind="stable", ignore_index=True)


def frontier_table(evals: pd.DataFrame, split: str = "test") -> pd.DataFrame:
    """One row per (arch, role, skip) of ``split``: mean ``gflops`` and ``acc1_pct`` over
    seeds, ``acc1_std`` (ddof 1; NaN for one seed), ``n_seeds``, and ``on_frontier``: whether
    the sub-network is on its role's Pareto frontier (no cheaper one of the same role is as
    accurate). Sorted by arch, role (order of appearance) and GFLOPs."""
    columns = ["arch", "role", "skip", "gflops", "acc1_pct", "acc1_std", "n_seeds", "on_frontier"]
    rows = evals[evals["split"] == split]
    if not len(rows):
        return pd.DataFrame(columns=columns)
    table = summarize(rows, ["arch", "role", "skip"], ["gflops", "acc1_pct"])
    front = set()
    for _, group in table.groupby(["arch", "role"], sort=False):
        front.update(pareto_frontier(group).index)
    table = table.assign(on_frontier=table.index.isin(front))
    rank = {key: {v: i for i, v in enumerate(ordered_unique(table[key]))} for key in ("arch", "role")}
    order = table.sort_values("gflops", kind="stable").sort_values(
        ["arch", "role"], key=lambda column: column.map(rank[column.name]), kind="stable")
    return order[columns].reset_index(drop=True)
