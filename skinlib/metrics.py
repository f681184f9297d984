"""Classification metrics with confidence intervals, and paired comparisons of two models.

Everything takes labels (N,) and probabilities (N, C) (binary: (N, 2), or the positive
probability (N,)). Intervals come from a bootstrap that resamples groups (lesions), not images,
because images of one lesion are not independent observations.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.metrics import (
    average_precision_score,
    confusion_matrix,
    precision_recall_fscore_support,
    roc_auc_score,
)

HEADLINE = ("accuracy", "balanced_accuracy", "macro_f1", "weighted_f1", "macro_auc")


def as_proba(proba: np.ndarray) -> np.ndarray:
    """(N,) positive probabilities become (N, 2)."""
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
    """One-vs-rest ROC AUC per class; NaN for a class absent from (or alone in) ``y``."""
    out = np.full(proba.shape[1], np.nan)
    for c in range(proba.shape[1]):
        positive = y == c
        if 0 < positive.sum() < len(y):
            out[c] = roc_auc_score(positive, proba[:, c])
    return out


def macro_auc(y: np.ndarray, proba: np.ndarray) -> float:
    """Binary: the positive class's AUC. Multi-class: mean one-vs-rest AUC over present classes."""
    aucs = auc_per_class(y, proba)
    return float(aucs[1]) if proba.shape[1] == 2 else float(np.nanmean(aucs))


def _cm(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Confusion matrix by bincount: the bootstrap calls this thousands of times."""
    c = p.shape[1]
    return np.bincount(y * c + p.argmax(1), minlength=c * c).reshape(c, c)


def _balanced_accuracy(y: np.ndarray, p: np.ndarray) -> float:
    cm = _cm(y, p)
    present = cm.sum(1) > 0
    return float(np.mean(np.diag(cm)[present] / cm.sum(1)[present]))


def _f1(y: np.ndarray, p: np.ndarray, weighted: bool) -> float:
    cm = _cm(y, p)
    tp, support = np.diag(cm), cm.sum(1)
    denom = support + cm.sum(0)
    f1 = np.divide(2 * tp, denom, out=np.zeros(len(tp)), where=denom > 0)
    if weighted:
        return float(np.sum(f1 * support) / max(support.sum(), 1))
    return float(f1.mean())


METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "accuracy": lambda y, p: float(np.mean(p.argmax(1) == y)),
    "balanced_accuracy": _balanced_accuracy,
    "macro_f1": lambda y, p: _f1(y, p, weighted=False),
    "weighted_f1": lambda y, p: _f1(y, p, weighted=True),
    "macro_auc": macro_auc,
}


@dataclass
class Report:
    """All metrics of one prediction set."""

    summary: dict[str, float]  # headline metrics
    per_class: pd.DataFrame  # precision, recall (sensitivity), specificity, f1, auc, ap, support
    confusion: pd.DataFrame  # counts, rows = truth, columns = prediction
    confusion_normalized: pd.DataFrame  # rows sum to 1 (recall on the diagonal)


def classification_report(
    y_true: Sequence[int], proba: np.ndarray, classes: Sequence[str]
) -> Report:
    """Every metric of the study for labels ``y_true`` and probabilities ``proba``."""
    y = np.asarray(y_true, dtype=int)
    p = as_proba(proba)
    labels = np.arange(p.shape[1])
    pred = p.argmax(1)
    cm = confusion_matrix(y, pred, labels=labels)
    precision, recall, f1, support = precision_recall_fscore_support(
        y, pred, labels=labels, zero_division=0
    )
    ap = [average_precision_score(y == c, p[:, c]) if (y == c).any() else np.nan for c in labels]
    per_class = pd.DataFrame(
        {
            "precision": precision,
            "recall": recall,
            "specificity": specificity_per_class(cm),
            "f1": f1,
            "auc": auc_per_class(y, p),
            "average_precision": ap,
            "support": support,
        },
        index=pd.Index(list(classes), name="class"),
    )
    confusion = pd.DataFrame(cm, index=list(classes), columns=list(classes))
    with np.errstate(invalid="ignore", divide="ignore"):
        normalized = confusion.div(confusion.sum(axis=1), axis=0).fillna(0.0)
    summary = {name: float(fn(y, p)) for name, fn in METRICS.items()}
    if p.shape[1] == 2:
        summary["sensitivity"] = float(per_class["recall"].iloc[1])
        summary["specificity"] = float(per_class["specificity"].iloc[1])
    return Report(summary, per_class, confusion, normalized)


def _group_index(groups: Sequence | None, n: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """Unique groups and, for each, the rows it owns (each image its own group if None)."""
    if groups is None:
        rows = [np.array([i]) for i in range(n)]
        return np.arange(n), rows
    codes, uniques = pd.factorize(pd.Series(np.asarray(groups)))
    order = np.argsort(codes, kind="stable")
    bounds = np.cumsum(np.bincount(codes, minlength=len(uniques)))[:-1]
    return np.arange(len(uniques)), np.split(order, bounds)


def bootstrap_indices(groups: Sequence | None, n: int, n_boot: int, seed: int = 0):
    """Yield row indices of ``n_boot`` resamples that draw whole groups with replacement."""
    ids, rows = _group_index(groups, n)
    rng = np.random.default_rng(seed)
    for _ in range(n_boot):
        picks = rng.choice(len(ids), size=len(ids), replace=True)
        yield np.concatenate([rows[i] for i in picks])


def bootstrap_ci(
    y_true: Sequence[int],
    proba: np.ndarray,
    groups: Sequence | None = None,
    metrics: Sequence[str] = HEADLINE,
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
) -> pd.DataFrame:
    """Percentile bootstrap intervals (grouped by lesion) for the named metrics.

    Returns:
        One row per metric: ``metric, value, low, high`` (value on the full set).
    """
    y, p = np.asarray(y_true, dtype=int), as_proba(proba)
    samples = {m: [] for m in metrics}
    for idx in bootstrap_indices(groups, len(y), n_boot, seed):
        for m in metrics:
            with np.errstate(all="ignore"):
                try:
                    samples[m].append(METRICS[m](y[idx], p[idx]))
                except ValueError:  # a resample without some class
                    samples[m].append(np.nan)
    rows = []
    for m in metrics:
        values = np.asarray(samples[m], dtype=float)
        low, high = np.nanquantile(values, [alpha / 2, 1 - alpha / 2])
        rows.append(
            {"metric": m, "value": float(METRICS[m](y, p)), "low": float(low), "high": float(high)}
        )
    return pd.DataFrame(rows)


def mcnemar(correct_a: np.ndarray, correct_b: np.ndarray) -> dict:
    """McNemar's test on paired correctness: exact binomial when few pairs disagree."""
    a, b = np.asarray(correct_a, bool), np.asarray(correct_b, bool)
    only_a, only_b = int(np.sum(a & ~b)), int(np.sum(~a & b))
    n = only_a + only_b
    if n == 0:
        return {"only_a": 0, "only_b": 0, "statistic": 0.0, "p_value": 1.0, "method": "none"}
    if n < 25:
        p = stats.binomtest(only_a, n, 0.5).pvalue
        return {
            "only_a": only_a,
            "only_b": only_b,
            "statistic": float(only_a),
            "p_value": float(p),
            "method": "exact",
        }
    stat = (abs(only_a - only_b) - 1) ** 2 / n
    return {
        "only_a": only_a,
        "only_b": only_b,
        "statistic": float(stat),
        "p_value": float(stats.chi2.sf(stat, 1)),
        "method": "chi2_cc",
    }


def paired_comparison(
    y_true: Sequence[int],
    proba_a: np.ndarray,
    proba_b: np.ndarray,
    groups: Sequence | None = None,
    metric: str = "balanced_accuracy",
    n_boot: int = 1000,
    seed: int = 0,
) -> dict:
    """Model A minus model B on the same images: bootstrap interval and p-value of the difference,
    and McNemar's test on which images each gets right."""
    y = np.asarray(y_true, dtype=int)
    pa, pb = as_proba(proba_a), as_proba(proba_b)
    fn = METRICS[metric]
    diffs = []
    for idx in bootstrap_indices(groups, len(y), n_boot, seed):
        with np.errstate(all="ignore"):
            diffs.append(fn(y[idx], pa[idx]) - fn(y[idx], pb[idx]))
    diffs = np.asarray(diffs)
    # two-sided bootstrap p-value: how often the resampled difference crosses zero
    p_boot = min(1.0, 2 * min(np.mean(diffs <= 0), np.mean(diffs >= 0)))
    test = mcnemar(pa.argmax(1) == y, pb.argmax(1) == y)
    return {
        "metric": metric,
        "difference": float(fn(y, pa) - fn(y, pb)),
        "low": float(np.quantile(diffs, 0.025)),
        "high": float(np.quantile(diffs, 0.975)),
        "p_bootstrap": float(p_boot),
        "p_mcnemar": test["p_value"],
        "mcnemar": test,
    }
