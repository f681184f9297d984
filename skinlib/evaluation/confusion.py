"""The errors a model makes: its most confused class pairs with lesion-bootstrap intervals, and
its top losses (the images it is surest and wrong about; fastai's ``plot_top_losses``).

A pair is (true class, predicted class). Its share is the part of the true class's images
predicted as the other (a row of the row-normalised confusion matrix), so a rare class's
errors are not hidden behind a common class's counts; the interval resamples lesions, since
images of one lesion tend to be misread together.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from skinlib.evaluation.bootstrap import grouped_intervals


def confused_pairs(
    labels: np.ndarray,
    pred: np.ndarray,
    classes: Sequence[str],
    groups: Sequence | None = None,
    top: int | None = 5,
    n_boot: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """The most frequent (true, predicted) pairs among the errors, with 95% intervals.

    Args:
        labels, pred: (N,) true and predicted class indices.
        classes: class names in index order.
        groups: (N,) lesion ids, resampled whole for the intervals; None: images are independent.
        top: pairs kept, most images first (None: every pair with an error).
        n_boot: bootstrap resamples (0: no intervals).

    Returns:
        One row per pair, most images first (ties: higher share first): ``true, predicted,
        images, lesions, share`` (of the true class's images) with ``share_low``/``share_high``
        and ``error_share`` (of all errors).
    """
    y, yhat = np.asarray(labels, int), np.asarray(pred, int)
    g = np.arange(len(y)).astype(str) if groups is None else np.asarray(groups).astype(str)
    wrong = y != yhat
    pairs = pd.DataFrame({"t": y[wrong], "p": yhat[wrong], "g": g[wrong]})
    counted = pairs.groupby(["t", "p"]).agg(images=("g", "size"), lesions=("g", "nunique"))
    counted = counted.reset_index()
    per_class = np.bincount(y, minlength=len(classes))
    counted["share"] = counted["images"] / per_class[counted["t"]]
    counted = counted.sort_values(["images", "share"], ascending=False, kind="stable")
    if top is not None:
        counted = counted.head(top)
    rows = counted.reset_index(drop=True)
    if n_boot and len(rows):
        intervals = _share_intervals(y, yhat, g, rows[["t", "p"]].to_numpy(), n_boot, seed)
        rows["share_low"] = [intervals[i][0] for i in range(len(rows))]
        rows["share_high"] = [intervals[i][1] for i in range(len(rows))]
    names = np.asarray(classes, dtype=object)
    out = pd.DataFrame({"true": names[rows["t"]], "predicted": names[rows["p"]]})
    columns = ["images", "lesions", "share", "share_low", "share_high"]
    out = out.join(rows[[c for c in columns if c in rows]])
    out["error_share"] = out["images"] / max(int(wrong.sum()), 1)
    return out


def _share_intervals(y, yhat, g, pairs: np.ndarray, n_boot: int, seed: int) -> dict:
    """Percentile intervals of each pair's share over lesion resamples (one draw for all)."""

    def shares(w: np.ndarray) -> dict[str, np.ndarray]:
        out = {}
        for i, (t, p) in enumerate(pairs):
            with np.errstate(invalid="ignore", divide="ignore"):
                out[str(i)] = (w @ ((y == t) & (yhat == p))) / (w @ (y == t))
        return out

    found = grouped_intervals(shares, g, len(y), n_boot, seed=seed)
    return {int(k): v for k, v in found.items()}


def top_losses(
    labels: np.ndarray,
    proba: np.ndarray,
    classes: Sequence[str],
    image_id: Sequence[str] | None = None,
    k: int = 8,
) -> pd.DataFrame:
    """The ``k`` misclassified images with the largest loss (cross-entropy of the true class):
    the images the model is surest and wrong about.

    Args:
        labels: (N,) true class indices; proba: (N, C) (calibrated) probabilities.

    Returns:
        ``row`` (index into the inputs), ``image_id``, ``true, predicted``,
        ``predicted_probability, true_probability, loss``, largest loss first.
    """
    y, p = np.asarray(labels, int), np.asarray(proba, float)
    pred = p.argmax(1)
    true_p = p[np.arange(len(y)), y]
    loss = -np.log(np.clip(true_p, 1e-12, 1.0))
    wrong = np.flatnonzero(pred != y)
    chosen = wrong[np.argsort(-loss[wrong], kind="stable")][:k]
    names = np.asarray(classes, dtype=object)
    ids = np.arange(len(y)).astype(str) if image_id is None else np.asarray(image_id)
    return pd.DataFrame(
        {
            "row": chosen,
            "image_id": ids[chosen],
            "true": names[y[chosen]],
            "predicted": names[pred[chosen]],
            "predicted_probability": p[chosen, pred[chosen]],
            "true_probability": true_p[chosen],
            "loss": loss[chosen],
        }
    )
