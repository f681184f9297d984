"""The grouped bootstrap: resamples of whole lesions (or patients) as image weights, and intervals.

Intervals come from a bootstrap that resamples groups (lesions), not images, because images of one
lesion are not independent observations. A resample is a vector of integer weights over the
images (how often each was drawn), so a batch of resamples is a (B, N) matrix that the weighted
metrics of :mod:`skinlib.evaluation.metrics` (and the calibration errors, AURC, ...) consume.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np
import pandas as pd

from skinlib.evaluation.metrics import BINARY_HEADLINE, HEADLINE, as_proba, weighted_metrics

_CHUNK_CELLS = 4_000_000  # resamples x images held in memory at once


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


def percentile_interval(values: np.ndarray, alpha: float) -> tuple[float, float]:
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

    For metrics outside :data:`~skinlib.evaluation.metrics.METRICS` (calibration errors, AURC): ``statistics`` maps a (b, N)
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
    return {k: percentile_interval(np.concatenate([c[k] for c in chunks]), alpha) for k in names}


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
        metrics: names from :data:`~skinlib.evaluation.metrics.METRICS`; default :data:`HEADLINE` (binary: with sensitivity
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
        low, high = percentile_interval(np.concatenate([c[m] for c in chunks]), alpha)
        rows.append({"metric": m, "value": float(full[m][0]), "low": low, "high": high})
    return pd.DataFrame(rows)
