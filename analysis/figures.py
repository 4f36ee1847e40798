"""The paper's figures as pure functions: DataFrames in, one matplotlib Figure out.

``evals`` is the same per-(run, split, sub-network) frame the tables take (see
analysis/tables.py); figures show the test split, means over seeds with +-1 std error bars.
A missing role leaves its points out; a panel with nothing to show says "no data".
Regenerate any of them with ``python cli.py reproduce <figure>``.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.patches import Patch

from analysis.aggregate import ordered_unique, pareto_frontier, summarize
from analysis.style import caption, colors_for, new_figure, no_data, themed
from analysis.tables import TABLE1_NETWORKS, split_roles

GFLOPS = "GFLOPs"
TOP1 = "top-1 accuracy (%)"
INDIVIDUAL_ROLES = ["individual", "individual-Base", "individual (depth)"]
# Figure 4b's other adaptive networks (beyond the paper), each with its own frontier and colour.
FIG4_VARIANTS = {"ADN + skip-aware shortcuts": "#9467bd", "stochastic depth": "#8c564b", "AlphaNet-style": "#7f7f7f"}
FIG7_ROLES = ["1 skippable block per group (official)", "2 skippable blocks per group"]


def _test_rows(evals: pd.DataFrame | None, roles: Sequence[str]) -> pd.DataFrame:
    if evals is None or not len(evals):
        return pd.DataFrame(columns=["role", "arch", "seed", "skip", "acc1_pct", "gflops"])
    return evals[evals["role"].isin(roles) & (evals["split"] == "test")]


def _points(ax, rows, label, color, marker="o", frontier=False, connect=False, annotate=False, style="-"):
    """Means over seeds per skip (x = gflops, y = acc1_pct, +-1 std bars) joined by a dashed
    line (``connect``), or all points faint and the Pareto frontier solid (``frontier``);
    ``annotate`` writes the skip config next to each point of the line."""
    if not len(rows):
        return
    mean = summarize(rows, ["skip"], ["gflops", "acc1_pct"]).sort_values("gflops")
    line = mean
    if frontier:
        line = pareto_frontier(mean)
        ax.scatter(mean["gflops"], mean["acc1_pct"], marker=marker, color=color, s=16, alpha=0.4)
    ax.errorbar(line["gflops"], line["acc1_pct"], yerr=line["acc1_std"].fillna(0), color=color,
                fmt=marker + (style if frontier else "--" if connect else ""), ms=5, capsize=2, lw=1.5,
                label=label + (" (Pareto frontier)" if frontier else ""))
    if annotate:
        for _, point in line.iterrows():
            ax.annotate(point["skip"], (point["gflops"], point["acc1_pct"]), fontsize=7,
                        xytext=(3, -9), textcoords="offset points")


def _frontier_panel(ax, rows: pd.DataFrame, roles: Sequence[str], title: str) -> None:
    """Accuracy vs GFLOPs of all sub-networks of each role, with each role's Pareto frontier."""
    present = [r for r in roles if (rows["role"] == r).any()]
    if not present:
        return no_data(ax)
    colors = colors_for(present)
    for role in present:
        _points(ax, rows[rows["role"] == role], role, colors[role], frontier=True,
                annotate=len(present) == 1)
    ax.set(xlabel=GFLOPS, ylabel=TOP1, title=title)
    # below the panel, as in figure 4: inside it, the legend hid the cheap sub-networks' points
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), frameon=False)


@themed
def fig3(norms: pd.DataFrame):
    """Paper Figure 3: ||F(h)||_2 / ||h||_2 per residual block, ADN super-net vs individual.

    ``norms``: role, arch, seed, stage (1-based), block (1-based within stage), kind
    ("mandatory"/"skippable"), ratio_mean. One panel per arch; skippable blocks hatched.
    """
    archs = ordered_unique(norms["arch"]) if norms is not None and len(norms) else []
    fig, axes = new_figure(max(len(archs), 1), 1, 10, 3.4)
    if not archs:
        no_data(axes[0, 0])
        return fig
    for ax, arch in zip(axes[:, 0], archs):
        rows = norms[norms["arch"] == arch].sort_values(["stage", "block"])
        blocks = rows.drop_duplicates(["stage", "block"]).reset_index(drop=True)
        labels = [f"{s}.{b}" for s, b in zip(blocks["stage"], blocks["block"])]
        for i, block in blocks.iterrows():
            if block["kind"] == "skippable":
                ax.axvspan(i - 0.5, i + 0.5, facecolor="0.95", edgecolor="0.85", hatch="//",
                           lw=0, zorder=0)
            if i and block["stage"] != blocks["stage"][i - 1]:
                ax.axvline(i - 0.5, color="0.5", ls=":", lw=1)
        roles = ordered_unique(rows["role"])
        sns.barplot(data=rows.assign(label=rows["stage"].astype(str) + "." + rows["block"].astype(str)),
                    x="label", y="ratio_mean", hue="role", order=labels, hue_order=roles,
                    palette=colors_for(roles), errorbar="sd", capsize=0.1, ax=ax)
        handles, names = ax.get_legend_handles_labels()
        skippable = Patch(facecolor="0.95", edgecolor="0.85", hatch="//", label="skippable block")
        ax.legend(handles + [skippable], names + ["skippable block"], fontsize=8,
                  loc="upper left", bbox_to_anchor=(1.0, 1.0))
        ax.set(xlabel="residual block (stage.block, forward order)",
               ylabel=r"$\|F(h)\|_2 \,/\, \|h\|_2$", title=caption(rows, arch))
    return fig


def _network_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """Per-seed rows labelled with Table 1's network names (ADN super-net, individual, ...)."""
    parts = [rows[(rows["role"] == role) & rows["skip"].map(pick)].assign(network=network)
             for network, role, pick in TABLE1_NETWORKS]
    return pd.concat(parts)


RECALIBRATED = "acc1_pct_recalibrated"  # eval.csv's accuracy with BatchNorm statistics re-estimated


@themed
def fig4(evals: pd.DataFrame, arch: str | None = None):
    """Paper Figure 4, one row of panels per arch (or only ``arch``).

    (a) top-1 of ADN super-net, individual, ADN base-net, individual-Base (roles "ADN",
    "individual", "individual-Base"); (b) top-1 vs GFLOPs: all ADN sub-networks with their
    Pareto frontier, individual networks (roles "individual", "individual-Base",
    "individual (depth)"), "KD-individual" networks at their depths, and the sub-networks of
    FIG4_VARIANTS' roles with their frontiers where present; where the records have it, the
    ADN frontier with BatchNorm statistics re-estimated per sub-network, dashed.
    """
    rows = _test_rows(evals, ["ADN", "KD-individual"] + INDIVIDUAL_ROLES + list(FIG4_VARIANTS))
    archs = [arch] if arch else ordered_unique(rows["arch"])
    fig, axes = new_figure(max(len(archs), 1), 2, 5.5, 4.0)
    if not archs:
        no_data(axes[0, 0])
        no_data(axes[0, 1])
    for (bars, curve), name in zip(axes, archs):
        here = rows[rows["arch"] == name]
        networks = _network_rows(here)
        if len(networks):
            order = [n for n, _, _ in TABLE1_NETWORKS if (networks["network"] == n).any()]
            sns.barplot(data=networks, x="network", y="acc1_pct", hue="network", order=order,
                        palette=colors_for(order), errorbar="sd", capsize=0.1, legend=False, ax=bars)
            low = max(0.0, networks["acc1_pct"].min() - 5)
            bars.set_ylim(low, min(100.0, networks["acc1_pct"].max() + 2))
            for patch in bars.patches:  # value at the foot of each bar, clear of the error bar
                bars.annotate(f"{patch.get_height():.2f}", (patch.get_x() + patch.get_width() / 2, low),
                              xytext=(0, 4), textcoords="offset points", ha="center", va="bottom",
                              fontsize=8, color="white", fontweight="bold")
            bars.tick_params(axis="x", labelsize=8)
            bars.set(xlabel="", ylabel=TOP1, title=f"(a) {caption(here, name)}")
        else:
            no_data(bars)
        if len(here):
            individual = here[here["role"].isin(INDIVIDUAL_ROLES)]
            adn = here[here["role"] == "ADN"]
            _points(curve, adn, "ADN sub-networks", colors_for(["ADN"])["ADN"], frontier=True, annotate=True)
            if RECALIBRATED in adn and adn[RECALIBRATED].notna().any():  # the other BatchNorm protocol, dashed
                _points(curve, adn.assign(acc1_pct=adn[RECALIBRATED]), "ADN, BN statistics re-estimated",
                        colors_for(["ADN"])["ADN"], marker=".", frontier=True, style="--")
            for role, color in FIG4_VARIANTS.items():
                _points(curve, here[here["role"] == role], f"{role} sub-networks", color, marker="D", frontier=True)
            _points(curve, individual, "individual", colors_for(["individual"])["individual"],
                    marker="s", connect=True)
            _points(curve, here[here["role"] == "KD-individual"], "KD-individual",
                    colors_for(["KD-individual"])["KD-individual"], marker="^", connect=True)
            curve.set(xlabel=GFLOPS, ylabel=TOP1, title=f"(b) {caption(here, name)}")
            # below the panel: inside it, the legend hid the low sub-networks
            curve.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, frameon=False)
        else:
            no_data(curve)
    return fig


def _latency_points(ax, latency: pd.DataFrame, label_column: str, label: str, color: str, y="latency_ms"):
    """Latency (median, IQR bars) or energy vs GFLOPs, each point labelled."""
    rows = latency.sort_values("gflops")
    yerr = None
    if y == "latency_ms":
        yerr = [rows["latency_ms"] - rows["latency_q1_ms"], rows["latency_q3_ms"] - rows["latency_ms"]]
    ax.errorbar(rows["gflops"], rows[y], yerr=yerr, fmt="o-", color=color, ms=5, capsize=2, label=label)
    for _, point in rows.iterrows():
        ax.annotate(str(point[label_column]), (point["gflops"], point[y]), fontsize=7,
                    xytext=(3, 3), textcoords="offset points")


def _device_note(latency: pd.DataFrame) -> str:
    devices = ", ".join(str(d) for d in ordered_unique(latency["device"]))
    batches = ", ".join(str(b) for b in ordered_unique(latency["batch_size"]))
    return f"{devices}, batch {batches}"


@themed
def fig5(timing_table: pd.DataFrame, latency: pd.DataFrame):
    """Paper Figure 5: (a) training hours per epoch per method (``table2`` output,
    extrapolated_epoch_h); (b) latency per ADN sub-network vs GFLOPs (``latency``: skip,
    latency_ms, latency_q1_ms, latency_q3_ms, energy_mj, energy_source, gflops, device,
    batch_size); (c) energy vs GFLOPs when measured, else a note in (b)."""
    has_energy = latency is not None and len(latency) and latency["energy_mj"].notna().any()
    fig, axes = new_figure(1, 3 if has_energy else 2, 4.5 if has_energy else 5.5, 4.0)
    bars, lat = axes[0, 0], axes[0, 1]
    if timing_table is not None and len(timing_table):
        several = timing_table["arch"].nunique() > 1
        labels = [f"{a}: {m}" if several else m
                  for a, m in zip(timing_table["arch"], timing_table["method_label"])]
        colors = colors_for(labels)
        hours = timing_table["extrapolated_epoch_h"]
        spread = None  # +- half the steps' interquartile range, in hours per epoch
        if {"step_iqr_ms", "step_ms"} <= set(timing_table):
            spread = (hours * timing_table["step_iqr_ms"] / timing_table["step_ms"] / 2).fillna(0).to_numpy()
        bars.barh(labels, hours, xerr=spread, capsize=3, ecolor="0.25", color=[colors[l] for l in labels])
        ends = hours + (spread if spread is not None else 0)
        for y, (h, end, ratio) in enumerate(zip(hours, ends, timing_table["ratio_to_individual"])):
            note = f"{h:.2f} h" + (f" (×{ratio:.2f})" if pd.notna(ratio) else "")
            bars.annotate(note, (end, y), xytext=(4, 0), textcoords="offset points", va="center", fontsize=8)
        bars.invert_yaxis()
        bars.margins(x=0.3)
        bars.set(xlabel="hours per epoch (extrapolated; median step, +-IQR/2)" if spread is not None
                 else "hours per epoch (extrapolated)", ylabel="",
                 title=f"(a) training, {_device_note(timing_table)}")
    else:
        no_data(bars)
    if latency is None or not len(latency):
        no_data(lat)
        return fig
    _latency_points(lat, latency, "skip", "ADN sub-networks", colors_for(["ADN"])["ADN"])
    lat.set(xlabel=GFLOPS, ylabel="latency (ms)", title=f"(b) inference, {_device_note(latency)}")
    if has_energy:
        _latency_points(axes[0, 2], latency, "skip", "ADN sub-networks", colors_for(["ADN"])["ADN"],
                        y="energy_mj")
        sources = ", ".join(str(s) for s in ordered_unique(latency["energy_source"].dropna()))
        axes[0, 2].set(xlabel=GFLOPS, ylabel="energy (mJ)", title=f"(c) energy ({sources})")
    else:
        devices = ", ".join(str(d) for d in ordered_unique(latency["device"]))
        lat.text(0.98, 0.02, f"energy: unavailable on this machine ({devices})", ha="right",
                 va="bottom", transform=lat.transAxes, fontsize=8, color="0.3")
    return fig


@themed
def fig6(depth_latency: pd.DataFrame, width_latency: pd.DataFrame | None,
         evals: pd.DataFrame | None = None):
    """Paper Figure 6: (a) latency vs GFLOPs of depth variants (ADN sub-networks, ``skip``)
    and width variants (``model`` such as "width x0.50"); (b) Pareto frontiers of the
    split-ratio roles (those of ``table7``), drawn only when ``evals`` has such roles."""
    roles = split_roles(evals)
    fig, axes = new_figure(1, 2 if roles else 1, 5.5 if roles else 6.5, 4.0)
    lat = axes[0, 0]
    drawn = []
    for frame, column, label in [(depth_latency, "skip", "depth (ADN sub-networks)"),
                                 (width_latency, "model", "width variants")]:
        if frame is not None and len(frame):
            _latency_points(lat, frame, column, label, colors_for([label])[label])
            drawn.append(frame)
    if drawn:
        lat.set(xlabel=GFLOPS, ylabel="latency (ms)",
                title=f"(a) depth vs width, {_device_note(pd.concat(drawn))}")
        lat.legend(fontsize=8)
    else:
        no_data(lat)
    if roles:
        rows = _test_rows(evals, roles)
        _frontier_panel(axes[0, 1], rows, roles,
                        "(b) " + caption(rows, ", ".join(ordered_unique(rows["arch"]))))
    return fig


@themed
def fig7(evals: pd.DataFrame):
    """Paper Figure 7: ViT-ADN with longer skippable sub-paths; top-1 vs GFLOPs of all
    sub-networks of each FIG7_ROLES role with its Pareto frontier, one panel per arch."""
    rows = _test_rows(evals, FIG7_ROLES)
    archs = ordered_unique(rows["arch"])
    fig, axes = new_figure(1, max(len(archs), 1), 6.5, 4.0)
    if not archs:
        no_data(axes[0, 0])
    for ax, arch in zip(axes[0], archs):
        here = rows[rows["arch"] == arch]
        _frontier_panel(ax, here, FIG7_ROLES, caption(here, arch))
    return fig


def _as_picture(image: np.ndarray) -> tuple[np.ndarray, str | None]:
    """(C, H, W) -> something imshow takes: (H, W) grey or (H, W, 3) RGB min-max scaled to [0, 1]."""
    picture = image[0] if image.shape[0] == 1 else np.moveaxis(image[:3], 0, -1)
    low, high = float(picture.min()), float(picture.max())
    return (picture - low) / (high - low if high > low else 1.0), "gray" if image.shape[0] == 1 else None


@themed
def fig8(cams: dict, images: np.ndarray):
    """Paper Figure 8: Grad-CAM maps. ``cams``: role -> block label -> array (N, H, W) in
    [0, 1]; ``images``: (N, C, H, W). Rows = images x roles, columns = input + blocks
    (block order of the first role); each CAM is overlaid on its image."""
    roles = list(cams or {})
    blocks = ordered_unique(b for role in roles for b in cams[role])
    if not roles or not blocks or images is None or not len(images):
        fig, axes = new_figure(1, 1, 4, 3)
        no_data(axes[0, 0])
        return fig
    side = min(1.8, 12.0 / (len(blocks) + 1))
    fig, axes = new_figure(len(images) * len(roles), len(blocks) + 1, side, side)
    for n, image in enumerate(images):
        picture, cmap = _as_picture(np.asarray(image, dtype=float))
        height, width = picture.shape[:2]
        for r, role in enumerate(roles):
            row = axes[n * len(roles) + r]
            row[0].imshow(picture, cmap=cmap)
            row[0].set_ylabel(f"image {n + 1}\n{role}", fontsize=8)
            for ax, block in zip(row[1:], blocks):
                ax.imshow(picture, cmap=cmap)
                if block in cams[role]:
                    ax.imshow(cams[role][block][n], cmap="jet", alpha=0.5, vmin=0, vmax=1,
                              extent=(-0.5, width - 0.5, height - 0.5, -0.5))
            for ax, title in zip(row, ["input"] + [str(b) for b in blocks]):
                ax.set_xticks([])
                ax.set_yticks([])
                ax.grid(False)
                if n == 0 and r == 0:
                    ax.set_title(title, fontsize=8)
    return fig


# Every role of a results folder (notebooks/03-pareto.ipynb): display names and fixed colours
# besides analysis.style's (the recalibrated ADN must not share ADN's red).
FRONTIER_LABELS = {"alphanet": "AlphaNet-style"}
FRONTIER_COLORS = {"ADN (recalibrated BN)": "#ff7f0e", **FIG4_VARIANTS}


@themed
def frontiers(evals: pd.DataFrame, arch: str | None = None):
    """Top-1 vs GFLOPs of every role in ``evals`` (test split), one panel per arch (or only
    ``arch``): the sub-networks of each adaptive role faint with their Pareto frontier solid
    (ADN's labelled with their skip configs), the individual networks of all depths as one
    dashed line, KD-individual networks as another; means over seeds, +-1 std error bars.
    Roles absent from ``evals`` are simply not drawn. Add recalibrated-BN roles with
    ``analysis.frontiers.with_recalibrated``."""
    rows = _test_rows(evals, ordered_unique(evals["role"]) if evals is not None and len(evals) else [])
    archs = [arch] if arch else ordered_unique(rows["arch"])
    fig, axes = new_figure(max(len(archs), 1), 1, 8.0, 5.0)
    if not archs:
        no_data(axes[0, 0])
    for ax, name in zip(axes[:, 0], archs):
        here = rows[rows["arch"] == name]
        if not len(here):
            no_data(ax)
            continue
        lines = [("individual", "s", True, here[here["role"].isin(INDIVIDUAL_ROLES)]),
                 ("KD-individual", "^", True, here[here["role"] == "KD-individual"])]
        adaptive = [r for r in ordered_unique(here["role"]) if r not in INDIVIDUAL_ROLES + ["KD-individual"]]
        colors = {**colors_for([FRONTIER_LABELS.get(r, r) for r in adaptive] + ["individual", "KD-individual"]),
                  **{FRONTIER_LABELS.get(r, r): c for r, c in FRONTIER_COLORS.items()}}
        for role in adaptive:
            label = FRONTIER_LABELS.get(role, role)
            _points(ax, here[here["role"] == role], label, colors[label], marker="o" if role == "ADN" else "D",
                    frontier=True, annotate=role == "ADN")
        for label, marker, connect, part in lines:
            _points(ax, part, label, colors[label], marker=marker, connect=connect)
        ax.set(xlabel=GFLOPS, ylabel=TOP1, title=caption(here, name))
        ax.legend(fontsize=8)
    return fig
