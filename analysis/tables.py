"""The paper's tables as pure functions: DataFrames of run records in, one DataFrame out.

``evals`` has one row per (run, split, sub-network) with columns role, arch, method, seed,
run_id, split, skip, acc1_pct, acc5_pct, loss, gflops, params_m (and optionally dataset).
Tables report the test split (val is for model selection) and aggregate over seeds (mean,
``*_std`` with ddof=1, ``n_seeds``). Render one with ``analysis.to_markdown``.
Regenerate any of them with ``python cli.py reproduce <table>``.
"""
from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import pandas as pd

from analysis.aggregate import (
    is_base,
    is_super,
    ordered_unique,
    per_seed_summary,
    select,
    std_name,
    summarize,
)
from analysis.reference import PAPER_ANALOGUE
from repro.errors import ReproError

# (network label, role that provides it, which skip config of that role)
TABLE1_NETWORKS = [("ADN super-net", "ADN", is_super), ("individual", "individual", is_super),
                   ("ADN base-net", "ADN", is_base), ("individual-Base", "individual-Base", is_base)]
ADN_VS_INDIVIDUAL = {"ADN super-net": "individual", "ADN base-net": "individual-Base"}
# eval.csv's accuracy with BatchNorm statistics re-estimated per sub-network (issue 8), and
# its name in the tables (a ``_pct`` column, so its std folds into it: ``acc1_recal_std``)
RECALIBRATED, RECAL = "acc1_pct_recalibrated", "acc1_recal_pct"
SHORTCUTS_ROLE = "ADN + skip-aware shortcuts"  # the ADN variant of issue 8, beside ADN in table6


def _with_recalibrated(rows: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """``rows`` with the recalibrated accuracy as ``acc1_recal_pct`` (NaN for records written
    before it existed), and the value columns to aggregate besides ``acc1_pct``. A column
    present but empty in every row is kept: runs of networks without BatchNorm, which
    ``paper.reproduce.run_evaluation`` marks so (``analysis.verdicts.protocol_of``)."""
    if RECALIBRATED not in rows.columns:
        return rows, []
    return rows.assign(**{RECAL: rows[RECALIBRATED]}), [RECAL]
TABLE3_VARIANTS = ["ADN", "w/o self-distillation", "w/o skip-aware norms", "w/o both",
                   "+ feature distillation", "+ skip-aware shortcuts"]  # the last: beyond the paper (issue 13)
TABLE4_STRATEGIES = ["super-net -> base-net (ADN)", "super-net -> random", "random -> random"]
# Paper Table 7 / Figure 6b roles are the mandatory block counts per stage, e.g. "2,2,3,2 (official)".
SPLIT_ROLE = re.compile(r"^\s*\d+(\s*,\s*\d+)+")


def _keys(rows: pd.DataFrame) -> list[str]:
    """Group keys naming what a row is about: arch, and our data set when the caller gives it."""
    return ["arch", "dataset"] if "dataset" in rows.columns else ["arch"]


def _in_order(table: pd.DataFrame, rows: pd.DataFrame, column: str, order: Sequence[str]):
    """Sorts rows by arch and dataset (first appearance in ``rows``), then ``column`` in ``order``."""
    keys = _keys(rows)
    rank = {key: {v: i for i, v in enumerate(ordered_unique(rows[key]))} for key in keys}
    rank[column] = {v: i for i, v in enumerate(order)}
    return table.sort_values(keys + [column], key=lambda s: s.map(rank[s.name]),
                             kind="stable").reset_index(drop=True)


def split_roles(evals: pd.DataFrame) -> list[str]:
    """The split-ratio roles of ``evals`` ("2,2,3,2 (official)", "1,1,2,1", ...), in order."""
    if evals is None or not len(evals):
        return []
    return [r for r in ordered_unique(evals["role"]) if SPLIT_ROLE.match(str(r))]


def _paper_rows(reference: pd.DataFrame, archs: pd.Series, on: str, values: pd.Series) -> pd.DataFrame:
    """Reference rows matched to (analogue of arch, value of column ``on``); NaN where absent."""
    ref = reference.drop_duplicates(["model", on]).set_index(["model", on])
    keys = list(zip(archs.map(PAPER_ANALOGUE), values))
    found = ref.reindex(pd.MultiIndex.from_tuples(keys, names=["model", on]))
    return pd.DataFrame({"paper_model": archs.map(PAPER_ANALOGUE).to_numpy(),
                         "paper_dataset": found["dataset"].to_numpy(),
                         "paper_gflops": found["gflops"].to_numpy(),
                         "paper_acc1_pct": found["acc1_pct"].to_numpy(),
                         "paper_delta_pct": found["delta_pct"].to_numpy()})


def table1(evals: pd.DataFrame, reference: pd.DataFrame) -> pd.DataFrame:
    """Paper Table 1 / Figure 4a: ADN super- and base-nets vs individual networks of equal depth.

    Roles: "ADN" (its all-F and all-T sub-networks), "individual" (all-F), "individual-Base"
    (all-T). ``reference`` is ``load_reference()``. Output, one row per (arch, network):
    arch, [dataset], network, skip, gflops, params_m, acc1_pct, acc1_std, n_seeds,
    delta_vs_individual_pct (ADN minus the individual of the same depth; stored BatchNorm
    statistics, the paper's protocol), where the records have them acc1_recal_pct,
    acc1_recal_std, delta_vs_individual_recal_pct (statistics re-estimated), paper_model,
    paper_dataset, paper_gflops, paper_acc1_pct, paper_delta_pct (ImageNet, NaN where absent).
    """
    rows = select(evals, ["ADN", "individual", "individual-Base"], "table1")
    rows, recal = _with_recalibrated(rows)
    keys = _keys(rows)
    parts = []
    for network, role, pick in TABLE1_NETWORKS:
        picked = rows[(rows["role"] == role) & rows["skip"].map(pick)]
        if len(picked):
            part = summarize(picked, keys + ["skip"], ["acc1_pct", *recal, "gflops", "params_m"])
            parts.append(part.assign(network=network))
    table = _in_order(pd.concat(parts), rows, "network", [n for n, _, _ in TABLE1_NETWORKS])
    indexed = table.set_index(keys + ["network"])

    def delta(row, column):
        if row["network"] not in ADN_VS_INDIVIDUAL:
            return np.nan
        key = tuple(row[k] for k in keys) + (ADN_VS_INDIVIDUAL[row["network"]],)
        return row[column] - indexed[column].get(key, np.nan)

    table["delta_vs_individual_pct"] = table.apply(delta, axis=1, column="acc1_pct")
    columns = keys + ["network", "skip", "gflops", "params_m", "acc1_pct", "acc1_std", "n_seeds",
                      "delta_vs_individual_pct"]
    if recal:
        table["delta_vs_individual_recal_pct"] = table.apply(delta, axis=1, column=RECAL)
        columns += [RECAL, std_name(RECAL), "delta_vs_individual_recal_pct"]
    paper = _paper_rows(reference, table["arch"], "network", table["network"])
    return pd.concat([table[columns], paper], axis=1)


def table2(timing: pd.DataFrame, runs: pd.DataFrame | None = None) -> pd.DataFrame:
    """Paper Table 2 / Figure 5a: training time per epoch of each method.

    ``timing``: one row per method_label with arch, batch_size, input_shape, step_ms (median),
    step_iqr_ms, steps, device, epoch_images. ``runs`` (optional): one row per real training
    run with role, arch, method, seed, epoch_s, images_per_s, device (and machine_load_5min,
    the machine's mean load average at its epochs' ends, where recorded). Output, one row per
    (arch, method_label): method_label, arch, device, batch_size, input_shape, steps, step_ms,
    step_iqr_ms, ratio_to_individual (step_ms over "individual FFFF" of the same arch),
    epoch_images, extrapolated_epoch_h (epoch_images / batch_size * step_ms / 3.6e6),
    measured_arch, measured_epoch_s, measured_epoch_std, measured_ratio_to_individual,
    measured_load_5min, measured_device, n_runs (runs whose role == method_label, of any
    arch; NaN / 0 where none).
    """
    if timing is None or not len(timing):
        raise ReproError("table2: no timing rows (run the timing mode first)")
    table = timing.copy()
    individual = table[table["method_label"] == "individual FFFF"].groupby("arch")["step_ms"].first()
    table["ratio_to_individual"] = table["step_ms"] / table["arch"].map(individual)
    table["extrapolated_epoch_h"] = (table["epoch_images"] / table["batch_size"]
                                     * table["step_ms"] / 3.6e6)
    # Real runs may be of another architecture than the timing mode (CPU presets train
    # resnet_mini, time ResNet50): they are matched by method label and name their arch.
    measured = pd.DataFrame(columns=["method_label", "measured_arch", "measured_epoch_s",
                                     "measured_epoch_std", "measured_ratio_to_individual",
                                     "measured_load_5min", "measured_device", "n_runs"])
    if runs is not None and len(runs):
        grouped = runs.groupby("role", sort=False)
        measured = pd.DataFrame({"measured_arch": grouped["arch"].agg(lambda a: ", ".join(ordered_unique(a))),
                                 "measured_epoch_s": grouped["epoch_s"].mean(),
                                 "measured_epoch_std": grouped["epoch_s"].std(ddof=1),
                                 "measured_load_5min": (grouped["machine_load_5min"].mean()
                                                        if "machine_load_5min" in runs else float("nan")),
                                 "measured_device": grouped["device"].agg(lambda d: ", ".join(ordered_unique(d))),
                                 "n_runs": grouped.size()}).reset_index()
        measured = measured.rename(columns={"role": "method_label"})
        reference = measured.loc[measured["method_label"] == "individual FFFF", "measured_epoch_s"]
        measured["measured_ratio_to_individual"] = (measured["measured_epoch_s"] / reference.iloc[0]
                                                    if len(reference) else float("nan"))
    table = table.merge(measured, on="method_label", how="left")
    table["n_runs"] = table["n_runs"].fillna(0).astype(int)
    return table[["method_label", "arch", "device", "batch_size", "input_shape", "steps", "step_ms",
                  "step_iqr_ms", "ratio_to_individual", "epoch_images", "extrapolated_epoch_h",
                  "measured_arch", "measured_epoch_s", "measured_epoch_std", "measured_ratio_to_individual",
                  "measured_load_5min", "measured_device", "n_runs"]]


def _super_base_table(evals: pd.DataFrame, roles: Sequence[str], artifact: str, label: str,
                      values: Sequence[str]) -> pd.DataFrame:
    """Per (arch, role): mean/std over seeds of ``values`` from ``per_seed_summary``, and of
    the super- and base-net's accuracy with BatchNorm statistics re-estimated
    (super_acc1_recal_pct, base_acc1_recal_pct) where the records have it; the role column
    is renamed ``label``; roles in the given order."""
    rows = select(evals, roles, artifact)
    keys = _keys(rows)
    _, recal = _with_recalibrated(rows)  # per_seed_summary names them super_/base_acc1_recal_pct
    values = [*values, *(f"{end}_{column}" for column in recal for end in ("super", "base"))]
    table = summarize(per_seed_summary(rows, keys), keys + ["role"], values)
    table = _in_order(table.rename(columns={"role": label}), rows, label, roles)
    columns = keys + [label] + [c for v in values for c in (v, std_name(v))] + ["n_seeds"]
    return table[columns]


def table3(evals: pd.DataFrame) -> pd.DataFrame:
    """Paper Table 3: ablation of self-distillation and skip-aware norms.

    Roles: TABLE3_VARIANTS (any subset). Output: arch, [dataset], variant, self_distillation,
    skip_aware_norms, feature_distillation (bools read from the variant name), super_acc1_pct,
    super_acc1_std, base_acc1_pct, base_acc1_std, [super_acc1_recal_pct, super_acc1_recal_std,
    base_acc1_recal_pct, base_acc1_recal_std: BatchNorm statistics re-estimated, where the
    records have them], n_seeds.
    """
    table = _super_base_table(evals, TABLE3_VARIANTS, "table3", "variant",
                              ["super_acc1_pct", "base_acc1_pct"])
    at = table.columns.get_loc("variant") + 1
    variant = table["variant"]
    table.insert(at, "self_distillation", ~variant.isin(["w/o self-distillation", "w/o both"]))
    table.insert(at + 1, "skip_aware_norms", ~variant.isin(["w/o skip-aware norms", "w/o both"]))
    table.insert(at + 2, "feature_distillation", variant.str.contains("feature distillation"))
    return table


def table4(evals: pd.DataFrame) -> pd.DataFrame:
    """Paper Table 4: self-distillation strategies.

    Roles: TABLE4_STRATEGIES (any subset). Output: arch, [dataset], strategy, super_acc1_pct,
    super_acc1_std, base_acc1_pct, base_acc1_std, mean_subnet_acc1_pct (mean over the
    evaluated sub-networks of a run, all 2^S of them when the caller evaluates them all),
    mean_subnet_acc1_std, n_subnets, n_seeds.
    """
    table = _super_base_table(evals, TABLE4_STRATEGIES, "table4", "strategy",
                              ["super_acc1_pct", "base_acc1_pct", "mean_subnet_acc1_pct", "n_subnets"])
    return table.drop(columns=["n_subnets_std"])


def table5(layouts: pd.DataFrame) -> pd.DataFrame:
    """Paper Table 5: block splits. ``layouts`` as printed by ``python cli.py archs`` (arch, S,
    blocks, split, super_gflops, base_gflops, params_m). Output: the same plus paper_model."""
    if layouts is None or not len(layouts):
        raise ReproError("table5: no architecture layouts")
    return layouts.assign(paper_model=layouts["arch"].map(PAPER_ANALOGUE))


def table6(evals: pd.DataFrame, reference: pd.DataFrame) -> pd.DataFrame:
    """Paper Table 6: FLOPs and accuracy of every sub-network of the role "ADN".

    Output, sorted by arch then gflops descending: arch, [dataset], skip, gflops, params_m,
    acc1_pct, acc1_std, [acc1_recal_pct, acc1_recal_std: BatchNorm statistics re-estimated per
    sub-network, where the records have them], acc5_pct, val_acc1_pct, n_seeds, [shortcuts_acc1_pct,
    shortcuts_acc1_std (and their _recal_ twins): the role "ADN + skip-aware shortcuts", where
    present], paper_model, paper_gflops,
    paper_acc1_pct (the paper's sub-network with the same skip; NaN where not published).
    """
    rows, recal = _with_recalibrated(select(evals, ["ADN"], "table6"))
    keys = _keys(rows)
    table = summarize(rows, keys + ["skip"], ["gflops", "params_m", "acc1_pct", *recal, "acc5_pct"])
    val = select(evals, ["ADN"], "table6", split="val", require=False)
    if len(val):
        val = summarize(val, keys + ["skip"], ["acc1_pct"])[keys + ["skip", "acc1_pct"]]
        table = table.merge(val.rename(columns={"acc1_pct": "val_acc1_pct"}), how="left")
    else:
        table["val_acc1_pct"] = np.nan
    table = table.sort_values(["arch", "gflops"], ascending=[True, False]).reset_index(drop=True)
    adn = reference[reference["network"].str.startswith("ADN")]
    paper = _paper_rows(adn, table["arch"], "skip", table["skip"])
    columns = keys + ["skip", "gflops", "params_m", "acc1_pct", "acc1_std", *recal, *map(std_name, recal),
                      "acc5_pct", "val_acc1_pct", "n_seeds"]
    variant = select(evals, [SHORTCUTS_ROLE], "table6", require=False)
    if len(variant):  # beyond the paper (issue 8): the same sub-networks with skip-aware shortcut norms
        variant, variant_recal = _with_recalibrated(variant)
        values = ["acc1_pct", *variant_recal]
        summary = summarize(variant, keys + ["skip"], values)
        renamed = {v: f"shortcuts_{v}" for v in values} | {std_name(v): f"shortcuts_{std_name(v)}" for v in values}
        summary = summary[keys + ["skip", *values, *map(std_name, values)]].rename(columns=renamed)
        table = table.merge(summary, how="left", on=keys + ["skip"])
        columns += list(renamed.values())
    return pd.concat([table[columns], paper[["paper_model", "paper_gflops", "paper_acc1_pct"]]], axis=1)


def table7(evals: pd.DataFrame, roles: Sequence[str] | None = None) -> pd.DataFrame:
    """Paper Table 7: mandatory/skippable split-ratio variants of one ADN.

    Roles: ``roles`` or, by default, every role of ``evals`` that starts with block counts
    ("2,2,3,2 (official)", "1,1,2,1", ...), in order of first appearance. Output: arch,
    [dataset], split, super_gflops, base_gflops, super_acc1_pct, super_acc1_std, base_acc1_pct,
    base_acc1_std, n_seeds.
    """
    roles = list(roles) if roles is not None else split_roles(evals)
    table = _super_base_table(evals, roles, "table7", "split",
                              ["super_gflops", "base_gflops", "super_acc1_pct", "base_acc1_pct"])
    return table.drop(columns=["super_gflops_std", "base_gflops_std"])
