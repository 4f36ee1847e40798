"""Shared helpers: pick rows, aggregate over seeds, Pareto frontiers, Markdown rendering.

Accuracies are in percent (``*_pct``), FLOPs in G multiply-adds (``gflops``). Over seeds we
report the mean, the sample std (ddof=1, NaN for one seed) and ``n_seeds``; the std of a mean
column ``X_pct`` is named ``X_std`` (``acc1_pct`` -> ``acc1_std``).
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import pandas as pd

from repro.errors import ReproError

NO_VALUE = "–"


def std_name(column: str) -> str:
    """``acc1_pct`` -> ``acc1_std``; ``gflops`` -> ``gflops_std``."""
    return column[: -len("_pct")] + "_std" if column.endswith("_pct") else column + "_std"


def is_super(skip: str) -> bool:
    """True for the super-net (every stage keeps its skippable sub-path: all ``F``)."""
    return set(str(skip).upper()) == {"F"}


def is_base(skip: str) -> bool:
    """True for the base-net (every stage skips its skippable sub-path: all ``T``)."""
    return set(str(skip).upper()) == {"T"}


def ordered_unique(values: Iterable) -> list:
    """Distinct values in order of first appearance."""
    return list(dict.fromkeys(values))


def select(evals: pd.DataFrame, roles: Sequence[str], artifact: str, split: str = "test",
           require: bool = True) -> pd.DataFrame:
    """Rows of ``evals`` with one of ``roles`` on ``split``.

    Raises ReproError naming the artifact when ``require`` and no row matches (a table with
    nothing to show is an error; a missing role among several is not).
    """
    rows = pd.DataFrame() if evals is None else evals
    if len(rows):
        rows = rows[rows["role"].isin(roles) & (rows["split"] == split)]
    if require and not len(rows):
        raise ReproError(f"{artifact}: no runs with roles {list(roles)} on the {split} split")
    return rows


def summarize(rows: pd.DataFrame, by: Sequence[str], values: Sequence[str]) -> pd.DataFrame:
    """Mean, std (ddof=1) and n_seeds of ``values`` over seeds, per group ``by``.

    Input: one or more rows per (by..., seed); rows of one seed are averaged first so that a
    seed counts once. Output columns: ``by``, each value (mean), its ``std_name``, ``n_seeds``;
    groups in order of first appearance.
    """
    by = list(by)
    per_seed = rows.groupby(by + ["seed"], sort=False, dropna=False)[list(values)].mean().reset_index()
    grouped = per_seed.groupby(by, sort=False, dropna=False)
    out = grouped[list(values)].mean()
    for value in values:
        out[std_name(value)] = grouped[value].std(ddof=1)
    out["n_seeds"] = grouped["seed"].nunique()
    return out.reset_index()


def per_seed_summary(rows: pd.DataFrame, keys: Sequence[str] = ("arch",)) -> pd.DataFrame:
    """One row per (keys..., role, seed) from per-sub-network rows of one split.

    Output columns: keys, role, seed, super_acc1_pct, base_acc1_pct, mean_subnet_acc1_pct,
    super_gflops, base_gflops, n_subnets (NaN where the super- or base-net was not evaluated);
    where ``rows`` have ``acc1_pct_recalibrated`` (BatchNorm statistics re-estimated per
    sub-network) also super_acc1_recal_pct and base_acc1_recal_pct.
    """
    recalibrated = "acc1_pct_recalibrated" in rows.columns
    values = ["acc1_pct", "gflops"] + (["acc1_pct_recalibrated"] if recalibrated else [])
    records = []
    for group, run in rows.groupby(list(keys) + ["role", "seed"], sort=False):
        by_skip = run.groupby("skip", sort=False)[values].mean()
        supers = by_skip[[is_super(s) for s in by_skip.index]]
        bases = by_skip[[is_base(s) for s in by_skip.index]]
        record = {
            **dict(zip(list(keys) + ["role", "seed"], group)),
            "super_acc1_pct": supers["acc1_pct"].mean(), "base_acc1_pct": bases["acc1_pct"].mean(),
            "mean_subnet_acc1_pct": by_skip["acc1_pct"].mean(),
            "super_gflops": supers["gflops"].mean(), "base_gflops": bases["gflops"].mean(),
            "n_subnets": len(by_skip),
        }
        if recalibrated:
            record.update(super_acc1_recal_pct=supers["acc1_pct_recalibrated"].mean(),
                          base_acc1_recal_pct=bases["acc1_pct_recalibrated"].mean())
        records.append(record)
    return pd.DataFrame.from_records(records)


def pareto_frontier(points: pd.DataFrame, x: str = "gflops", y: str = "acc1_pct") -> pd.DataFrame:
    """The non-dominated rows (no other row has x <= and y >= with one strict), sorted by x.

    Lower ``x`` (cost) and higher ``y`` (accuracy) are better.
    """
    ranked = points.dropna(subset=[x, y]).sort_values([x, y], ascending=[True, False])
    best, keep = -math.inf, []
    for index, value in ranked[y].items():
        if value > best:
            keep.append(index)
            best = value
    return ranked.loc[keep]


def _format_number(column: str, value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return NO_VALUE
    if isinstance(value, bool):
        return "yes" if value else "no"
    if not isinstance(value, float):
        return str(value)
    if column.startswith("n_") and value.is_integer():
        return str(int(value))
    if "gflops" in column:
        return f"{value:.4f}"
    if "delta" in column:
        return f"{value:+.2f}"
    return f"{value:.2f}"


def to_markdown(table: pd.DataFrame) -> str:
    """Renders a table as Markdown: "mean ± std" for ``X_pct`` columns that have an ``X_std``
    column where n_seeds > 1, the plain mean otherwise; 2 decimals for accuracies, 4 for GFLOPs,
    "–" for missing values. The ``X_std`` columns themselves are folded into their means.
    """
    shown = pd.DataFrame(index=table.index)
    folded = {std_name(c) for c in table.columns if c.endswith("_pct") and std_name(c) in table}
    n_seeds = table["n_seeds"] if "n_seeds" in table else pd.Series(2, index=table.index)
    for column in table.columns:
        if column in folded:
            continue
        cells = [_format_number(column, v) for v in table[column].astype(object)]
        if std_name(column) in folded:
            stds = table[std_name(column)]
            cells = [f"{cell} ± {s:.2f}" if n > 1 and pd.notna(s) and cell != NO_VALUE else cell
                     for cell, s, n in zip(cells, stds, n_seeds)]
        shown[column] = cells
    return shown.to_markdown(index=False, disable_numparse=True)
