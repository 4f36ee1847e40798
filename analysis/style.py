"""One look for every figure: seaborn theme, a fixed palette (ADN always red), panel helpers.

Nothing here changes global matplotlib state: figure functions wrap themselves in ``themed``,
which applies the theme inside an ``rc_context`` only, and build ``matplotlib.figure.Figure``
objects directly (no pyplot), so they work headless and need no ``plt.close``.
"""
from __future__ import annotations

import functools
from collections.abc import Iterable

import matplotlib as mpl
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

ADN_RED = "#d62728"
INDIVIDUAL_BLUE = "#1f77b4"
KD_GREEN = "#2ca02c"
NEUTRAL_GREY = "#7f7f7f"
# Colours for labels that are neither ADN nor a named baseline (other split ratios, ...).
OTHERS = ["#1f77b4", "#2ca02c", "#7f7f7f", "#9467bd", "#8c564b", "#17becf", "#bcbd22"]
MAX_WIDTH_IN = 12.0


def color_for(label: str) -> str | None:
    """The fixed colour of a known label (ADN and its official variant red, baselines
    blue/green/grey), or None for a label with no fixed colour."""
    text = str(label).lower()
    if "kd" in text:
        return KD_GREEN
    if "individual" in text:
        return INDIVIDUAL_BLUE
    if "alphanet" in text or "width" in text:
        return NEUTRAL_GREY
    if "adn" in text or "official" in text:
        return ADN_RED
    return None


def colors_for(labels: Iterable[str]) -> dict[str, str]:
    """label -> colour: fixed colours where known, the others from OTHERS in order."""
    labels = list(dict.fromkeys(labels))
    fixed = {label: color_for(label) for label in labels}
    spare = iter([c for c in OTHERS if c not in fixed.values()] + OTHERS)
    return {label: color or next(spare) for label, color in fixed.items()}


def rc() -> dict:
    """The theme as rcParams: seaborn whitegrid, notebook context, PNGs at 150 dpi."""
    return {**sns.axes_style("whitegrid"), **sns.plotting_context("notebook", font_scale=0.85),
            "savefig.dpi": 150, "savefig.bbox": "tight", "legend.frameon": True}


def themed(make_figure):
    """Decorator: runs a figure function with the theme applied (restored afterwards)."""

    @functools.wraps(make_figure)
    def wrapper(*args, **kwargs):
        with mpl.rc_context(rc()):
            return make_figure(*args, **kwargs)

    return wrapper


def new_figure(nrows: int, ncols: int, panel_w: float, panel_h: float):
    """A constrained-layout Figure (at most MAX_WIDTH_IN wide) and its 2-D array of axes."""
    width = min(ncols * panel_w, MAX_WIDTH_IN)
    fig = Figure(figsize=(width, nrows * panel_h), layout="constrained")
    return fig, fig.subplots(nrows, ncols, squeeze=False)


def no_data(ax, message: str = "no data") -> None:
    """Marks an empty panel instead of leaving it blank or failing."""
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, color="0.4",
            wrap=True)
    ax.set_xticks([])
    ax.set_yticks([])


def caption(rows: pd.DataFrame | None, arch: str | None = None) -> str:
    """Short panel title: "<data set> · <arch>" from the optional ``dataset`` column."""
    parts = []
    if rows is not None and len(rows) and "dataset" in rows.columns:
        subset = rows[rows["arch"] == arch] if arch is not None and "arch" in rows else rows
        parts.append(", ".join(str(d) for d in dict.fromkeys(subset["dataset"].dropna())))
    if arch:
        parts.append(str(arch))
    return " · ".join(p for p in parts if p)
