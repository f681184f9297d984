"""Two models on the same images: the paired grouped bootstrap, McNemar's test, Holm's adjustment,
and the reference model chosen on validation."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from skinlib.evaluation.bootstrap import bootstrap_weights, percentile_interval
from skinlib.evaluation.metrics import as_proba, score, weighted_metrics

EXACT_MCNEMAR_BELOW = 25  # discordant pairs; below this the chi-square approximation is poor


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
    low, high = percentile_interval(diffs, alpha)
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
