"""Classification metrics: the report of one set, and every metric as a function of image weights.

Everything takes labels (N,) of class indices and probabilities (N, C); a binary task may give
(N, 2) or the positive-class probability (N,). :func:`weighted_metrics` computes the metrics
under integer image weights, how the grouped bootstrap (:mod:`skinlib.evaluation.bootstrap`)
resamples: a whole batch of resamples is a (B, N) matrix and every metric is a few matrix
products. The weighted metrics equal scikit-learn's on the expanded resample (tests check this).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
    roc_auc_score,
)

HEADLINE = ("accuracy", "balanced_accuracy", "macro_f1", "weighted_f1", "macro_auc", "macro_ap")
BINARY_HEADLINE = (*HEADLINE, "sensitivity", "specificity")  # of the positive class (column 1)
METRICS = BINARY_HEADLINE  # every name the bootstrap knows


def as_proba(proba: np.ndarray) -> np.ndarray:
    """(N,) positive-class probabilities become (N, 2); (N, C) is returned as floats."""
    proba = np.asarray(proba, dtype=float)
    return np.stack([1 - proba, proba], axis=1) if proba.ndim == 1 else proba


def specificity_per_class(cm: np.ndarray) -> np.ndarray:
    """TN / (TN + FP) for each class, one-vs-rest, from a confusion matrix (rows = truth)."""
    tp = np.diag(cm)
    fp = cm.sum(axis=0) - tp
    fn = cm.sum(axis=1) - tp
    tn = cm.sum() - tp - fp - fn
    with np.errstate(invalid="ignore", divide="ignore"):
        return tn / (tn + fp)


def auc_per_class(y: np.ndarray, proba: np.ndarray) -> np.ndarray:
    """One-vs-rest ROC AUC per class; NaN for a class absent from ``y`` (or the only one)."""
    out = np.full(proba.shape[1], np.nan)
    for c in range(proba.shape[1]):
        positive = y == c
        if 0 < positive.sum() < len(y):
            out[c] = roc_auc_score(positive, proba[:, c])
    return out


def ap_per_class(y: np.ndarray, proba: np.ndarray) -> np.ndarray:
    """One-vs-rest average precision per class; NaN for a class absent from ``y``."""
    out = np.full(proba.shape[1], np.nan)
    for c in range(proba.shape[1]):
        if (y == c).any():
            out[c] = average_precision_score(y == c, proba[:, c])
    return out


def _positive_column(per_class: np.ndarray) -> float:
    """Binary: the positive class's value; multi-class: the mean over defined classes."""
    if len(per_class) == 2:
        return float(per_class[1])
    return float(np.nanmean(per_class)) if np.isfinite(per_class).any() else np.nan


@dataclass
class Report:
    """All metrics of one prediction set (see :func:`classification_report`)."""

    summary: dict[str, float]  # headline metrics (HEADLINE; binary adds sensitivity, specificity)
    per_class: pd.DataFrame  # precision, recall (sensitivity), specificity, f1, auc, ap, support
    confusion: pd.DataFrame  # counts, rows = truth, columns = prediction
    confusion_normalized: pd.DataFrame  # rows sum to 1 (recall on the diagonal; 0 for empty rows)


def row_normalised(confusion: pd.DataFrame) -> pd.DataFrame:
    """A confusion matrix (rows = truth) with rows that sum to 1: recall on the diagonal; a class
    absent from the truth gets a row of 0.

    >>> row_normalised(pd.DataFrame([[3, 1], [0, 0]])).values.tolist()
    [[0.75, 0.25], [0.0, 0.0]]
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        return confusion.div(confusion.sum(axis=1), axis=0).fillna(0.0)


def classification_report(
    y_true: Sequence[int], proba: np.ndarray, classes: Sequence[str]
) -> Report:
    """Every metric of the study for labels ``y_true`` and probabilities ``proba``.

    Macro averages run over the classes that occur (scikit-learn's convention: balanced
    accuracy over classes in ``y_true``, F1 over classes in ``y_true`` or the predictions, AUC and
    AP over classes in ``y_true``), so a class missing from a small test set does not count as 0.
    Per class, an absent class gets AUC and AP NaN.

    Args:
        y_true: (N,) class indices into ``classes``.
        proba: (N, C) probabilities; binary: (N, 2) or (N,) positive-class probability.
        classes: class codes in column order (binary: ``[negative, positive]``).
    """
    y, p = np.asarray(y_true, dtype=int), as_proba(proba)
    if p.shape[1] != len(classes):
        raise ValueError(f"proba has {p.shape[1]} columns but {len(classes)} classes were named")
    labels = np.arange(p.shape[1])
    pred = p.argmax(1)
    cm = confusion_matrix(y, pred, labels=labels)
    precision, recall, f1, support = precision_recall_fscore_support(
        y, pred, labels=labels, zero_division=0
    )
    auc, ap = auc_per_class(y, p), ap_per_class(y, p)
    per_class = pd.DataFrame(
        {
            "precision": precision,
            "recall": recall,
            "specificity": specificity_per_class(cm),
            "f1": f1,
            "auc": auc,
            "average_precision": ap,
            "support": support,
        },
        index=pd.Index(list(classes), name="class"),
    )
    confusion = pd.DataFrame(cm, index=list(classes), columns=list(classes))
    normalized = row_normalised(confusion)
    with warnings.catch_warnings():  # classes predicted but absent from y_true: left out, as said
        warnings.filterwarnings("ignore", "y_pred contains classes not in y_true")
        balanced = float(balanced_accuracy_score(y, pred))
    summary = {
        "accuracy": float(accuracy_score(y, pred)),
        "balanced_accuracy": balanced,
        "macro_f1": float(f1_score(y, pred, average="macro", zero_division=0)),
        "weighted_f1": float(f1_score(y, pred, average="weighted", zero_division=0)),
        "macro_auc": _positive_column(auc),
        "macro_ap": _positive_column(ap),
    }
    if p.shape[1] == 2:
        summary["sensitivity"] = float(per_class["recall"].iloc[1])
        summary["specificity"] = float(per_class["specificity"].iloc[1])
    return Report(summary, per_class, confusion, normalized)


# --- weighted metrics: one row of weights per resample --------------------------------------


def _confusions(y: np.ndarray, pred: np.ndarray, c: int, w: np.ndarray) -> np.ndarray:
    """(B, C, C) confusion matrices (rows = truth) for weight rows ``w`` (B, N)."""
    cells = np.zeros((len(y), c * c))
    cells[np.arange(len(y)), y * c + pred] = 1.0
    return (w @ cells).reshape(-1, c, c)


def _ranked_sums(score: np.ndarray, hit: np.ndarray, w: np.ndarray):
    """Weights of positives and negatives per distinct score, ascending: (B, K) each."""
    order = np.argsort(score, kind="stable")
    s = score[order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    ws = w[:, order]
    pos = np.add.reduceat(ws * hit[order], starts, axis=1)
    return pos, np.add.reduceat(ws, starts, axis=1) - pos


def _weighted_auc(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """Mann-Whitney AUC (ties count one half), as roc_auc_score with sample weights: (B,)."""
    below = np.cumsum(neg, axis=1) - neg
    n_pos, n_neg = pos.sum(1), neg.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = (pos * (below + 0.5 * neg)).sum(1) / (n_pos * n_neg)
    return np.where((n_pos > 0) & (n_neg > 0), auc, np.nan)


def _weighted_ap(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """Average precision (sum over thresholds of recall step x precision), as scikit-learn: (B,)."""
    pos, neg = pos[:, ::-1], neg[:, ::-1]  # thresholds from the highest score down
    tp, fp = np.cumsum(pos, axis=1), np.cumsum(neg, axis=1)
    n_pos = pos.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
        ap = (pos * precision).sum(1) / n_pos
    return np.where(n_pos > 0, ap, np.nan)


def _class_mean(values: np.ndarray) -> np.ndarray:
    """Binary: the positive class; multi-class: mean over the classes defined in each row."""
    if values.shape[1] == 2:
        return values[:, 1]
    defined = np.isfinite(values)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(defined, values, 0).sum(1) / defined.sum(1)


def _ranking_metrics(y: np.ndarray, p: np.ndarray, w: np.ndarray, names) -> dict:
    """Per-class AUC and AP (B, C) from one sort per class."""
    out = {name: np.empty((len(w), p.shape[1])) for name in names}
    fns = {"macro_auc": _weighted_auc, "macro_ap": _weighted_ap}
    for c in range(p.shape[1]):
        pos, neg = _ranked_sums(p[:, c], y == c, w)
        for name in names:
            out[name][:, c] = fns[name](pos, neg)
    return {name: _class_mean(v) for name, v in out.items()}


def _from_confusion(name: str, cm: np.ndarray) -> np.ndarray:
    tp = np.diagonal(cm, axis1=1, axis2=2)
    support, predicted = cm.sum(2), cm.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        if name == "accuracy":
            return tp.sum(1) / cm.sum((1, 2))
        if name == "balanced_accuracy":  # mean recall over classes present in the truth
            recall = np.where(support > 0, tp / support, 0)
            return recall.sum(1) / (support > 0).sum(1)
        denom = support + predicted  # F1 = 2 TP / (2 TP + FP + FN)
        f1 = np.where(denom > 0, 2 * tp / denom, 0)
        if name == "macro_f1":  # over classes in the truth or the predictions
            return f1.sum(1) / (denom > 0).sum(1)
        if name == "weighted_f1":
            return (f1 * support).sum(1) / support.sum(1)
        if cm.shape[1] != 2:
            raise ValueError(f"{name} needs a binary task; use per-class recall/specificity")
        if name == "sensitivity":
            return cm[:, 1, 1] / support[:, 1]
        return cm[:, 0, 0] / support[:, 0]  # specificity


def weighted_metrics(
    y: np.ndarray, proba: np.ndarray, weights: np.ndarray, metrics: Sequence[str]
) -> dict[str, np.ndarray]:
    """Each metric for every row of image weights (B, N): ``{name: (B,)}``, NaN where undefined.

    A row of integer weights is a bootstrap resample (weight = times drawn); a row of ones is the
    data set itself.
    """
    y, p, w = np.asarray(y, dtype=int), as_proba(proba), np.atleast_2d(weights)
    unknown = set(metrics) - set(METRICS)
    if unknown:
        raise ValueError(f"unknown metrics {sorted(unknown)}; choose from {list(METRICS)}")
    ranking = [m for m in metrics if m in ("macro_auc", "macro_ap")]
    out = _ranking_metrics(y, p, w, ranking) if ranking else {}
    counted = [m for m in metrics if m not in ranking]
    if counted:
        cm = _confusions(y, p.argmax(1), p.shape[1], w)
        out |= {m: _from_confusion(m, cm) for m in counted}
    return {m: out[m] for m in metrics}


def score(y_true: Sequence[int], proba: np.ndarray, metric: str) -> float:
    """One metric on the whole set (e.g. ``score(y, p, "balanced_accuracy")``)."""
    y = np.asarray(y_true, dtype=int)
    return float(weighted_metrics(y, proba, np.ones(len(y)), [metric])[metric][0])
