"""Findings: the sentence under each result that says what it shows, computed from the result.

Prose written by hand into a notebook goes stale the moment the profile or the data changes;
these functions read the numbers the notebook has just produced and state the finding, with its
uncertainty, so an executed notebook reads as a study on any profile. They only format: every
number comes from :mod:`skinlib.metrics`, :mod:`skinlib.calibration`, :mod:`skinlib.thresholds`
or :mod:`skinlib.xai` through :class:`skinlib.study.Study`.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Sequence

import pandas as pd

from skinlib.report import format_ci


def _ci(row, metric: str) -> str:
    return format_ci(row[metric], row[f"{metric}_low"], row[f"{metric}_high"])


def ranking(rows: Sequence[dict], n_classes: int, metric: str = "balanced_accuracy") -> str:
    """Models (or strategies) ranked by a metric with its interval, and which intervals overlap
    the best one's (the candidates for "no real difference").

    Args:
        rows: :meth:`skinlib.study.Study.headline` rows (``model``, ``metric``, ``_low``/``_high``).
        n_classes: for the chance level of balanced accuracy (1 / classes).

    >>> rows = [dict(model="a", balanced_accuracy=0.8, balanced_accuracy_low=0.7,
    ...              balanced_accuracy_high=0.9),
    ...         dict(model="b", balanced_accuracy=0.75, balanced_accuracy_low=0.65,
    ...              balanced_accuracy_high=0.85)]
    >>> print(ranking(rows, 4))
    Best: a, balanced accuracy 0.800 [0.700, 0.900] (chance 0.250); then b 0.750 [0.650, 0.850]. Intervals overlapping the best one's: b.
    """
    frame = pd.DataFrame(rows).sort_values(metric, ascending=False, kind="stable")
    best, rest = frame.iloc[0], frame.iloc[1:]
    name = metric.replace("_", " ")
    text = f"Best: {best['model']}, {name} {_ci(best, metric)}"
    if metric == "balanced_accuracy":
        text += f" (chance {1 / n_classes:.3f})"
    if len(rest):
        text += "; then " + ", ".join(f"{r['model']} {_ci(r, metric)}" for _, r in rest.iterrows())
    overlapping = rest[rest[f"{metric}_high"] >= best[f"{metric}_low"]]["model"].tolist()
    text += ". Intervals overlapping the best one's: " + (", ".join(overlapping) or "none") + "."
    return text


def calibration(table: pd.DataFrame, split: str = "test") -> str:
    """Which models temperature scaling helped on ``split`` (ECE before -> after), and which not.

    Args:
        table: rows of :func:`skinlib.calibration.calibration_report` with a ``model`` column.
    """
    rows = table[table["split"] == split].pivot(index="model", columns="stage", values="ece")
    rows = rows.loc[table.loc[table["split"] == split, "model"].unique()]  # the table's order
    change = {m: f"{m} {r['before']:.3f} -> {r['after']:.3f}" for m, r in rows.iterrows()}
    better = [change[m] for m, r in rows.iterrows() if r["after"] < r["before"]]
    worse = [change[m] for m, r in rows.iterrows() if r["after"] >= r["before"]]
    text = f"Temperature scaling lowered the {split} ECE for {len(better)} of {len(rows)} models"
    text += (": " + "; ".join(better)) if better else ""
    if worse:
        text += ". It did not for " + "; ".join(worse)
        text += " (the temperature minimises validation NLL, not ECE on another split)"
    return text + "."


def operating_points(points: pd.DataFrame, positive: str, target: float) -> str:
    """Test sensitivity (with interval) and specificity at the threshold chosen for ``target``
    specificity on validation, per model, most sensitive first.

    Args:
        points: :func:`skinlib.thresholds.operating_points_table` rows with a ``model`` column.
        positive: the positive set as the table names it (e.g. ``mel`` or ``akiec+bcc+mel``).
    """
    chosen = points[
        (points["positive"] == positive)
        & (points["criterion"] == "specificity")
        & ((points["target"] - target).abs() < 1e-9)
    ].sort_values("test_sensitivity", ascending=False, kind="stable")
    parts = [
        f"{r['model']} {format_ci(r['test_sensitivity'], r['test_sensitivity_low'], r['test_sensitivity_high'])}"
        f" at specificity {r['test_specificity']:.2f}"
        for _, r in chosen.iterrows()
    ]
    return (
        f"At the threshold chosen for {target:.0%} specificity on validation, {positive} "
        f"sensitivity on test: " + "; ".join(parts) + "."
    )


def cam_scores(summary: pd.DataFrame) -> str:
    """Which architecture's maps point at the lesion most and least often, against chance.

    Args:
        summary: :meth:`skinlib.study.Study.cam_summary` (index ``model``; ``pointing``,
            ``energy_inside``, ``mask_share``).
    """
    if "pointing" not in summary:
        return "No lesion masks: the maps are scored by faithfulness (ROAD) instead."
    ranked = summary.dropna(subset=["pointing"]).sort_values("pointing", ascending=False)
    first, last = ranked.iloc[0], ranked.iloc[-1]
    return (
        f"{ranked.index[0]}'s maps peak on the lesion in {first['pointing']:.0%} of test images "
        f"({first['energy_inside']:.0%} of their energy inside, {first['mask_share']:.0%} by "
        f"chance); {ranked.index[-1]}'s in {last['pointing']:.0%} ({last['energy_inside']:.0%})."
    )


_NUMBER_WITH_INTERVAL = re.compile(r"(?<![\w.])(\d+\.\d+)( \[\d+\.\d+, \d+\.\d+\])")
_PERCENT = re.compile(r"(?<![\w.*])(\d+(?:\.\d+)?%)")


def as_markdown(text: str) -> str:
    """A finding as a Markdown paragraph: estimates before an interval and percentages in bold.

    >>> as_markdown("Best: a, balanced accuracy 0.800 [0.700, 0.900]; 96% of images.")
    'Best: a, balanced accuracy **0.800** [0.700, 0.900]; **96%** of images.'
    """
    text = _NUMBER_WITH_INTERVAL.sub(r"**\1**\2", text)
    return _PERCENT.sub(r"**\1**", text)


class Finding(str):
    """A finding sentence that a notebook renders as Markdown (bold numbers, wrapped by the
    browser) and a terminal prints as wrapped plain text."""

    def _repr_markdown_(self) -> str:
        return as_markdown(str(self))

    def __repr__(self) -> str:
        return textwrap.fill(str(self), width=100)


def show(*sentences: str) -> Finding:
    """The finding(s) of a cell, for display as its last expression (one paragraph each)."""
    return Finding("\n\n".join(sentences))
