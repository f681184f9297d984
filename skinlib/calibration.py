"""Calibration: temperature scaling (fitted on validation) and the errors that measure it.

A probability of 0.8 should be right 80% of the time. Networks trained with cross-entropy are
usually over-confident; one temperature T, fitted on validation logits by minimising the negative
log-likelihood, divides the logits and leaves the ranking (accuracy, AUC) unchanged (Guo et al.
2017). The binned errors follow netcal's conventions, so the numbers can be checked against it:
equal-width bins closed on the left, ``[k/B, (k+1)/B)`` with the last bin closed, top-label
confidence for a multi-class model, the positive-class probability for a binary one.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from scipy.optimize import minimize_scalar
from scipy.special import log_expit, log_softmax, softmax
from sklearn.base import BaseEstimator
from sklearn.metrics import brier_score_loss, log_loss
from sklearn.utils.validation import check_is_fitted

log = logging.getLogger(__name__)

N_BINS = 15  # equal-width bins for ECE/MCE (Guo et al. 2017 and netcal use 10-15)


def logits_to_proba(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """``softmax(logits / temperature)``: the one place logits become probabilities (predictions
    files, calibration, unknown-input scores), so every step reads the same numbers.

    Args:
        logits: (N, C); a binary run's (N, 1) or (N,) single logit gives the sigmoid as (N, 2)
            ``[1 - p, p]``.

    >>> logits_to_proba(np.array([[0.0, 0.0], [np.log(3), 0.0]])).tolist()
    [[0.5, 0.5], [0.75, 0.25]]
    """
    z = np.asarray(logits, dtype=float) / temperature
    if z.ndim == 1 or z.shape[1] == 1:
        with np.errstate(over="ignore"):  # exp(-z) = inf for z < -709 gives p = 0, as it should
            p = 1.0 / (1.0 + np.exp(-z.reshape(-1)))
        return np.stack([1 - p, p], axis=1)
    return softmax(z, axis=1)


def nll(y: np.ndarray, proba: np.ndarray) -> float:
    """Mean negative log-likelihood of the true class (scikit-learn's log loss)."""
    return float(log_loss(np.asarray(y, int), proba, labels=np.arange(proba.shape[1])))


def brier(y: np.ndarray, proba: np.ndarray) -> float:
    """Brier score: multi-class, the mean over images of the summed squared difference to the
    one-hot truth (range [0, 2]); binary (two columns), the usual mean of (p - y)^2 (range [0, 1])."""
    return float(brier_score_loss(np.asarray(y, int), proba, labels=np.arange(proba.shape[1])))


def confidence_and_hit(y: np.ndarray, proba: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """What the reliability diagram bins: multi-class, the top-label confidence and whether the
    top label is right; binary (two columns), the positive probability and whether it is positive."""
    y, proba = np.asarray(y, int), np.asarray(proba, float)
    if proba.shape[1] == 2:
        return proba[:, 1], y == 1
    return proba.max(1), proba.argmax(1) == y


def bin_index(confidence: np.ndarray, n_bins: int = N_BINS) -> np.ndarray:
    """Equal-width bin of each confidence: ``[k/B, (k+1)/B)``, the last bin closed (as netcal)."""
    eps = np.finfo(float).eps  # netcal clips into (0, 1) the same way
    edges = np.linspace(0, 1, n_bins + 1)  # the same float edges as netcal, so ties agree
    return np.digitize(np.clip(confidence, eps, 1 - eps), edges[1:-1])


def _binned(conf: np.ndarray, hit: np.ndarray, n_bins: int):
    """Per bin: count, mean confidence and mean hit (NaN where empty)."""
    b = bin_index(conf, n_bins)
    count = np.bincount(b, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(b, weights=conf, minlength=n_bins) / count
        mean_hit = np.bincount(b, weights=hit.astype(float), minlength=n_bins) / count
    return count, mean_conf, mean_hit


def reliability(y: np.ndarray, proba: np.ndarray, n_bins: int = N_BINS) -> pd.DataFrame:
    """The reliability diagram's data: per bin, its edges, count, mean confidence and accuracy.

    Args:
        y: (N,) class indices.
        proba: (N, C) probabilities (binary: (N, 2)).
    """
    count, conf, acc = _binned(*confidence_and_hit(y, proba), n_bins)
    edges = np.linspace(0, 1, n_bins + 1)
    return pd.DataFrame(
        {
            "bin": np.arange(n_bins),
            "lower": edges[:-1],
            "upper": edges[1:],
            "count": count,
            "confidence": conf,
            "accuracy": acc,
        }
    )


def reliability_tables(
    y: np.ndarray, logits: np.ndarray, temperature: float | None = None, n_bins: int = N_BINS
) -> dict[str, pd.DataFrame]:
    """Reliability ``before`` temperature scaling and, where a temperature was fitted, ``after``
    (no ``after`` for a run not yet calibrated, rather than a silent T = 1).

    Args:
        y: (N,) class indices.
        logits: (N, C) raw logits ((N, 1) binary).
    """
    tables = {"before": reliability(y, logits_to_proba(logits), n_bins)}
    if temperature is not None:
        tables["after"] = reliability(y, logits_to_proba(logits, temperature), n_bins)
    return tables


def _ece(conf: np.ndarray, hit: np.ndarray, n_bins: int) -> float:
    count, mean_conf, mean_hit = _binned(conf, hit, n_bins)
    used = count > 0
    return float(np.sum(count[used] / len(conf) * np.abs(mean_hit[used] - mean_conf[used])))


def ece(y: np.ndarray, proba: np.ndarray, n_bins: int = N_BINS) -> float:
    """Expected calibration error: sum over bins of (share of images) x |accuracy - confidence|."""
    return _ece(*confidence_and_hit(y, proba), n_bins)


def mce(y: np.ndarray, proba: np.ndarray, n_bins: int = N_BINS) -> float:
    """Maximum calibration error: the worst non-empty bin's |accuracy - confidence|."""
    count, conf, acc = _binned(*confidence_and_hit(y, proba), n_bins)
    return float(np.max(np.abs(acc - conf)[count > 0]))


def classwise_ece(y: np.ndarray, proba: np.ndarray, n_bins: int = N_BINS) -> float:
    """Mean over classes of the ECE of each class's own probability, one-vs-rest (Kull et al.
    2019): it also sees the calibration of the classes that are rarely the top label."""
    y, proba = np.asarray(y, int), np.asarray(proba, float)
    return float(np.mean([_ece(proba[:, c], y == c, n_bins) for c in range(proba.shape[1])]))


def calibration_errors(y: np.ndarray, proba: np.ndarray, n_bins: int = N_BINS) -> dict[str, float]:
    """ECE, MCE, classwise ECE, NLL and Brier score of one probability set."""
    return {
        "ece": ece(y, proba, n_bins),
        "mce": mce(y, proba, n_bins),
        "classwise_ece": classwise_ece(y, proba, n_bins),
        "nll": nll(y, proba),
        "brier": brier(y, proba),
    }


class TemperatureScaler(BaseEstimator):
    """Temperature scaling as a scikit-learn estimator.

    ``fit`` picks the T that minimises the validation NLL of ``softmax(logits / T)`` (binary:
    ``sigmoid(logit / T)``). The NLL is convex in 1/T, so a bounded 1-D search on log T finds the
    global minimum.

    Args:
        bounds: the search range for T.

    >>> scaler = TemperatureScaler().fit(val_logits, val_labels)   # doctest: +SKIP
    >>> scaler.temperature_, scaler.transform(test_logits)          # doctest: +SKIP
    """

    def __init__(self, bounds: tuple[float, float] = (0.05, 20.0)):
        self.bounds = bounds

    def fit(self, logits: np.ndarray, y: np.ndarray) -> TemperatureScaler:
        """Fit T on validation logits (N, C) or (N, 1) and labels (N,); returns self."""
        z, y = np.asarray(logits, dtype=float), np.asarray(y, int)
        if len(z) != len(y):
            raise ValueError(f"{len(z)} logit rows but {len(y)} labels")
        binary = z.ndim == 1 or z.shape[1] == 1

        def loss(log_t: float) -> float:
            s = z / np.exp(log_t)
            if binary:  # -log p(y): log(1 + e^-s) for positives, log(1 + e^s) for negatives
                s = s.reshape(-1)
                return float(-np.mean(np.where(y == 1, log_expit(s), log_expit(-s))))
            return float(-np.mean(log_softmax(s, axis=1)[np.arange(len(y)), y]))

        lo, hi = np.log(self.bounds[0]), np.log(self.bounds[1])
        result = minimize_scalar(loss, bounds=(lo, hi), method="bounded", options={"xatol": 1e-6})
        self.temperature_ = float(np.exp(result.x))
        if min(result.x - lo, hi - result.x) < 1e-3:
            log.warning(
                "temperature %.3g is at the edge of the search range %s: the logits carry "
                "(almost) no information about the labels, or the bounds are too tight",
                self.temperature_,
                self.bounds,
            )
        self.nll_before_, self.nll_after_ = loss(0.0), float(result.fun)
        return self

    def transform_logits(self, logits: np.ndarray) -> np.ndarray:
        """Logits divided by the fitted temperature (same shape)."""
        check_is_fitted(self, "temperature_")
        return np.asarray(logits, dtype=float) / self.temperature_

    def transform(self, logits: np.ndarray) -> np.ndarray:
        """Calibrated probabilities (N, C); (N, 2) for a single binary logit column."""
        return logits_to_proba(self.transform_logits(logits))


def calibration_report(
    val_logits: np.ndarray,
    val_y: np.ndarray,
    test_logits: np.ndarray,
    test_y: np.ndarray,
    fit_split: str = "val",
    n_bins: int = N_BINS,
) -> tuple[pd.DataFrame, float]:
    """Errors before and after temperature scaling, fitted on the first set (validation, or a
    calibration split), on that set and on test.

    Args:
        val_logits, val_y: the logits (N, C) and labels the temperature is fitted on.
        fit_split: their split's name, in the ``split`` column (``val`` or ``calibration``).

    Returns:
        (table with one row per split x stage (``before``/``after``) and the columns
        ``split, stage, temperature, ece, mce, classwise_ece, nll, brier``; fitted temperature).
    """
    scaler = TemperatureScaler().fit(val_logits, val_y)
    rows = []
    for split, z, y in ((fit_split, val_logits, val_y), ("test", test_logits, test_y)):
        for stage, t in (("before", 1.0), ("after", scaler.temperature_)):
            errors = calibration_errors(y, logits_to_proba(z, t), n_bins)
            rows.append({"split": split, "stage": stage, "temperature": t, **errors})
    return pd.DataFrame(rows), scaler.temperature_
