"""Operating points: thresholds chosen on validation, reported on test, stored with the run.

A clinical claim ("at 95% specificity the model finds 70% of melanomas") needs a threshold fixed
before the test set is seen. Thresholds apply to calibrated probabilities (the run's temperature),
so the stored value means the same thing in the app as in the thesis. The score for a set of
classes (malignant vs benign) is the sum of their probabilities.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_curve

from skinlib.io import read_json, write_json


def positive_score(
    proba: np.ndarray, classes: Sequence[str], positive: Sequence[str]
) -> np.ndarray:
    """Probability of the positive set: the sum over its classes (binary runs: their positive)."""
    classes = list(classes)
    missing = [c for c in positive if c not in classes]
    idx = [classes.index(c) for c in positive if c in classes]
    if not idx and len(classes) == 2 and classes[0] == "other":
        idx = [1]  # a binary run already predicts the positive set
    elif missing and not idx:
        raise ValueError(f"positive classes {missing} are not among the model's classes {classes}")
    return np.asarray(proba)[:, idx].sum(axis=1)


def positive_truth(
    labels: np.ndarray, classes: Sequence[str], positive: Sequence[str]
) -> np.ndarray:
    classes = list(classes)
    if len(classes) == 2 and classes[0] == "other" and not set(positive) & set(classes[1:]):
        return np.asarray(labels) == 1
    return np.isin(np.asarray(classes)[np.asarray(labels)], list(positive))


def sens_spec(truth: np.ndarray, score: np.ndarray, threshold: float) -> tuple[float, float]:
    """Sensitivity and specificity when ``score >= threshold`` means positive."""
    pred = score >= threshold
    pos, neg = truth.sum(), (~truth).sum()
    sens = float((pred & truth).sum() / pos) if pos else np.nan
    spec = float((~pred & ~truth).sum() / neg) if neg else np.nan
    return sens, spec


def choose_threshold(
    truth: np.ndarray,
    score: np.ndarray,
    criterion: str = "specificity",
    target: float | None = 0.95,
) -> float:
    """The least strict threshold that meets the target on these (validation) images.

    Args:
        criterion: ``specificity`` (specificity >= target, highest sensitivity), ``sensitivity``
            (sensitivity >= target, highest specificity) or ``youden`` (max sens + spec - 1).
    """
    truth = np.asarray(truth, bool)
    fpr, tpr, thr = roc_curve(truth, score, drop_intermediate=False)
    thr = np.minimum(thr, 1.0 + 1e-9)  # roc_curve's first threshold is +inf
    if criterion == "specificity":
        ok = np.flatnonzero(1 - fpr >= target)
        return float(thr[ok[-1]])  # lowest threshold (most sensitive) still meeting the target
    if criterion == "sensitivity":
        ok = np.flatnonzero(tpr >= target)
        return float(thr[ok[0]])  # highest threshold (most specific) still meeting the target
    if criterion == "youden":
        return float(thr[np.argmax(tpr - fpr)])
    raise ValueError(f"criterion must be specificity, sensitivity or youden, got {criterion!r}")


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a proportion."""
    if n == 0:
        return np.nan, np.nan
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return float(centre - half), float(centre + half)


@dataclass
class OperatingPoint:
    """A threshold and what it gives on validation (where chosen) and test."""

    positive: list[str]
    criterion: str
    target: float | None
    threshold: float
    temperature: float
    val_sensitivity: float
    val_specificity: float
    test_sensitivity: float = np.nan
    test_sensitivity_low: float = np.nan
    test_sensitivity_high: float = np.nan
    test_specificity: float = np.nan
    test_specificity_low: float = np.nan
    test_specificity_high: float = np.nan


def operating_point(
    val_truth,
    val_score,
    test_truth,
    test_score,
    positive: Sequence[str],
    criterion: str = "specificity",
    target: float | None = 0.95,
    temperature: float = 1.0,
) -> OperatingPoint:
    """Choose on validation, report on test with Wilson 95% intervals."""
    t = choose_threshold(val_truth, val_score, criterion, target)
    vs, vp = sens_spec(np.asarray(val_truth, bool), np.asarray(val_score), t)
    point = OperatingPoint(list(positive), criterion, target, t, temperature, vs, vp)
    if test_truth is not None:
        truth, score = np.asarray(test_truth, bool), np.asarray(test_score)
        point.test_sensitivity, point.test_specificity = sens_spec(truth, score, t)
        pred = score >= t
        point.test_sensitivity_low, point.test_sensitivity_high = wilson(
            int((pred & truth).sum()), int(truth.sum())
        )
        point.test_specificity_low, point.test_specificity_high = wilson(
            int((~pred & ~truth).sum()), int((~truth).sum())
        )
    return point


DEFAULT_TARGETS = (
    ("specificity", 0.95),
    ("specificity", 0.90),
    ("sensitivity", 0.95),
    ("youden", None),
)


def operating_points_table(
    val_proba,
    val_labels,
    test_proba,
    test_labels,
    classes,
    positive=("mel",),
    targets=DEFAULT_TARGETS,
    temperature: float = 1.0,
) -> pd.DataFrame:
    """Several operating points for one positive set, chosen on validation, tested on test."""
    vt, ts = (
        positive_truth(val_labels, classes, positive),
        positive_truth(test_labels, classes, positive),
    )
    vs, tsc = (
        positive_score(val_proba, classes, positive),
        positive_score(test_proba, classes, positive),
    )
    rows = [
        asdict(operating_point(vt, vs, ts, tsc, positive, c, t, temperature)) for c, t in targets
    ]
    table = pd.DataFrame(rows)
    table["positive"] = ["+".join(p) for p in table["positive"]]
    return table


def save_thresholds(path: str | Path, points: Sequence[OperatingPoint]) -> Path:
    """Store operating points with a run (``thresholds.json``); the app reads the first."""
    return write_json(
        path,
        {
            "operating_points": [asdict(p) for p in points],
            "applies_to": "calibrated probabilities (temperature in calibration.json)",
        },
    )


def load_thresholds(path: str | Path) -> list[OperatingPoint]:
    return [OperatingPoint(**p) for p in read_json(path)["operating_points"]]
