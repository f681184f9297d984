"""Classification metrics with grouped bootstrap intervals, and paired comparisons of two models.

Everything takes labels (N,) of class indices and probabilities (N, C); a binary task may give
(N, 2) or the positive-class probability (N,). Intervals come from a bootstrap that resamples
groups (lesions), not images, because images of one lesion are not independent observations.

The bootstrap is vectorised: a resample is a vector of integer weights over the images (how often
each was drawn), so a whole batch of resamples is a (B, N) matrix and every metric is a few matrix
products. The weighted metrics equal scikit-learn's on the expanded resample (tests check this).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats
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
EXACT_MCNEMAR_BELOW = 25  # discordant pairs; below this the chi-square approximation is poor
_CHUNK_CELLS = 4_000_000  # resamples x images held in memory at once


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


# --- grouped bootstrap -----------------------------------------------------------------------


def bootstrap_weights(
    groups: Sequence | None, n: int, n_boot: int, seed: int = 0
) -> Iterator[np.ndarray]:
    """Resamples as image weights, in chunks of (b, N): whole groups drawn with replacement.

    Each resample draws as many groups as there are, uniformly with replacement; every image of a
    drawn group gets the group's draw count as its weight. ``groups=None``: each image its own group.
    """
    codes = np.arange(n) if groups is None else pd.factorize(pd.Series(np.asarray(groups)))[0]
    if len(codes) != n:
        raise ValueError(f"groups has {len(codes)} entries for {n} images")
    if (codes < 0).any():
        raise ValueError("groups has missing values; give such images their image id as group")
    n_groups = int(codes.max()) + 1 if n else 0
    rng = np.random.default_rng(seed)
    chunk = max(1, _CHUNK_CELLS // max(n, n_groups, 1))
    for start in range(0, n_boot, chunk):
        b = min(chunk, n_boot - start)
        picks = rng.integers(0, n_groups, size=(b, n_groups)) + n_groups * np.arange(b)[:, None]
        counts = np.bincount(picks.ravel(), minlength=b * n_groups).reshape(b, n_groups)
        yield counts[:, codes].astype(float)


def _interval(values: np.ndarray, alpha: float) -> tuple[float, float]:
    """Percentile interval ignoring resamples where the metric is undefined (NaN)."""
    values = values[np.isfinite(values)]
    if not len(values):
        return np.nan, np.nan
    low, high = np.quantile(values, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


def grouped_intervals(
    statistics: Callable[[np.ndarray], dict[str, np.ndarray]],
    groups: Sequence | None,
    n: int,
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
) -> dict[str, tuple[float, float]]:
    """Percentile intervals of any statistics that take image weights, resampling groups.

    For metrics outside :data:`METRICS` (calibration errors, AURC): ``statistics`` maps a (b, N)
    block of resamples (:func:`bootstrap_weights`) to ``{name: (b,)}``; resamples where a
    statistic is undefined (NaN) are left out of its percentiles.

    Args:
        groups: (N,) lesion (or patient) id per image; None treats images as independent.
        n: the number of images N.

    Returns:
        ``{name: (low, high)}``.
    """
    chunks = [statistics(w) for w in bootstrap_weights(groups, n, n_boot, seed)]
    names = chunks[0] if chunks else {}
    return {k: _interval(np.concatenate([c[k] for c in chunks]), alpha) for k in names}


def bootstrap_ci(
    y_true: Sequence[int],
    proba: np.ndarray,
    groups: Sequence | None = None,
    metrics: Sequence[str] | None = None,
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
) -> pd.DataFrame:
    """Percentile bootstrap intervals (resampling lesions) for the named metrics.

    Args:
        y_true: (N,) class indices.
        proba: (N, C) probabilities (binary: (N, 2) or (N,)).
        groups: (N,) lesion (or patient) id per image; None treats images as independent.
        metrics: names from :data:`METRICS`; default :data:`HEADLINE` (binary: with sensitivity
            and specificity).
        n_boot: number of resamples.
        alpha: 0.05 gives 95% intervals.
        seed: the same seed draws the same resamples.

    Returns:
        One row per metric: ``metric, value, low, high`` (value on the full set; resamples where a
        metric is undefined, e.g. AUC without a positive, are left out of its percentiles).
    """
    y, p = np.asarray(y_true, dtype=int), as_proba(proba)
    if metrics is None:
        metrics = BINARY_HEADLINE if p.shape[1] == 2 else HEADLINE
    full = weighted_metrics(y, p, np.ones(len(y)), metrics)
    chunks = [
        weighted_metrics(y, p, w, metrics) for w in bootstrap_weights(groups, len(y), n_boot, seed)
    ]
    rows = []
    for m in metrics:
        low, high = _interval(np.concatenate([c[m] for c in chunks]), alpha)
        rows.append({"metric": m, "value": float(full[m][0]), "low": low, "high": high})
    return pd.DataFrame(rows)


# --- comparing two models on the same images -------------------------------------------------


def mcnemar(correct_a: np.ndarray, correct_b: np.ndarray) -> dict:
    """McNemar's test on paired correctness.

    Only the discordant images count (A right and B wrong: ``only_a``; the reverse: ``only_b``).
    Exact two-sided binomial test when they are fewer than :data:`EXACT_MCNEMAR_BELOW`, else the
    chi-square statistic with continuity correction ``(|b - c| - 1)^2 / (b + c)``, 1 dof.
    """
    a, b = np.asarray(correct_a, bool), np.asarray(correct_b, bool)
    only_a, only_b = int(np.sum(a & ~b)), int(np.sum(~a & b))
    n = only_a + only_b
    result = {"only_a": only_a, "only_b": only_b}
    if n == 0:
        return result | {"statistic": 0.0, "p_value": 1.0, "method": "none"}
    if n < EXACT_MCNEMAR_BELOW:
        p = stats.binomtest(only_a, n, 0.5).pvalue
        return result | {"statistic": float(only_a), "p_value": float(p), "method": "exact"}
    stat = (abs(only_a - only_b) - 1) ** 2 / n
    return result | {
        "statistic": float(stat),
        "p_value": float(stats.chi2.sf(stat, df=1)),
        "method": "chi2_cc",
    }


def paired_comparison(
    y_true: Sequence[int],
    proba_a: np.ndarray,
    proba_b: np.ndarray,
    groups: Sequence | None = None,
    metric: str = "balanced_accuracy",
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
) -> dict:
    """Model A minus model B on the same images.

    The paired bootstrap draws the same lesions for both models in every resample, so the
    interval of the difference accounts for their correlation. ``p_bootstrap`` is two-sided: twice
    the share of resampled differences on the far side of zero, counted with the usual add-one
    correction ``(k + 1) / (B + 1)`` (North et al. 2002) so that B resamples never claim p = 0, only
    p < 2 / (B + 1); capped at 1. McNemar's test on which images each model gets right is added as
    the classical check.

    Returns:
        ``metric, a, b, difference, low, high, p_bootstrap, p_mcnemar`` and ``mcnemar`` (the
        test's counts and method).
    """
    y = np.asarray(y_true, dtype=int)
    pa, pb = as_proba(proba_a), as_proba(proba_b)
    if pa.shape != pb.shape:
        raise ValueError(f"the two models' probabilities differ in shape: {pa.shape} vs {pb.shape}")
    value_a, value_b = score(y, pa, metric), score(y, pb, metric)
    diffs = np.concatenate(
        [
            weighted_metrics(y, pa, w, [metric])[metric]
            - weighted_metrics(y, pb, w, [metric])[metric]
            for w in bootstrap_weights(groups, len(y), n_boot, seed)
        ]
    )
    diffs = diffs[np.isfinite(diffs)]
    low, high = _interval(diffs, alpha)
    far = min(np.sum(diffs <= 0), np.sum(diffs >= 0))
    p_boot = min(1.0, 2 * (far + 1) / (len(diffs) + 1)) if len(diffs) else np.nan
    test = mcnemar(pa.argmax(1) == y, pb.argmax(1) == y)
    return {
        "metric": metric,
        "a": value_a,
        "b": value_b,
        "difference": value_a - value_b,
        "low": low,
        "high": high,
        "p_bootstrap": float(p_boot),
        "p_mcnemar": test["p_value"],
        "mcnemar": test,
    }


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjustment for testing several comparisons at once (family-wise error).

    >>> holm([0.01, 0.04, 0.03]).round(3).tolist()
    [0.03, 0.06, 0.06]
    """
    p = np.asarray(p_values, dtype=float)
    adjusted, running = np.empty_like(p), 0.0
    for rank, i in enumerate(np.argsort(p)):
        running = max(running, (len(p) - rank) * p[i])
        adjusted[i] = min(1.0, running)
    return adjusted


def align_pair(reference, other, names: tuple[str, str] = ("reference", "other")):
    """``other`` reordered to ``reference``'s image ids; an error if the two sets of images differ.

    Paired tests are only valid on the same images: a model evaluated on another split, a
    filtered set or another dataset must not be compared image by image.
    """
    if list(reference.classes) != list(other.classes):
        raise ValueError(
            f"{names[0]} and {names[1]} predict different classes: "
            f"{reference.classes} vs {other.classes}"
        )
    ref_ids, other_ids = pd.Index(reference.image_id), pd.Index(other.image_id)
    if ref_ids.has_duplicates or other_ids.has_duplicates:
        raise ValueError(f"{names[0]} or {names[1]} lists an image twice; cannot pair them")
    if set(ref_ids) != set(other_ids):
        only_ref = sorted(set(ref_ids) - set(other_ids))[:3]
        only_other = sorted(set(other_ids) - set(ref_ids))[:3]
        raise ValueError(
            f"{names[0]} and {names[1]} were predicted on different images (e.g. only in "
            f"{names[0]}: {only_ref}, only in {names[1]}: {only_other}); compare them on the "
            "same split of the same run folders"
        )
    order = other_ids.get_indexer(ref_ids)
    if not np.array_equal(np.asarray(other.labels)[order], np.asarray(reference.labels)):
        raise ValueError(f"{names[0]} and {names[1]} disagree on the labels of the same images")
    return other.subset(order) if hasattr(other, "subset") else other


def paired_tests(
    reference_name: str,
    reference,
    others: dict,
    metric: str = "balanced_accuracy",
    n_boot: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """Each model against the reference on the same images, Holm-adjusted.

    The primary test is the paired bootstrap over lesions (``reference.group``) of the reported
    metric; McNemar's test counts images as independent and tests plain accuracy, so it is kept
    as a secondary, image-level column.

    Args:
        reference_name, reference: the reference model (chosen on validation, never on test) and
            its :class:`~skinlib.evaluation.predictions.Predictions`.
        others: name -> Predictions of the same images (any order).

    Returns:
        One row per comparison: the two values, the difference with its interval, the bootstrap
        p-value and its Holm adjustment over all rows, and the image-level McNemar p-value.
    """
    rows = []
    for name, preds in others.items():
        other = align_pair(reference, preds, (reference_name, name))
        res = paired_comparison(
            reference.labels,
            reference.probabilities(),
            other.probabilities(),
            reference.group,
            metric=metric,
            n_boot=n_boot,
            seed=seed,
        )
        rows.append(
            {
                "reference": reference_name,
                "model": name,
                "metric": metric,
                "reference_value": res["a"],
                "model_value": res["b"],
                "difference": res["difference"],
                "low": res["low"],
                "high": res["high"],
                "p_bootstrap": res["p_bootstrap"],
                "p_mcnemar_images": res["p_mcnemar"],
            }
        )
    table = pd.DataFrame(rows)
    if len(table):
        table.insert(table.columns.get_loc("p_bootstrap") + 1, "p_holm", holm(table["p_bootstrap"]))
    return table


def best_on_validation(val_predictions: dict, metric: str = "balanced_accuracy") -> str:
    """The model with the best validation score: the reference of the paired tests, chosen
    without looking at test."""
    scores = {
        name: score(p.labels, p.probabilities(), metric) for name, p in val_predictions.items()
    }
    return max(scores, key=scores.get)
