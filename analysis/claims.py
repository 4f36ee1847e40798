"""The paper's claims, one by one, with our evidence for each: what the paper says, which
of our artifacts tests it, our verdict lines (``analysis.verdicts``) and how to read them.
Pure: tables and an evals frame in, Markdown out (``paper/claims.py`` writes
results/README.md with it: ``python cli.py claims --preset mini``).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
import dataclasses
from dataclasses import dataclass

import pandas as pd

from analysis.aggregate import is_base, is_super, std_name, summarize
from analysis.interpretation import (EVAL_COLUMNS, PROTOCOL_WORDS, depth_matched_means, protocol_shift,
                                     shortcut_effect, verdict_tally)
from analysis.verdicts import NOT_CONVERGED, RULE, TIMING_RULE, n_seeds, verdict_of, verdicts, welch

# Figure 4b's comparison networks, each trained at fixed depths, and the role that holds them.
DEPTH_MATCHED = {"individual": ("individual", "individual-Base", "individual (depth)"),
                 "KD-individual": ("KD-individual",),
                 "stochastic depth": ("stochastic depth",),
                 "AlphaNet-style": ("AlphaNet-style",)}


@dataclass(frozen=True)
class Claim:
    key: str
    title: str
    paper: str  # what the paper reports, with its ImageNet number where it gives one
    artifact: str  # the artifact of ours that tests it
    reading: str  # how to read our evidence: what the CPU-sized analogue can and cannot show
    keep: Callable[[str], bool] = lambda line: True  # which of the artifact's verdict lines are about it
    source: str | None = None  # the frame its verdicts read, when not the artifact's table (a measurement)
    # further frames judged by the artifact's rule, by name -> what their lines are about
    also: Mapping[str, str] = dataclasses.field(default_factory=dict)
    # sentences beyond the verdict tally, from (frames by name, fig4's evals)
    interpret: Callable[[Mapping[str, pd.DataFrame], pd.DataFrame | None], str] | None = None

    @property
    def frame(self) -> str:
        """The name of the frame its verdicts read: ``source``, else the artifact's table."""
        return self.source or self.artifact


def _about(*words: str) -> Callable[[str], bool]:
    return lambda line: any(word in line for word in words)


CLAIMS = [
    Claim("super-net", "The super-net beats an individual network of the same depth", "ResNet50-ADN FFFF 77.6 % "
          "top-1, +0.9 pp over ResNet50 (MobileNetV2 +0.4, ViT-b/16 +0.3, Swin-T +0.1).", "table1",
          "The paper's gains are small (0.1 to 0.9 pp), so on a small data set they can vanish in seed noise; an "
          "INCONCLUSIVE verdict here says 'not resolved at n seeds', not 'no effect'. Both BatchNorm protocols are "
          "judged: a gap that exists only with stored statistics comes from the statistics, not the weights.",
          _about("super-net"), interpret=lambda frames, evals: protocol_shift(frames.get("table1"), "ADN super-net")),
    Claim("base-net", "The base-net beats an individual network of the base depth (\"-Base\")", "ResNet50-ADN "
          "TTTT 76.1 %, +1.1 pp over ResNet50-Base (MobileNetV2 +0.4, ViT-b/16 +1.9, Swin-T +0.6).", "table1",
          "The base-net is trained only by distillation from the super-net, sharing its weights; the claim is "
          "that this beats training the shallow network alone on labels.", _about("base-net"),
          interpret=lambda frames, evals: protocol_shift(frames.get("table1"), "ADN base-net")),
    Claim("between-ends", "Sub-networks selected without training lie between the base-net and the super-net",
          "ResNet50-ADN TFFF 77.1 %, TTFF 76.5 %, between TTTT 76.1 % and FFFF 77.6 % (Table 6).", "table6",
          "Only FFFF and TTTT are trained; every other configuration mixes stages trained in two modes. With stored "
          "BatchNorm statistics, such a mix can fall below both ends when a skipping stage's statistics do not "
          "match what the next stage sees; re-estimated statistics separate that effect from the weights.",
          interpret=lambda frames, evals: shortcut_effect(evals)),
    Claim("depth-matched", "ADN sub-networks match or beat networks trained at their depth (Figure 4b)",
          "Figure 4b: every ADN sub-network sits at or above individual and KD-individual networks of the same "
          "depth.", "fig4",
          "Each verdict compares one skip configuration of ADN with a network trained alone at that depth "
          "(individual, KD-individual distilled from the individual super-net), or with the same sub-network of "
          "another network trained for every depth at once: the stochastic-depth super-net with those blocks "
          "dropped, or the AlphaNet-style network (sandwich training of random sub-networks; its own protocol "
          "re-estimates BatchNorm statistics per sub-network, so its stored-statistics numbers are those too). "
          "Both are our additions: stochastic depth is the cheap way to a depth-robust network without "
          "skip-aware norms or self-distillation, AlphaNet-style training the costly one, which the paper "
          "compares only in training time.",
          interpret=lambda frames, evals: " ".join(
              part for part in (depth_matched_means(depth_matched_gaps(evals)), shortcut_effect(evals)) if part)),
    Claim("ablation", "Self-distillation and skip-aware norms each help the base-net (Table 3)",
          "ResNet50-ADN base-net loses accuracy without self-distillation, without skip-aware norms, and more "
          "without both.", "table3",
          "Positive gaps mean full ADN is better than the ablated variant. The feature-distillation row (the "
          "paper's last row of Table 3, an optional addition) and the skip-aware-shortcut variant (ours) are "
          "reported in the table but not judged: this claim is about neither."),
    Claim("distillation-strategy", "Exclusive super-net -> base-net distillation is the best strategy (Table 4)",
          "Sampling random teachers or students lowers the base-net's accuracy.", "table4",
          "Positive gaps mean the paper's strategy is better than the alternative."),
    Claim("training-cost", "ADN trains much more cheaply than AlphaNet-style sandwich training (Table 2)",
          "Two forward-backward passes per step instead of four.", "table2",
          f"The median of interleaved steps measured in one process on the device the table names; rule: "
          f"{TIMING_RULE}."),
    Claim("norm-ratios", "Skippable blocks only refine: small ||F(h)||/||h|| (Figure 3)", "ResNet50-ADN's "
          "skippable blocks have lower residual norm ratios than the same blocks of an individual ResNet50.",
          "fig3", "One number per network and seed (the ratio averaged over the skippable blocks and the sampled "
          "test images), judged over seeds like the accuracies. The figure shows every block (mean over seeds, "
          "+-1 std): the claim is about the skippable blocks as a group, and single blocks can go either way.",
          source="norms"),
    Claim("latency", "Skipping sub-paths lowers inference latency and energy (Figure 5b)",
          "On a Jetson Orin Nano, latency and energy fall with the sub-network's FLOPs; the base-net is the "
          "cheapest.", "fig5", f"Latency depends on the device: ours is measured on the device the line names, "
          f"every sub-network interleaved in one process (batch 1, untrained weights). Rule: {TIMING_RULE}. Energy "
          f"needs a power counter (NVML on a GPU, RAPL on some CPUs); the figure says when there is none.",
          source="latency"),
    Claim("depth-vs-width", "Depth adaptation is faster than width adaptation at equal FLOPs (Figure 6a)",
          "On a Jetson Orin Nano, ADN sub-networks have lower latency than S-ResNet50 width multipliers of similar "
          "FLOPs.", "fig6", f"Latency depends on the device: ours is measured on the device the line names, all "
          f"networks interleaved in one process (ResNet50 at 224 px, untrained weights: latency does not depend on "
          f"them). Rule: {TIMING_RULE}, per sub-network; the line says how the sub-networks combine.",
          source="depth_width_latency"),
    Claim("splits", "Longer skippable sub-paths trade accuracy for a cheaper base-net (Table 7, Figures 6b and 7)",
          "More skippable blocks lower the base-net's FLOPs and accuracy.", "table7",
          "Each split is compared with the official one: whichever has the cheaper base-net should have the less "
          "accurate one. Figure 7's networks (vit_mini with one and with two skippable blocks per group) are judged "
          "the same way, from their runs (the `fig7` lines).",
          also={"fig7": "Figure 7"}),
]


def depth_matched_table(evals: pd.DataFrame, split: str = "test",
                        column: str = "acc1_pct") -> pd.DataFrame:
    """One row per (arch, skip, comparison) where ADN and a network trained at that depth were
    both evaluated: ADN's mean ``column``, the other's, their difference, its Welch standard
    error, its Welch degrees of freedom and the smaller seed count. Comparisons: ``DEPTH_MATCHED``."""
    columns = ["arch", "skip", "comparison", "adn", "other", "diff", "se", "df", "n"]
    rows = evals[(evals["split"] == split)] if len(evals) else evals
    if not len(rows) or column not in rows or rows[column].isna().all():
        return pd.DataFrame(columns=columns)
    rows = rows.dropna(subset=[column])
    summary = summarize(rows, ["arch", "role", "skip"], [column]).set_index(["arch", "role", "skip"])
    std = std_name(column)
    out = []
    for (arch, role, skip), adn in summary.iterrows():
        if role != "ADN":
            continue
        for comparison, roles in DEPTH_MATCHED.items():
            other = next((summary.loc[(arch, r, skip)] for r in roles if (arch, r, skip) in summary.index), None)
            if other is None:
                continue
            se, df = welch(adn[std], adn["n_seeds"], other[std], other["n_seeds"])
            out.append({"arch": arch, "skip": skip, "comparison": comparison, "adn": adn[column],
                        "other": other[column], "diff": adn[column] - other[column], "se": se, "df": df,
                        "n": min(adn["n_seeds"], other["n_seeds"])})
    return pd.DataFrame(out, columns=columns)


def _depth_matched_rows(evals: pd.DataFrame, converged: bool):
    """(protocol, depth_matched_table row, verdict) for both BatchNorm protocols ("stored",
    "re-estimated")."""
    for protocol, source in EVAL_COLUMNS.items():
        if source not in evals:
            continue
        for row in depth_matched_table(evals.assign(acc1_pct=evals[source])).itertuples():
            yield protocol, row, verdict_of(row.diff, row.se, row.n, row.df) if converged else NOT_CONVERGED


def depth_matched_verdicts(evals: pd.DataFrame, converged: bool = True) -> list[str]:
    """Figure 4b as verdict lines: ADN minus the network trained at the same depth, per skip
    configuration, comparison and BatchNorm protocol (rule: ``RULE``)."""
    lines = []
    for protocol, row, verdict in _depth_matched_rows(evals, converged):
        kind = "super-net" if is_super(row.skip) else "base-net" if is_base(row.skip) else "sub-network"
        lines.append(f"{row.arch} ADN {kind} {row.skip} minus {row.comparison} at the same depth, "
                     f"{PROTOCOL_WORDS[protocol]}, {n_seeds(row.n)}: {row.diff:+.2f} pp "
                     f"({row.adn:.2f} % vs {row.other:.2f} %); the paper finds ADN at or above: {verdict}.")
    return lines


def depth_matched_markdown(evals: pd.DataFrame, converged: bool = True) -> str:
    """The same verdicts as one table: a row per (arch, skip), a column per comparison and
    protocol, each cell "difference in pp (n seeds) verdict"."""
    cells: dict[tuple[str, str], dict[str, str]] = {}
    for protocol, row, verdict in _depth_matched_rows(evals, converged):
        cells.setdefault((row.arch, row.skip), {})[f"vs {row.comparison}, {protocol}"] = \
            f"{row.diff:+.2f} (n={int(row.n)}) {verdict.split(' (')[0]}"
    if not cells:
        return ""
    table = pd.DataFrame([{"arch": arch, "skip": skip, **row} for (arch, skip), row in cells.items()])
    return table.fillna("–").to_markdown(index=False, disable_numparse=True)


def depth_matched_gaps(evals: pd.DataFrame | None) -> dict[tuple[str, str], list[float]]:
    """ADN minus each comparison network per depth, by (comparison, protocol)."""
    diffs: dict[tuple[str, str], list[float]] = {}
    if evals is not None and len(evals):
        for protocol, row, _ in _depth_matched_rows(evals, converged=True):
            diffs.setdefault((row.comparison, protocol), []).append(row.diff)
    return diffs


TIMED_ELSEWHERE = ("cuda",)  # device kinds whose timings are cached beside the CPU's (timing-cuda.csv)


def claim_lines(claim: Claim, tables: Mapping[str, pd.DataFrame], evals: pd.DataFrame | None,
                converged: bool) -> list[str]:
    """Our verdict lines for one claim; empty when its artifact (or the measurement it reads)
    has not been written."""
    if claim.artifact == "fig4":
        return depth_matched_verdicts(evals, converged) if evals is not None and len(evals) else []
    name = claim.frame
    lines = []
    for variant in (name, *(f"{name}-{kind}" for kind in TIMED_ELSEWHERE)):  # a timing taken on a GPU too
        if tables.get(variant) is None:
            continue
        found = [line for line in verdicts(claim.artifact, tables[variant], converged) if claim.keep(line)]
        lines += found if variant == name else [f"On the GPU (`{variant}`): {line}" for line in found]
    for frame, about in claim.also.items():
        if tables.get(frame) is not None:
            lines += [f"{about} (`{frame}`): {line}" for line in verdicts(claim.artifact, tables[frame], converged)]
    return lines


def claims_markdown(tables: Mapping[str, pd.DataFrame], evals: pd.DataFrame | None, preset: str,
                    converged: bool, how_to_reproduce: Callable[[str], str]) -> str:
    """One section per claim: the paper's statement and number, our verdict lines, how to read
    them, and the command that regenerates the artifact (``how_to_reproduce(artifact)``).
    ``tables``: the artifacts' tables and the measurements' frames, by name ("table1",
    "norms", "depth_width_latency"...)."""
    lines = [f"Rule for accuracies and norm ratios: {RULE}. Rule for timings: {TIMING_RULE}." if converged else
             f"The `{preset}` preset is not converged: every accuracy verdict is INCONCLUSIVE by construction; "
             f"timings are judged as they are ({TIMING_RULE}).", ""]
    for claim in CLAIMS:
        ours = claim_lines(claim, tables, evals, converged)
        lines += [f"### {claim.title}", "", f"**Paper.** {claim.paper}", ""]
        if ours:
            if claim.artifact == "fig4":  # a verdict per depth, comparison and protocol: a table reads better
                lines += ["**Ours.** ADN minus the network trained at each depth, top-1 in pp (n seeds, the smaller "
                          "side), with the verdict of the rule above:", "", depth_matched_markdown(evals, converged),
                          ""]
            else:
                lines += ["**Ours.**", ""] + [f"- {line}" for line in ours] + [""]
                if tables.get(claim.frame) is None:  # the lines come from the claim's further frames alone
                    lines += [f"`{claim.artifact}` is not reproduced yet: `{how_to_reproduce(claim.artifact)}` "
                              f"trains and writes it.", ""]
            summary = " ".join(part for part in (
                verdict_tally(ours), claim.interpret(tables, evals) if claim.interpret else "") if part)
            lines += [f"**In sum.** {summary}", ""] if summary else []
        elif tables.get(claim.frame) is not None:
            lines += [f"**Ours.** No verdict yet: `{claim.artifact}` is written, but without the rows this claim "
                      f"compares (their runs have not finished); `{how_to_reproduce(claim.artifact)}` trains them.",
                      ""]
        else:
            lines += [f"**Ours.** Not reproduced yet: `{how_to_reproduce(claim.artifact)}` trains and writes it.", ""]
        lines += [f"**Reading.** {claim.reading}", ""]
    return "\n".join(lines)
