"""Plain-language comparison of our tables with the paper's claims: one sentence per
claim, saying whether our run agrees. Pure functions from an artifact's table to lines.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from analysis.aggregate import is_base, is_super, std_name


RULE = ("AGREES or DISAGREES (with the paper's direction) only when a two-sided Welch t-test at the 5 % level "
        "rejects 'no difference' (|mean difference| >= t(0.975, df) x its standard error, Welch-Satterthwaite df "
        "rounded down: 12.7 SE at df 1, 4.3 at df 2, 2.8 at df 4) with n >= 2 seeds on each side; "
        "INCONCLUSIVE otherwise")
# Student's t, two-sided 5 % critical values for df = 1..30 (standard tables); beyond 30 the
# df-30 value, slightly conservative (it falls to 1.96).
T_975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
         2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)
NOT_CONVERGED = "INCONCLUSIVE by construction (one epoch is not converged)"
TIMED = ("table2", "fig5", "fig6")  # artifacts judged as timings
TIMING_RULE = ("a timing, not a seed statistic: AGREES or DISAGREES only when the interquartile ranges of the "
               "interleaved runs do not overlap, INCONCLUSIVE when they do")
PROTOCOLS = {"acc1_pct": "stored BatchNorm statistics", "acc1_recal_pct": "BatchNorm statistics re-estimated"}
# the one protocol of a network without BatchNorm (vit_mini's LayerNorm keeps no statistics)
NO_BATCH_NORM = "LayerNorm (no statistics to re-estimate)"


def verdicts(artifact: str, table: pd.DataFrame, converged: bool = True) -> list[str]:
    """One line per claim; ``converged=False`` (the smoke and quick presets) makes every
    verdict INCONCLUSIVE by construction, whatever the numbers say."""
    check = VERDICTS.get(artifact)
    if check is None:
        return []
    judge = verdict_of if converged else (lambda *args, **kw: NOT_CONVERGED if not math.isnan(args[0]) else "not measured")
    return check(table, judge)


def protocol_of(column: str, *rows) -> str:
    """How ``column`` (a stored or re-estimated accuracy, of the whole network or its
    base-net) was evaluated in ``rows``: ``NO_BATCH_NORM`` for a stored column when the
    re-estimated one is present in the table but empty in every row, as for a network
    without BatchNorm; the column's protocol otherwise."""
    recalibrated = column.replace("acc1_pct", "acc1_recal_pct")
    if recalibrated != column and all(recalibrated in row and pd.isna(row[recalibrated]) for row in rows):
        return NO_BATCH_NORM
    return PROTOCOLS[column.removeprefix("base_").removeprefix("super_")]


def n_seeds(n) -> str:
    """"n = 3 seeds", "n = 1 seed"."""
    n = int(n) if n and n == n else 0
    return f"n = {n} seed{'s' * (n != 1)}"


def rule_for(artifact: str) -> str:
    """The rule an artifact's verdicts follow: ``TIMING_RULE`` for timings, ``RULE`` otherwise."""
    return TIMING_RULE if artifact in TIMED else RULE


def t_critical(df: float) -> float:
    """Two-sided 5 % critical value of Student's t at ``df`` rounded down (at least 1)."""
    if not math.isfinite(df) or df >= len(T_975):
        return T_975[-1]
    return T_975[max(int(df), 1) - 1]


def verdict_of(diff: float, se: float = math.nan, n: float = 0, df: float = math.nan, paper_sign: float = 1.0,
               unit: str = "{:.2f} pp") -> str:
    """The three-valued verdict of a difference whose sign the paper predicts (``RULE``);
    ``unit`` formats the threshold (percentage points by default)."""
    if math.isnan(diff):
        return "not measured"
    if not n or n < 2 or math.isnan(se) or math.isnan(df):
        return f"INCONCLUSIVE (n = {int(n) if n else 0} < 2 seeds)"
    threshold = t_critical(df) * se
    if abs(diff) < threshold:
        return (f"INCONCLUSIVE (|difference| < {unit.format(threshold)}, t(0.975, df) standard errors at "
                f"df {df:.1f})")
    return "AGREES" if (diff > 0) == (paper_sign > 0) else "DISAGREES"


def welch(std_a, n_a, std_b, n_b) -> tuple[float, float]:
    """Standard error of a difference of two means and its Welch-Satterthwaite degrees of
    freedom; NaN when a side has fewer than 2 seeds or no spread."""
    sides = [(s * s / n, n) if n and n >= 2 and not pd.isna(s) else (math.nan, n) for s, n in ((std_a, n_a), (std_b, n_b))]
    variance = sum(v for v, _ in sides)
    if math.isnan(variance):
        return math.nan, math.nan
    denominator = sum(v * v / (n - 1) for v, n in sides)
    df = variance * variance / denominator if denominator > 0 else math.inf
    return math.sqrt(variance), df


def table1_verdicts(table: pd.DataFrame, judge=verdict_of) -> list[str]:
    lines = []
    indexed = table.set_index(["arch", "network"])
    counterpart = {"ADN super-net": "individual", "ADN base-net": "individual-Base"}
    for _, row in table[table["network"].str.startswith("ADN")].iterrows():
        other = indexed.loc[(row["arch"], counterpart[row["network"]])] \
            if (row["arch"], counterpart[row["network"]]) in indexed.index else None
        paper = row.get("paper_delta_pct", math.nan)
        claim = (f"paper ({row['paper_model']}, ImageNet): {paper:+.1f} pp" if not pd.isna(paper)
                 else "the paper claims ADN networks beat the individual ones")
        for column, delta in (("acc1_pct", "delta_vs_individual_pct"), ("acc1_recal_pct", "delta_vs_individual_recal_pct")):
            if delta not in table or pd.isna(row[delta]):
                continue
            std = std_name(column)
            se, df = welch(row[std], row["n_seeds"], other[std], other["n_seeds"]) if other is not None \
                else (math.nan, math.nan)
            n = min(row["n_seeds"], other["n_seeds"]) if other is not None else 0
            lines.append(f"{row['arch']} {row['network']} vs individual network of the same depth, "
                         f"{protocol_of(column, row)}, {n_seeds(n)}: ours {row[delta]:+.2f} pp top-1; {claim}: "
                         f"{judge(row[delta], se, n, df)}.")
    return lines


def cheaper_by_quartiles(low_q1: float, low_q3: float, high_q1: float, high_q3: float) -> str:
    """``TIMING_RULE`` for a claim that the first timing is the lower: AGREES when its
    interquartile range lies wholly below the second's, DISAGREES when wholly above."""
    return "AGREES" if low_q3 < high_q1 else "DISAGREES" if low_q1 > high_q3 else "INCONCLUSIVE"


def table2_verdicts(table: pd.DataFrame, judge=verdict_of) -> list[str]:
    steps = table.set_index("method_label")["step_ms"]
    if "adn" not in steps or "alphanet" not in steps:
        return []
    ratio = steps["alphanet"] / steps["adn"]
    # TIMING_RULE, with each interquartile range taken as centred on its median (the table keeps its width)
    iqr = table.set_index("method_label")["step_iqr_ms"] / 2 if "step_iqr_ms" in table else steps * 0
    verdict = cheaper_by_quartiles(steps["adn"] - iqr["adn"], steps["adn"] + iqr["adn"],
                                   steps["alphanet"] - iqr["alphanet"], steps["alphanet"] + iqr["alphanet"])
    return [f"AlphaNet-style / ADN training time per step (median of interleaved steps): x{ratio:.2f}; the paper "
            f"finds ADN much cheaper (2 vs 4 forward-backward passes): {verdict}."]


# the base-net's accuracy columns of tables 3, 4 and 7, by BatchNorm protocol
BASE_PROTOCOLS = {"base_acc1_pct": PROTOCOLS["acc1_pct"], "base_acc1_recal_pct": PROTOCOLS["acc1_recal_pct"]}


def _base_net_gaps(table: pd.DataFrame, label: str, reference: str, others=None):
    """(arch, other, accuracy column, its protocol's name, base-net top-1 of ``reference``
    minus ``other``, its standard error, the smaller seed count, Welch df) for each row label
    in column ``label`` (``others``: only these, when given) of each architecture, under each
    BatchNorm protocol the table has (``BASE_PROTOCOLS``) where both rows have a value."""
    for arch, rows in table.groupby("arch", sort=False):
        rows = rows.set_index(label)
        if reference not in rows.index:
            continue
        ref = rows.loc[reference]
        for other in rows.index.drop(reference):
            if others is not None and other not in others:
                continue
            row = rows.loc[other]
            for column in BASE_PROTOCOLS:
                if pd.isna(ref.get(column)) or pd.isna(row.get(column)):
                    continue
                se, df = welch(ref.get(std_name(column)), ref.get("n_seeds"), row.get(std_name(column)),
                               row.get("n_seeds"))
                n = min(ref.get("n_seeds", 0) or 0, row.get("n_seeds", 0) or 0)
                yield arch, other, column, protocol_of(column, ref, row), ref[column] - row[column], se, n, df


def table3_verdicts(table: pd.DataFrame, judge=verdict_of) -> list[str]:
    return [f"{arch}: base-net top-1 of ADN minus ADN {variant}, {protocol}, {n_seeds(n)}: "
            f"{gap:+.2f} pp; the paper finds each component helps: {judge(gap, se, n, df)}."
            for arch, variant, _, protocol, gap, se, n, df in _base_net_gaps(
                table, "variant", "ADN", ("w/o self-distillation", "w/o skip-aware norms", "w/o both"))]


def table4_verdicts(table: pd.DataFrame, judge=verdict_of) -> list[str]:
    return [f"{arch}: base-net top-1 with super-net -> base-net distillation minus {other}, "
            f"{protocol}, {n_seeds(n)}: {gap:+.2f} pp; the paper finds the exclusive "
            f"super-to-base strategy best: {judge(gap, se, n, df)}."
            for arch, other, _, protocol, gap, se, n, df in _base_net_gaps(table, "strategy",
                                                                         "super-net -> base-net (ADN)")]


def table6_verdicts(table: pd.DataFrame, judge=verdict_of) -> list[str]:
    """Are the sub-networks selected without training between the trained ends? A
    sub-network counts as below when its mean is more than 1 pp under the lower end."""
    lines = []
    for arch, rows in table.groupby("arch", sort=False):
        ends = rows[[is_super(skip) or is_base(skip) for skip in rows["skip"]]]
        middle = rows.drop(ends.index)
        if len(ends) != 2 or middle.empty:
            continue
        n = int(rows["n_seeds"].min())
        for column in ("acc1_pct", "acc1_recal_pct"):
            if column not in rows or rows[column].isna().all():
                continue
            std = rows[std_name(column)]
            floor_row = ends.loc[ends[column].idxmin()]
            below = middle[middle[column] < floor_row[column] - 1.0]
            worst = middle.loc[middle[column].idxmin()]
            se, df = welch(std[worst.name], n, std[floor_row.name], n)
            # the worst sub-network decides: its gap to the lower trained end (positive: above it)
            verdict = judge(worst[column] - floor_row[column] + 1.0, se, n, df)
            protocol = protocol_of(column, *(row for _, row in rows.iterrows()))
            lines.append(f"{arch}, {protocol}, {n_seeds(n)}: {len(below)} of {len(middle)} sub-networks "
                         f"selected without training fall more than 1 pp below both trained ends (worst "
                         f"{worst['skip']} {worst[column]:.2f}% vs {floor_row['skip']} {floor_row[column]:.2f}%); "
                         f"the paper finds them between the base-net and the super-net: {verdict}.")
    return lines


def table7_verdicts(table: pd.DataFrame, judge=verdict_of) -> list[str]:
    """Each split against the official one: the split whose base-net has fewer FLOPs should
    have the less accurate base-net (the paper's trade-off)."""
    lines = []
    for arch, rows in table.groupby("arch", sort=False):
        official = rows.loc[rows["split"].str.contains("official"), "split"]
        if len(official) != 1:
            continue
        by_split = rows.set_index("split")
        ref = by_split.loc[official.iloc[0]]
        for _, split, column, protocol, gap, se, n, df in _base_net_gaps(rows, "split", official.iloc[0]):
            row = by_split.loc[split]
            sign = 1 if row["base_gflops"] < ref["base_gflops"] else -1  # positive: the cheaper one is less accurate
            lines.append(f"{arch}: split {split} vs the official {ref.name}, {protocol}, "
                         f"{n_seeds(n)}: base-net {row['base_gflops']:.4f} vs {ref['base_gflops']:.4f} GFLOPs, "
                         f"top-1 {row[column]:.2f} % vs {ref[column]:.2f} %; the paper finds the "
                         f"cheaper base-net less accurate: {judge(gap * sign, se, n, df)}.")
    return lines


def norm_ratio_verdicts(norms: pd.DataFrame, judge=verdict_of) -> list[str]:
    """Figure 3 (``residual_norm_ratios`` rows of both networks, one or more seeds): per seed,
    the mean ||F(h)||/||h|| over the skippable blocks of the ADN super-net and of the
    individual network; individual minus ADN (the paper: positive), judged over seeds."""
    lines = []
    for arch, rows in norms[norms["kind"] == "skippable"].groupby("arch", sort=False):
        per_seed = rows.groupby(["role", "seed"])["ratio_mean"].mean()
        if not {"ADN super-net", "individual"} <= set(per_seed.index.get_level_values("role")):
            continue
        adn, individual = per_seed["ADN super-net"], per_seed["individual"]
        se, df = welch(adn.std(), len(adn), individual.std(), len(individual))
        n = min(len(adn), len(individual))
        diff = individual.mean() - adn.mean()
        blocks = rows[["stage", "block"]].drop_duplicates().shape[0]
        lines.append(f"{arch}: mean ||F(h)||/||h|| over the {blocks} skippable blocks, ADN super-net "
                     f"{adn.mean():.3f} vs individual {individual.mean():.3f}, {n_seeds(n)}: "
                     f"individual minus ADN {diff:+.3f}; the paper finds ADN's lower: "
                     f"{judge(diff, se, n, df, unit='{:.3f}')}.")
    return lines


def latency_verdicts(latency: pd.DataFrame, judge=verdict_of) -> list[str]:
    """Figure 5b (``measure_latency`` rows, one per sub-network): the base-net against the
    super-net by ``TIMING_RULE``, with how closely latency follows FLOPs over all of them
    (Spearman's rank correlation, a description, not part of the verdict)."""
    if latency.empty or not {"skip", "latency_ms", "latency_q1_ms", "latency_q3_ms", "gflops"} <= set(latency):
        return []
    by_flops = latency.sort_values("gflops")
    base, super_net = by_flops.iloc[0], by_flops.iloc[-1]
    verdict = cheaper_by_quartiles(base["latency_q1_ms"], base["latency_q3_ms"],
                                   super_net["latency_q1_ms"], super_net["latency_q3_ms"])
    rho = by_flops["gflops"].rank().corr(by_flops["latency_ms"].rank())
    first = latency.iloc[0]
    return [f"{first.get('device', '?')}, batch {first.get('batch_size', 1)}, {first.get('runs', '?')} interleaved "
            f"runs: base-net {base['skip']} {base['latency_ms']:.2f} ms vs super-net {super_net['skip']} "
            f"{super_net['latency_ms']:.2f} ms (medians, x{base['latency_ms'] / super_net['latency_ms']:.2f}); "
            f"latency follows FLOPs over the {len(latency)} sub-networks with rank correlation {rho:.2f}; the "
            f"paper finds skipping lowers latency: {verdict}."]


def depth_width_verdicts(latency: pd.DataFrame, judge=verdict_of) -> list[str]:
    """Figure 6a (``measure_depth_and_width`` rows): every ADN sub-network but the super-net
    against the width-multiplier curve at its FLOPs (latency and quartiles linearly
    interpolated between the two nearest width variants); ``TIMING_RULE`` per sub-network,
    then AGREES when at least half of them are faster and none slower, DISAGREES when at
    least half are slower and none faster, INCONCLUSIVE otherwise."""
    depth = latency[latency["kind"] == "depth"]
    width = latency[latency["kind"] == "width"].sort_values("gflops")
    if depth.empty or len(width) < 2:
        return []
    compared = depth[(depth["gflops"] < depth["gflops"].max()) & depth["gflops"].between(width["gflops"].min(),
                                                                                          width["gflops"].max())]
    if compared.empty:
        return []

    def by_width(column):
        return np.interp(compared["gflops"], width["gflops"], width[column])

    faster = compared["latency_q3_ms"].to_numpy() < by_width("latency_q1_ms")
    slower = compared["latency_q1_ms"].to_numpy() > by_width("latency_q3_ms")
    half = len(compared) / 2
    verdict = ("AGREES" if faster.sum() >= half and not slower.any() else
               "DISAGREES" if slower.sum() >= half and not faster.any() else "INCONCLUSIVE")
    base = compared["gflops"].to_numpy().argmin()
    first = latency.iloc[0]
    return [f"{first.get('device', '?')}, batch {first.get('batch_size', 1)}, {first.get('runs', '?')} interleaved "
            f"runs: {int(faster.sum())} of {len(compared)} ADN sub-networks are faster than the width multipliers at "
            f"their FLOPs and {int(slower.sum())} slower (interquartile ranges apart), the rest overlap; base-net "
            f"{compared['network'].iloc[base]} {compared['latency_ms'].iloc[base]:.1f} ms vs "
            f"{by_width('latency_ms')[base]:.1f} ms by width at {compared['gflops'].iloc[base]:.2f} GFLOPs (medians); "
            f"the paper finds depth faster: {verdict}."]


VERDICTS = {"table1": table1_verdicts, "table2": table2_verdicts, "table3": table3_verdicts,
            "table4": table4_verdicts, "table6": table6_verdicts, "table7": table7_verdicts,
            "fig3": norm_ratio_verdicts, "fig5": latency_verdicts, "fig6": depth_width_verdicts}
