"""Plain-language comparison of our tables with the paper's claims: one sentence per
claim, saying whether our run agrees. Pure functions from an artifact's table to lines.
"""
from __future__ import annotations

import math

import pandas as pd

from analysis.aggregate import is_base, is_super


def verdicts(artifact: str, table: pd.DataFrame) -> list[str]:
    check = VERDICTS.get(artifact)
    return check(table) if check is not None else []


def _agrees(ours: float, paper_sign: float) -> str:
    if math.isnan(ours):
        return "not measured"
    return "agrees" if (ours > 0) == (paper_sign > 0) else "DISAGREES"


def table1_verdicts(table: pd.DataFrame) -> list[str]:
    lines = []
    for _, row in table[table["network"].str.startswith("ADN")].iterrows():
        ours = row["delta_vs_individual_pct"]
        paper = row.get("paper_delta_pct", math.nan)
        claim = (f"paper ({row['paper_model']}, ImageNet): {paper:+.1f} pp" if not pd.isna(paper)
                 else "the paper claims ADN networks beat the individual ones")
        lines.append(f"{row['arch']} {row['network']} vs individual network of the same depth: ours "
                     f"{ours:+.2f} pp top-1; {claim}: {_agrees(ours, 1.0)}.")
    return lines


def table2_verdicts(table: pd.DataFrame) -> list[str]:
    steps = table.set_index("method_label")["step_ms"]
    if "adn" not in steps or "alphanet" not in steps:
        return []
    ratio = steps["alphanet"] / steps["adn"]
    return [f"AlphaNet-style / ADN training time per step: x{ratio:.2f}; the paper finds ADN much cheaper "
            f"(2 vs 4 forward-backward passes): {_agrees(ratio - 1.0, 1.0)}."]


def _base_net_gaps(table: pd.DataFrame, label: str, reference: str, others=None):
    """(arch, other, base-net top-1 of ``reference`` minus ``other``) for each row label in
    column ``label`` (``others``: only these, when given) of each architecture."""
    for arch, rows in table.groupby("arch", sort=False):
        rows = rows.set_index(label)
        if reference not in rows.index:
            continue
        for other in rows.index.drop(reference):
            if others is None or other in others:
                yield arch, other, rows.loc[reference, "base_acc1_pct"] - rows.loc[other, "base_acc1_pct"]


def table3_verdicts(table: pd.DataFrame) -> list[str]:
    return [f"{arch}: base-net top-1 of ADN minus ADN {variant}: {gap:+.2f} pp; the paper finds "
            f"each component helps: {_agrees(gap, 1.0)}."
            for arch, variant, gap in _base_net_gaps(table, "variant", "ADN",
                                                     ("w/o self-distillation", "w/o skip-aware norms", "w/o both"))]


def table4_verdicts(table: pd.DataFrame) -> list[str]:
    return [f"{arch}: base-net top-1 with super-net -> base-net distillation minus {other}: "
            f"{gap:+.2f} pp; the paper finds the exclusive super-to-base strategy best: {_agrees(gap, 1.0)}."
            for arch, other, gap in _base_net_gaps(table, "strategy", "super-net -> base-net (ADN)")]


def table6_verdicts(table: pd.DataFrame) -> list[str]:
    lines = []
    for arch, rows in table.groupby("arch", sort=False):
        ends = rows[[is_super(skip) or is_base(skip) for skip in rows["skip"]]]
        middle = rows.drop(ends.index)
        if len(ends) != 2 or middle.empty:
            continue
        floor = ends["acc1_pct"].min()
        below = middle[middle["acc1_pct"] < floor - 1.0]
        worst = middle.loc[middle["acc1_pct"].idxmin()]
        lines.append(f"{arch}: {len(below)} of {len(middle)} sub-networks selected without training fall more than "
                     f"1 pp below both trained ends (worst {worst['skip']} {worst['acc1_pct']:.2f}% vs base-net "
                     f"{floor:.2f}%); the paper finds them between the base-net and the super-net: "
                     f"{'agrees' if below.empty else 'DISAGREES'}.")
    return lines


VERDICTS = {"table1": table1_verdicts, "table2": table2_verdicts, "table3": table3_verdicts,
            "table4": table4_verdicts, "table6": table6_verdicts}
