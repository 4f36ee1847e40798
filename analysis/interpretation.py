"""What our verdict lines add up to, in words: one data-driven paragraph per claim for
results/README.md (``analysis.claims``). Pure: verdict lines, tables and evals frames in,
sentences out; nothing here judges anew, it counts and averages what the verdicts and
tables already hold.
"""
from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping

import pandas as pd

from analysis.aggregate import is_base, is_super, summarize
from analysis.tables import SHORTCUTS_ROLE
from analysis.verdicts import NO_BATCH_NORM, PROTOCOLS, n_seeds

VERDICT_WORDS = ("AGREES", "DISAGREES", "INCONCLUSIVE")
# The evals' accuracy column of each BatchNorm protocol, and how verdict lines name it.
EVAL_COLUMNS = {"stored": "acc1_pct", "re-estimated": "acc1_pct_recalibrated"}
PROTOCOL_WORDS = {"stored": PROTOCOLS["acc1_pct"], "re-estimated": PROTOCOLS["acc1_recal_pct"],
                  "no BatchNorm": NO_BATCH_NORM}


def verdict_of_line(line: str) -> str | None:
    """The verdict a line ends with (AGREES, DISAGREES or INCONCLUSIVE), else None."""
    tail = line.rsplit(": ", 1)[-1]
    return next((word for word in VERDICT_WORDS if tail.startswith(word)), None)


def verdict_tally(lines: list[str]) -> str:
    """"4 comparisons at n = 2-3 seeds: with stored BatchNorm statistics 1 agrees, 0 disagree,
    1 is inconclusive; with ..." (per protocol when the lines name one)."""
    seeds = [int(n) for line in lines for n in re.findall(r"n = (\d+) seeds?\b", line)]
    groups: dict[str, Counter] = {}
    for line in lines:
        verdict = verdict_of_line(line)
        if verdict is None:
            continue
        protocol = next((key for key, words in PROTOCOL_WORDS.items() if words in line), "")
        groups.setdefault(protocol, Counter())[verdict] += 1
    if not groups:
        return ""
    total = sum(sum(c.values()) for c in groups.values())
    span = "" if not seeds else f" at n = {min(seeds)} seed{'s' * (max(seeds) != 1)}" if min(seeds) == max(seeds) \
        else f" at n = {min(seeds)}-{max(seeds)} seeds"
    parts = [("with " + PROTOCOL_WORDS[protocol] + " " if protocol else "")
             + f"{c['AGREES']} agree{'s' * (c['AGREES'] == 1)}, {c['DISAGREES']} disagree{'s' * (c['DISAGREES'] == 1)}, "
             f"{c['INCONCLUSIVE']} {'is' if c['INCONCLUSIVE'] == 1 else 'are'} inconclusive"
             for protocol, c in groups.items()]
    return f"{total} comparison{'s' * (total != 1)}{span}: " + "; ".join(parts) + "."


def protocol_shift(table1: pd.DataFrame, network: str) -> str:
    """How much re-estimating BatchNorm statistics moves ``network``'s gap to its individual
    counterpart in Table 1, per architecture."""
    needed = {"network", "delta_vs_individual_pct", "delta_vs_individual_recal_pct"}
    if table1 is None or not needed <= set(table1.columns):
        return ""
    rows = table1[(table1["network"] == network)].dropna(subset=sorted(needed - {"network"}))
    parts = [f"{row['arch']}: {row['delta_vs_individual_pct']:+.2f} pp with stored statistics, "
             f"{row['delta_vs_individual_recal_pct']:+.2f} pp with re-estimated ones"
             for _, row in rows.iterrows()]
    return ("The " + network + "'s gap to the individual network: " + "; ".join(parts) + ". What moves between "
            "the two is due to the statistics, not the weights.") if parts else ""


def _per_skip(evals: pd.DataFrame, column: str) -> pd.DataFrame:
    rows = evals[(evals["split"] == "test")].dropna(subset=[column])
    return summarize(rows, ["arch", "role", "skip"], [column])


def depth_matched_means(diffs: Mapping[tuple[str, str], list[float]]) -> str:
    """"ADN minus each comparison, averaged over depths: ..." from the depth-matched
    differences by (comparison, protocol)."""
    parts = [f"{comparison} {sum(values) / len(values):+.2f} pp over {len(values)} depth"
             f"{'s' * (len(values) != 1)} ({protocol})" for (comparison, protocol), values in diffs.items() if values]
    return ("ADN minus each comparison, averaged over depths: " + "; ".join(parts) + ".") if parts else ""


def shortcut_effect(evals: pd.DataFrame | None) -> str:
    """What skip-aware projection-shortcut norms change (issue 8's variant): its sub-networks
    minus plain ADN's, averaged over the ends (super-net and base-net) and over the mixed
    configurations selected without training, per protocol."""
    if evals is None or not len(evals) or SHORTCUTS_ROLE not in set(evals["role"]):
        return ""
    parts = []
    for protocol, column in EVAL_COLUMNS.items():
        if column not in evals:
            continue
        summary = _per_skip(evals, column)
        wide = summary.pivot_table(index=["arch", "skip"], columns="role", values=column)
        if not {"ADN", SHORTCUTS_ROLE} <= set(wide.columns):
            continue
        gap = (wide[SHORTCUTS_ROLE] - wide["ADN"]).dropna()
        ends = gap[[is_super(s) or is_base(s) for _, s in gap.index]]
        mixed = gap.drop(ends.index)
        n = int(summary[summary["role"] == SHORTCUTS_ROLE]["n_seeds"].min())
        text = f"with {PROTOCOL_WORDS[protocol]} ({n_seeds(n)}): "
        text += ", ".join(part for part in (
            f"{ends.mean():+.2f} pp at the trained ends" if len(ends) else "",
            f"{mixed.mean():+.2f} pp over the {len(mixed)} mixed sub-networks" if len(mixed) else "") if part)
        parts.append(text)
    return ("Skip-aware shortcut norms (our variant) minus plain ADN, " + "; ".join(parts) + ".") if parts else ""
