"""Thesis figures in one style. Each function takes ``ax=None`` (or ``fig=None``) and returns the
figure; only notebooks and the pipeline save (:func:`save_figure`); nothing here shows.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from cycler import cycler
from matplotlib.ticker import LogLocator, NullFormatter

from skinlib.evaluation.metrics import row_normalised
from skinlib.inference.xai import overlay

# Figures are drawn at the size they are printed (thesis/main.tex: A4 with 2.5 cm margins, a 16 cm
# text width), so that their text stays at 8-9 pt beside an 11 pt body; the thesis includes them
# at their natural size (never scaled up or down to the text width).
FULL_WIDTH = 6.2  # inches: the text width (16 cm = 6.3 in, less a margin for tight bounding boxes)
COLUMN_WIDTH = 3.1  # inches: half the text width (two figures side by side, or one small one)
STYLE = {
    "figure.dpi": 110,
    "savefig.dpi": 300,
    "savefig.bbox": "tight",
    "font.size": 9,
    "axes.titlesize": 9,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "pdf.fonttype": 42,  # TrueType in PDFs: text stays text (searchable, editable)
}


def palette() -> list:
    """seaborn's colour-blind-safe palette (the colour cycle of every figure)."""
    return sns.color_palette("colorblind")


def style_rc() -> dict:
    """The thesis rcParams: seaborn ``ticks`` style, ``paper`` context, colour-blind cycle."""
    return {
        **sns.axes_style("ticks"),
        **sns.plotting_context("paper"),
        **STYLE,
        "axes.prop_cycle": cycler(color=palette()),
    }


def set_style() -> None:
    """Apply the thesis style for the rest of the session (notebooks call this once)."""
    plt.rcParams.update(style_rc())


@contextmanager
def thesis_style():
    """The thesis style inside a ``with`` block only; the previous settings come back after."""
    with plt.rc_context(style_rc()):
        yield


def _axes(ax, size=(COLUMN_WIDTH, 2.5)):
    if ax is None:
        fig, ax = plt.subplots(figsize=size, layout="constrained")
        return fig, ax
    return ax.figure, ax


def save_figure(fig, path_stem: str | Path) -> list[Path]:
    """Write ``<stem>.pdf`` and ``<stem>.png`` (300 dpi) at the figure's drawn size; returns both
    paths."""
    stem = Path(path_stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    out = [stem.parent / f"{stem.name}.pdf", stem.parent / f"{stem.name}.png"]
    for path in out:
        fig.savefig(path, dpi=300, bbox_inches="tight")
    return out


def class_counts(counts: pd.Series, ax=None):
    """Images per class on a log scale, counts written on the bars (the imbalance at a glance)."""
    fig, ax = _axes(ax, (FULL_WIDTH * 0.75, 2.6))
    counts = counts.sort_values(ascending=False)
    ax.bar(counts.index.astype(str), counts.values, color=palette()[0])
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(base=10))
    ax.yaxis.set_minor_formatter(NullFormatter())  # no 2x10^2, 3x10^2 ... clutter
    ax.set_ylim(top=counts.max() * 2.5)  # room for the count above the tallest bar
    ax.set_xlabel("class")
    ax.set_ylabel("images (log scale)")
    for i, v in enumerate(counts.values):
        ax.text(i, v * 1.08, f"{int(v):,}", ha="center", va="bottom", fontsize=8)
    return fig


def confusion_matrix(cm: pd.DataFrame, ax=None, normalized: bool = True):
    """Confusion matrix heat map (rows = truth); row-normalised puts recall on the diagonal.

    Args:
        cm: counts (``Report.confusion``), classes as index and columns.
    """
    fig, ax = _axes(ax, (COLUMN_WIDTH, COLUMN_WIDTH * 0.9))
    data = row_normalised(cm) if normalized else cm
    sns.heatmap(
        data,
        annot=True,
        fmt=".2f" if normalized else "d",
        cmap="Blues",
        cbar=False,
        ax=ax,
        vmin=0,
        vmax=1 if normalized else None,
        annot_kws={"fontsize": 7},
        square=True,
    )
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    return fig


def reliability_diagram(
    tables: dict[str, pd.DataFrame], ax=None, title: str | None = None, legend: bool = True
):
    """Accuracy against mean confidence per bin, one line per probability set (before/after),
    above a histogram of how many images each bin holds (of the first set), so that a reader sees
    which points rest on a handful of images.

    Args:
        tables: ``{name: skinlib.evaluation.calibration.reliability(...)}``; empty bins are skipped and the
            marker area follows the bin's share of images.
        legend: draw the legend on this axis (a grid of diagrams shares one instead).
    """
    fig, ax = _axes(ax, (COLUMN_WIDTH, COLUMN_WIDTH))
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=0.8, label="perfect calibration")
    for name, table in tables.items():
        used = table[table["count"] > 0]
        sizes = 4 + 60 * used["count"] / used["count"].sum()
        (line,) = ax.plot(used["confidence"], used["accuracy"], lw=1.2, label=name)
        ax.scatter(used["confidence"], used["accuracy"], s=sizes, color=line.get_color(), zorder=3)
    if tables:
        _bin_counts(ax, next(iter(tables.values())))
    # a margin around [0, 1]: points at accuracy 1.0 sit inside the frame, not on it
    ax.set(xlim=(-0.02, 1.02), ylim=(-0.02, 1.04), xlabel="confidence", ylabel="accuracy")
    ax.set_aspect("equal")
    if legend:
        ax.legend(loc="upper left", frameon=False)
    if title:
        ax.set_title(title)
    return fig


def reliability_grid(tables: dict[str, dict[str, pd.DataFrame]], ncols: int = 3):
    """One reliability diagram per model in a grid at text width, with a single shared legend.

    Args:
        tables: ``{model: {name: reliability table}}`` (as :func:`reliability_diagram` takes).
    """
    n = max(1, len(tables))
    ncols = min(ncols, n)
    nrows = int(np.ceil(n / ncols))
    side = FULL_WIDTH / ncols
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(FULL_WIDTH, side * nrows + 0.4), layout="constrained", squeeze=False
    )
    for ax, (model, model_tables) in zip(axes.flat, tables.items(), strict=False):
        reliability_diagram(model_tables, ax=ax, title=model, legend=False)
    for ax in axes.flat[len(tables) :]:
        ax.set_axis_off()
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=len(labels), frameon=False)
    return fig


def _bin_counts(ax, table: pd.DataFrame) -> None:
    """Grey bars of images per bin along the bottom fifth of a reliability diagram."""
    counts = table["count"].to_numpy(float)
    if not counts.max():
        return
    height = 0.2 * counts / counts.max()
    ax.bar(
        (table["lower"] + table["upper"]) / 2,
        height,
        width=table["upper"] - table["lower"],
        bottom=-0.02,
        color="0.85",
        zorder=0,
        label="images per bin (scaled)",
    )
    top = int(np.argmax(counts))
    ax.text(
        (table["lower"].iloc[top] + table["upper"].iloc[top]) / 2,
        height[top] - 0.01,
        f"{int(counts[top])}",
        ha="center",
        va="bottom",
        fontsize=7,
        color="0.35",
    )


def roc_curves(
    curves: dict[str, tuple[np.ndarray, np.ndarray, float]],
    points: dict[str, tuple[float, float]] | None = None,
    ax=None,
    title: str | None = None,
):
    """ROC curves ``{name: (fpr, tpr, auc)}`` (:func:`skinlib.evaluation.thresholds.roc_curves`) with
    operating points ``{name: (1 - specificity, sensitivity)}`` marked."""
    fig, ax = _axes(ax, (COLUMN_WIDTH * 1.6, COLUMN_WIDTH))
    ax.plot([0, 1], [0, 1], ls=":", color="grey", lw=0.8)
    colours = {}
    for name, (fpr, tpr, auc) in curves.items():
        (line,) = ax.plot(fpr, tpr, lw=1.2, label=f"{name} (AUC {auc:.3f})")
        colours[name] = line.get_color()
    markers = iter("*DsP^v")
    for name, (x, y) in (points or {}).items():
        # a model's operating point takes its curve's colour ("resnet18 op." -> "resnet18")
        colour = next((c for n, c in colours.items() if name.startswith(n)), "black")
        ax.plot([x], [y], marker=next(markers, "o"), ms=7, ls="none", color=colour, label=name)
    ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="1 - specificity", ylabel="sensitivity")
    ax.set_aspect("equal")
    ax.legend(loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False)
    if title:
        ax.set_title(title)
    return fig


def learning_curves(
    histories: dict[str, pd.DataFrame], metric: str = "val_balanced_accuracy", ax=None
):
    """A column of ``metrics.csv`` per epoch for several runs ``{name: metrics DataFrame}``."""
    fig, ax = _axes(ax)
    for name, h in histories.items():
        ax.plot(h["epoch"], h[metric], marker="o", ms=2.5, label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric.replace("_", " "))
    ax.legend(frameon=False)
    return fig


def loss_curves(history: pd.DataFrame, ax=None):
    """Training and validation loss of one run (its ``metrics.csv``)."""
    fig, ax = _axes(ax)
    ax.plot(history["epoch"], history["train_loss"], marker="o", ms=2.5, label="train")
    ax.plot(history["epoch"], history["val_loss"], marker="o", ms=2.5, label="validation")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.legend(frameon=False)
    return fig


def _colours(n: int) -> list:
    """``n`` colours of the palette, cycling past its ten (02 may compare more arms)."""
    colours = palette()
    return [colours[i % len(colours)] for i in range(n)]


def grouped_bars(table: pd.DataFrame, ax=None, ylabel: str = "recall"):
    """Bars per row (class) and column (strategy): e.g. per-class recall side by side."""
    fig, ax = _axes(ax, (FULL_WIDTH, 2.5))
    index = table.index.name or "index"
    long = table.reset_index().melt(id_vars=index, var_name="group", value_name="value")
    sns.barplot(data=long, x=index, y="value", hue="group", ax=ax, palette=_colours(table.shape[1]))
    ax.set(ylabel=ylabel, xlabel="", ylim=(0, 1))
    ax.legend(
        ncol=min(5, table.shape[1]),
        frameon=False,
        loc="lower center",
        bbox_to_anchor=(0.5, 1.0),
    )
    return fig


def forest(table: pd.DataFrame, ax=None, label: str = "balanced accuracy"):
    """Point estimates with 95% intervals, one row per model (columns ``name, value, low, high``)."""
    fig, ax = _axes(ax, (COLUMN_WIDTH, 0.3 * len(table) + 0.8))
    table = table.iloc[::-1]
    y = np.arange(len(table))
    ax.errorbar(
        table["value"],
        y,
        xerr=[table["value"] - table["low"], table["high"] - table["value"]],
        fmt="o",
        ms=4,
        capsize=2,
        color=palette()[0],
    )
    ax.set_yticks(y, table["name"])
    ax.set_xlabel(f"{label} (95% CI)")
    return fig


def image_gallery(images: Sequence[np.ndarray], titles: Sequence[str], ncols: int = 6):
    """A grid of images (e.g. Grad-CAM overlays) with titles wrapped to their panels
    (:func:`titled_gallery`)."""
    return titled_gallery(images, titles, ncols=ncols)


def cam_gallery(
    images: Sequence[np.ndarray],
    cams: Sequence[np.ndarray],
    titles: Sequence[str],
    fig=None,
    ncols: int = 3,
    alpha: float = 0.5,
):
    """Each image beside its map laid over it, the pair titled (e.g. "false negative,
    p(mel)=0.12"): the title is centred over the pair and wrapped to its width, so that at print
    size it never runs into the next pair's.

    Args:
        images: (H, W, 3) RGB, uint8 or float in [0, 1].
        cams: (h, w) maps in [0, 1] (resized to the image).
        ncols: image-map pairs per row.
    """
    n = max(1, len(images))
    nrows = int(np.ceil(n / ncols))
    side = FULL_WIDTH / (2 * ncols)
    fig = fig or plt.figure(figsize=(FULL_WIDTH, side * nrows * 1.45))
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=0.92, wspace=0.04, hspace=0.45)
    # characters of 7 pt type (about 3.6 pt wide) that fit over a pair, less a margin
    width = max(12, int(2 * side * 72 / 3.6 * 0.85))
    for i, (img, cam, title) in enumerate(zip(images, cams, titles, strict=True)):
        pair = []
        for j, shown in enumerate((img, overlay(img, cam, alpha))):
            ax = fig.add_subplot(nrows, 2 * ncols, 2 * i + j + 1)
            ax.imshow(shown)
            ax.axis("off")
            pair.append(ax)
        left, right = pair[0].get_position(), pair[1].get_position()
        fig.text(
            (left.x0 + right.x1) / 2,
            left.y1 + 0.01,
            _wrap(title, width),
            ha="center",
            va="bottom",
            fontsize=7,
        )
    return fig


# --- 08 trust -----------------------------------------------------------------------------------


def risk_coverage_curves(curves: dict[str, pd.DataFrame], ax=None, error_rate: float | None = None):
    """Risk (error rate of the answered images) against coverage, one line per confidence score;
    ``error_rate`` draws the no-deferral level."""
    fig, ax = _axes(ax)
    for name, curve in curves.items():
        ax.plot(curve["coverage"], curve["risk"], label=name.replace("_", " "))
    if error_rate is not None:
        ax.axhline(error_rate, color="0.6", lw=0.8, ls="--", label="answer all")
    ax.set_xlabel("coverage (share answered)")
    ax.set_ylabel("risk (error rate)")
    ax.set_xlim(0, 1)
    ax.set_ylim(bottom=0)
    ax.legend(frameon=False)
    return fig


def set_size_bars(counts: dict[str, pd.Series], ax=None):
    """Share of images by conformal set size, one bar group per kind of input (e.g. known test
    images vs unknown ones: larger sets mean the model is less sure)."""
    frame = pd.DataFrame({k: v / v.sum() for k, v in counts.items()}).fillna(0)
    fig, ax = _axes(ax)
    width = 0.8 / len(frame.columns)
    x = np.arange(len(frame))
    for i, col in enumerate(frame.columns):
        ax.bar(x + (i - (len(frame.columns) - 1) / 2) * width, frame[col], width, label=col)
    ax.set_xticks(x, frame.index)
    ax.set_xlabel("set size (classes)")
    ax.set_ylabel("share of images")
    ax.legend(frameon=False)
    return fig


def subgroup_forest(table: pd.DataFrame, ax=None, label: str = "balanced accuracy"):
    """What the subgroup audit tests: each group's metric minus that of the rest of the test set
    (:func:`skinlib.evaluation.subgroups.subgroup_table`'s ``difference`` with its 95% interval), grouped by
    attribute, against a zero line (no difference); small groups hollow and marked."""
    fig, ax = _axes(ax, (COLUMN_WIDTH, 0.18 * len(table) + 0.8))
    rows = table.iloc[::-1].reset_index(drop=True)
    y = np.arange(len(rows))
    colours = {a: palette()[i % 10] for i, a in enumerate(table["attribute"].unique())}
    ax.axvline(0, color="0.5", lw=0.8, ls="--")
    for i, r in rows.iterrows():
        ax.errorbar(
            r["difference"],
            y[i],
            xerr=[
                [r["difference"] - r["difference_low"]],
                [r["difference_high"] - r["difference"]],
            ],
            fmt="o",
            ms=3.5,
            capsize=1.5,
            color=colours[r["attribute"]],
            mfc="white" if r["small"] else colours[r["attribute"]],
        )
    names = [
        f"{r['attribute']}: {r['group']}" + (" (small)" if r["small"] else "")
        for _, r in rows.iterrows()
    ]
    ax.set_yticks(y, names)
    ax.set_xlabel(f"difference in {label}\n(group minus the rest of the test set, 95% CI)")
    return fig


# --- 09 audit -----------------------------------------------------------------------------------


def _wrap(title: str, chars: int) -> str:
    """Each line of ``title`` wrapped to ``chars`` characters (its own line breaks kept)."""
    return "\n".join(textwrap.fill(line, chars) for line in str(title).split("\n"))


def titled_gallery(
    images: Sequence[np.ndarray], titles: Sequence[str], ncols: int = 4, fontsize: float = 7
):
    """A grid of images, each under a title of one or more lines, that reads at the printed
    size: every line is wrapped to its panel's width (so a title never runs into its
    neighbour's) and constrained layout spaces the rows for the tallest title.

    Args:
        images: (H, W, 3) RGB arrays (uint8, or float in [0, 1]).
        titles: one per image; ``\\n`` separates its lines.
        ncols: images per row across the full text width.
    """
    n = max(1, len(images))
    ncols = min(ncols, n)
    nrows = int(np.ceil(n / ncols))
    panel = FULL_WIDTH / ncols  # inches
    # characters of about 0.6 em that fit in 90% of a panel at this size
    chars = max(8, int(panel * 72 * 0.9 / (0.6 * fontsize)))
    wrapped = [_wrap(title, chars) for title in titles]
    lines = max((t.count("\n") + 1 for t in wrapped), default=1)
    height = nrows * (panel + lines * fontsize * 1.35 / 72 + 0.05)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(FULL_WIDTH, height), layout="constrained", squeeze=False
    )
    for ax in axes.ravel():
        ax.axis("off")
    for ax, img, title in zip(axes.ravel(), images, wrapped, strict=False):
        ax.imshow(img)
        ax.set_title(title, fontsize=fontsize, linespacing=1.15)
    return fig
