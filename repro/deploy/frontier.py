"""Pareto frontiers and budgets over a table of sub-networks (pure pandas, no torch).

A table has one row per sub-network: ``skip``, ``acc1_pct`` and cost columns in the units
their names say: ``latency_ms``, ``gflops``, ``energy_mj``.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

from repro.errors import ReproError

if TYPE_CHECKING:
    import pandas as pd

# budget keyword -> the cost column it bounds
BUDGETS = {"budget_ms": "latency_ms", "budget_gflops": "gflops", "budget_mj": "energy_mj"}
UNITS = {"latency_ms": "ms", "gflops": "GFLOPs", "energy_mj": "mJ"}


def one_budget(budget_ms: float | None = None, budget_gflops: float | None = None,
               budget_mj: float | None = None, *, required: bool = True) -> tuple[str, float] | None:
    """(cost column, bound) of the one budget given; None when none is given and not required."""
    given = {BUDGETS[k]: v for k, v in dict(budget_ms=budget_ms, budget_gflops=budget_gflops,
                                              budget_mj=budget_mj).items() if v is not None}
    if len(given) > 1 or (required and not given):
        raise ReproError("give exactly one budget: --budget-ms, --budget-gflops or --budget-mj")
    if not given:
        return None
    (column, bound), = given.items()
    if not (isinstance(bound, (int, float)) and math.isfinite(bound) and bound > 0):
        raise ReproError(f"budget {bound!r} {UNITS[column]}: expected a positive number")
    return column, float(bound)


def pareto_frontier(table: pd.DataFrame, cost: str) -> pd.DataFrame:
    """The rows no other row beats on both ``cost`` (lower) and ``acc1_pct`` (higher), by
    increasing cost (so by increasing accuracy too). Rows without a cost are left out."""
    missing = {"skip", "acc1_pct", cost} - set(table.columns)
    if missing:
        raise ReproError(f"the sub-network table lacks {', '.join(sorted(missing))}")
    rows = table[table[cost].notna()].sort_values([cost, "acc1_pct"], ascending=[True, False], kind="stable")
    keep, best = [], -math.inf
    for index, accuracy in rows["acc1_pct"].items():
        if accuracy > best:
            keep.append(index)
            best = accuracy
    return rows.loc[keep].reset_index(drop=True)


def best_within(frontier: pd.DataFrame, cost: str, bound: float) -> int | None:
    """Row index of the most accurate frontier entry whose ``cost`` is within ``bound``
    (None if even the cheapest is over)."""
    fits = frontier.index[frontier[cost] <= bound]
    return int(fits[-1]) if len(fits) else None


def describe(cost: str, value: float) -> str:
    return f"{value:.4g} {UNITS[cost]}"
