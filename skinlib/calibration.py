"""Calibration: temperature scaling (fit on validation) and the errors that measure it.

A probability of 0.8 should be right 80% of the time. Networks trained with cross-entropy are
usually over-confident; one temperature T, fitted on validation logits by minimising the negative
log-likelihood, divides the logits and leaves the ranking (accuracy, AUC) unchanged.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.optimize import minimize_scalar
from scipy.special import expit, log_softmax, softmax


def logits_to_proba(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """(N, C) softmax, or (N, 1) sigmoid returned as (N, 2)."""
    z = np.asarray(logits, dtype=float) / temperature
    if z.ndim == 1 or z.shape[1] == 1:
        p = expit(z.reshape(-1))
        return np.stack([1 - p, p], axis=1)
    return softmax(z, axis=1)


def nll(y: np.ndarray, proba: np.ndarray) -> float:
    """Mean negative log-likelihood of the true class."""
    p = np.clip(proba[np.arange(len(y)), np.asarray(y, int)], 1e-12, 1)
    return float(-np.mean(np.log(p)))


def brier(y: np.ndarray, proba: np.ndarray) -> float:
    """Multi-class Brier score: mean over images of the squared distance to the one-hot truth."""
    onehot = np.eye(proba.shape[1])[np.asarray(y, int)]
    return float(np.mean(np.sum((proba - onehot) ** 2, axis=1)))


def _bins(confidence: np.ndarray, n_bins: int) -> np.ndarray:
    """Equal-width bin of each confidence (right-closed, as netcal: (0, 1/B], ..., ((B-1)/B, 1])."""
    edges = np.linspace(0, 1, n_bins + 1)
    return np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, n_bins - 1)


def reliability(y: np.ndarray, proba: np.ndarray, n_bins: int = 15) -> pd.DataFrame:
    """Per bin of confidence: count, mean confidence, accuracy (the reliability diagram).

    Multi-class: top-label confidence and whether the top label is right. Binary (two columns):
    the positive-class probability and whether the image is positive (as netcal does).
    """
    y = np.asarray(y, int)
    if proba.shape[1] == 2:
        conf, correct = proba[:, 1], y == 1
    else:
        conf, correct = proba.max(1), proba.argmax(1) == y
    b = _bins(conf, n_bins)
    rows = []
    for i in range(n_bins):
        m = b == i
        rows.append(
            {
                "bin": i,
                "lower": i / n_bins,
                "upper": (i + 1) / n_bins,
                "count": int(m.sum()),
                "confidence": float(conf[m].mean()) if m.any() else np.nan,
                "accuracy": float(correct[m].mean()) if m.any() else np.nan,
            }
        )
    return pd.DataFrame(rows)


def ece(y: np.ndarray, proba: np.ndarray, n_bins: int = 15) -> float:
    """Expected calibration error: sum over bins of (share of images) * |accuracy - confidence|."""
    table = reliability(y, proba, n_bins)
    used = table[table["count"] > 0]
    gaps = (used["accuracy"] - used["confidence"]).abs()
    return float(np.sum(used["count"] / len(y) * gaps))


def mce(y: np.ndarray, proba: np.ndarray, n_bins: int = 15) -> float:
    """Maximum calibration error: the worst bin's |accuracy - confidence|."""
    table = reliability(y, proba, n_bins)
    used = table[table["count"] > 0]
    return float((used["accuracy"] - used["confidence"]).abs().max())


def classwise_ece(y: np.ndarray, proba: np.ndarray, n_bins: int = 15) -> float:
    """Mean over classes of the one-vs-rest ECE of that class's probability."""
    y = np.asarray(y, int)
    errors = []
    for c in range(proba.shape[1]):
        p = proba[:, c]
        hit = (y == c).astype(float)
        b = _bins(p, n_bins)
        err = sum(
            abs(hit[b == i].mean() - p[b == i].mean()) * np.mean(b == i)
            for i in range(n_bins)
            if np.any(b == i)
        )
        errors.append(err)
    return float(np.mean(errors))


def calibration_errors(y: np.ndarray, proba: np.ndarray, n_bins: int = 15) -> dict[str, float]:
    return {
        "ece": ece(y, proba, n_bins),
        "mce": mce(y, proba, n_bins),
        "classwise_ece": classwise_ece(y, proba, n_bins),
        "nll": nll(y, proba),
        "brier": brier(y, proba),
    }


class TemperatureScaler:
    """Temperature scaling as a scikit-learn style estimator.

    >>> scaler = TemperatureScaler().fit(val_logits, val_labels)   # doctest: +SKIP
    >>> scaler.temperature_, scaler.transform(test_logits)          # doctest: +SKIP
    """

    def __init__(self, bounds: tuple[float, float] = (0.05, 20.0)):
        self.bounds = bounds

    def fit(self, logits: np.ndarray, y: np.ndarray) -> TemperatureScaler:
        """Choose T minimising the validation NLL (1-D bounded search on log T)."""
        z = np.asarray(logits, dtype=float)
        y = np.asarray(y, int)
        binary = z.ndim == 1 or z.shape[1] == 1

        def loss(log_t: float) -> float:
            t = np.exp(log_t)
            if binary:
                s = z.reshape(-1) / t
                return float(np.mean(np.logaddexp(0, s) - y * s))
            return float(-np.mean(log_softmax(z / t, axis=1)[np.arange(len(y)), y]))

        lo, hi = np.log(self.bounds[0]), np.log(self.bounds[1])
        result = minimize_scalar(loss, bounds=(lo, hi), method="bounded", options={"xatol": 1e-6})
        self.temperature_ = float(np.exp(result.x))
        return self

    def transform_logits(self, logits: np.ndarray) -> np.ndarray:
        return np.asarray(logits, dtype=float) / self.temperature_

    def transform(self, logits: np.ndarray) -> np.ndarray:
        """Calibrated probabilities (N, C); (N, 2) for a single binary logit."""
        return logits_to_proba(logits, self.temperature_)


def calibration_report(
    val_logits, val_y, test_logits, test_y, n_bins: int = 15
) -> tuple[pd.DataFrame, float]:
    """Errors before and after temperature scaling (fitted on validation), on val and test.

    Returns:
        (table with rows split x {before, after} and the error columns, fitted temperature).
    """
    scaler = TemperatureScaler().fit(val_logits, val_y)
    rows = []
    for split, z, y in (("val", val_logits, val_y), ("test", test_logits, test_y)):
        for stage, t in (("before", 1.0), ("after", scaler.temperature_)):
            rows.append(
                {
                    "split": split,
                    "stage": stage,
                    "temperature": t,
                    **calibration_errors(y, logits_to_proba(z, t), n_bins),
                }
            )
    return pd.DataFrame(rows), scaler.temperature_
