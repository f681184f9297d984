"""Thesis figures in one style. Each function takes ``ax=None`` and returns the figure; only
notebooks and the pipeline save (:func:`save_figure`), and nothing here calls ``plt.show()``.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

COLUMN_WIDTH = 3.4  # inches: one column of a two-column thesis page
FULL_WIDTH = 6.8
STYLE = {
    "figure.dpi": 110,
    "savefig.dpi": 300,
    "savefig.bbox": "tight",
    "font.size": 8,
    "axes.titlesize": 9,
    "axes.labelsize": 8,
    "legend.fontsize": 7,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "axes.spines.top": False,
    "axes.spines.right": False,
}


def set_style() -> None:
    """Colour-blind-safe palette and font sizes readable at one column width."""
    sns.set_theme(context="paper", style="ticks", palette="colorblind", rc=STYLE)


@contextmanager
def thesis_style():
    with plt.rc_context(STYLE), sns.axes_style("ticks"):
        sns.set_palette("colorblind")
        yield


def _axes(ax, size=(COLUMN_WIDTH, 2.6)):
    if ax is None:
        fig, ax = plt.subplots(figsize=size, layout="constrained")
        return fig, ax
    return ax.figure, ax


def save_figure(fig, stem: str | Path) -> list[Path]:
    """Write ``stem.pdf`` and ``stem.png`` (300 dpi)."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    out = [stem.with_suffix(".pdf"), stem.with_suffix(".png")]
    for path in out:
        fig.savefig(path, dpi=300)
    return out


def class_counts(counts: pd.Series, ax=None):
    """Images per class, log scale (the imbalance at a glance)."""
    fig, ax = _axes(ax)
    counts = counts.sort_values(ascending=False)
    sns.barplot(x=counts.index, y=counts.values, ax=ax, color=sns.color_palette("colorblind")[0])
    ax.set_yscale("log")
    ax.set_xlabel("class")
    ax.set_ylabel("images (log scale)")
    for i, v in enumerate(counts.values):
        ax.text(i, v, str(v), ha="center", va="bottom", fontsize=6)
    return fig


def confusion_matrix(cm: pd.DataFrame, ax=None, normalized: bool = True):
    """Confusion matrix heat map (rows = truth); row-normalised shows recall on the diagonal."""
    fig, ax = _axes(ax, (COLUMN_WIDTH, COLUMN_WIDTH * 0.9))
    data = cm.div(cm.sum(axis=1), axis=0).fillna(0) if normalized else cm
    sns.heatmap(
        data,
        annot=True,
        fmt=".2f" if normalized else "d",
        cmap="Blues",
        cbar=False,
        ax=ax,
        vmin=0,
        vmax=1 if normalized else None,
        annot_kws={"fontsize": 6},
    )
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    return fig


def reliability_diagram(tables: dict[str, pd.DataFrame], ax=None, title: str | None = None):
    """Accuracy against confidence per bin for several probability sets (e.g. before/after)."""
    fig, ax = _axes(ax, (COLUMN_WIDTH, COLUMN_WIDTH))
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=0.8, label="perfect calibration")
    for name, table in tables.items():
        used = table[table["count"] > 0]
        ax.plot(used["confidence"], used["accuracy"], marker="o", ms=3, label=name)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.legend(loc="upper left", frameon=False)
    if title:
        ax.set_title(title)
    return fig


def roc_curves(
    curves: dict[str, tuple[np.ndarray, np.ndarray, float]], points=None, ax=None, title=None
):
    """ROC curves ``{name: (fpr, tpr, auc)}``; ``points`` ``{name: (1 - spec, sens)}`` marked."""
    fig, ax = _axes(ax, (COLUMN_WIDTH, COLUMN_WIDTH))
    ax.plot([0, 1], [0, 1], ls=":", color="grey", lw=0.8)
    for name, (fpr, tpr, auc) in curves.items():
        ax.plot(fpr, tpr, lw=1.2, label=f"{name} (AUC {auc:.3f})")
    for name, (x, y) in (points or {}).items():
        ax.plot([x], [y], marker="*", ms=9, ls="none", label=name)
    ax.set_xlabel("1 - specificity")
    ax.set_ylabel("sensitivity")
    ax.legend(loc="lower right", frameon=False)
    if title:
        ax.set_title(title)
    return fig


def learning_curves(
    histories: dict[str, pd.DataFrame], metric: str = "val_balanced_accuracy", ax=None
):
    """A metric per epoch for several runs (from their ``metrics.csv``)."""
    fig, ax = _axes(ax)
    for name, h in histories.items():
        ax.plot(h["epoch"], h[metric], marker="o", ms=2.5, label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric.replace("_", " "))
    ax.legend(frameon=False)
    return fig


def loss_curves(history: pd.DataFrame, ax=None):
    """Training and validation loss of one run."""
    fig, ax = _axes(ax)
    ax.plot(history["epoch"], history["train_loss"], marker="o", ms=2.5, label="train")
    ax.plot(history["epoch"], history["val_loss"], marker="o", ms=2.5, label="validation")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.legend(frameon=False)
    return fig


def grouped_bars(table: pd.DataFrame, ax=None, ylabel: str = "recall"):
    """Bars per row (e.g. class) and column (e.g. strategy): per-class recall side by side."""
    fig, ax = _axes(ax, (FULL_WIDTH, 2.6))
    long = table.reset_index().melt(
        id_vars=table.index.name or "index", var_name="group", value_name="value"
    )
    sns.barplot(data=long, x=table.index.name or "index", y="value", hue="group", ax=ax)
    ax.set_ylabel(ylabel)
    ax.set_xlabel("")
    ax.set_ylim(0, 1)
    ax.legend(
        ncol=min(5, table.shape[1]),
        frameon=False,
        fontsize=6,
        loc="upper center",
        bbox_to_anchor=(0.5, 1.15),
    )
    return fig


def forest(table: pd.DataFrame, ax=None, label: str = "balanced accuracy"):
    """Point estimates with 95% intervals (columns ``name, value, low, high``)."""
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
        color=sns.color_palette("colorblind")[0],
    )
    ax.set_yticks(y, table["name"])
    ax.set_xlabel(f"{label} (95% CI)")
    return fig


def image_gallery(images: Sequence[np.ndarray], titles: Sequence[str], ncols: int = 6, fig=None):
    """A grid of images (e.g. Grad-CAM overlays) with short titles."""
    n = max(1, len(images))
    nrows = int(np.ceil(n / ncols))
    fig = fig or plt.figure(figsize=(FULL_WIDTH, FULL_WIDTH / ncols * nrows * 1.2))
    for i, (img, title) in enumerate(zip(images, titles, strict=True)):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        ax.imshow(img)
        ax.set_title(title, fontsize=6)
        ax.axis("off")
    return fig
