"""Calibration: temperature scaling (fitted on validation) and the errors that measure it.

A probability of 0.8 should be right 80% of the time. Networks trained with cross-entropy are
usually over-confident; one temperature T, fitted on validation logits by minimising the negative
log-likelihood, divides the logits and leaves the ranking (accuracy, AUC) unchanged (Guo et al.
2017). The binned errors follow netcal's conventions, so the numbers can be checked against it:
equal-width bins closed on the left, ``[k/B, (k+1)/B)`` with the last bin closed, top-label
confidence for a multi-class model, the positive-class probability for a binary one.

On test every error comes with a percentile interval from the bootstrap that resamples lesions
(:func:`skinlib.evaluation.bootstrap.grouped_intervals`): the errors are written as sums over images with
weights, so a resample is a row of weights and a batch of resamples a few matrix products.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.optimize import minimize_scalar
from scipy.special import log_expit, log_softmax, softmax
from sklearn.base import BaseEstimator
from sklearn.metrics import brier_score_loss, log_loss
from sklearn.utils.validation import check_is_fitted

from skinlib.evaluation.bootstrap import grouped_intervals

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


# --- weighted errors: one row of image weights per bootstrap resample -------------------------


def _weighted_gaps(conf: np.ndarray, hit: np.ndarray, weights: np.ndarray, n_bins: int):
    """Per weight row and bin: the weight in the bin and |sum of hits - sum of confidences|,
    (B, K) each; divided by the bin's weight, the gap is |accuracy - confidence|."""
    cells = np.eye(n_bins)[bin_index(conf, n_bins)]  # (N, K): each image's bin
    count = weights @ cells
    gap = np.abs(weights @ (cells * hit[:, None]) - weights @ (cells * conf[:, None]))
    return count, gap


def _weighted_ece(conf, hit, weights, n_bins) -> np.ndarray:
    count, gap = _weighted_gaps(conf, np.asarray(hit, float), weights, n_bins)
    return gap.sum(1) / count.sum(1)


def weighted_calibration_errors(
    y: np.ndarray, proba: np.ndarray, weights: np.ndarray, n_bins: int = N_BINS
) -> dict[str, np.ndarray]:
    """:func:`calibration_errors` for every row of image weights: ``{name: (B,)}``.

    A row of integer weights is a bootstrap resample (weight = times drawn) and gives the errors
    of the resample written out image by image; a row of ones gives the set's own errors.

    Args:
        y: (N,) class indices.
        proba: (N, C) probabilities (binary: (N, 2)).
        weights: (B, N) image weights.
    """
    y, p, w = np.asarray(y, int), np.asarray(proba, float), np.atleast_2d(weights)
    conf, hit = confidence_and_hit(y, p)
    count, gap = _weighted_gaps(conf, hit.astype(float), w, n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mce = np.where(count > 0, gap / count, -np.inf).max(1)
    onehot = np.eye(p.shape[1])[y]
    eps = np.finfo(float).eps  # scikit-learn's log loss clips to [eps, 1 - eps] the same way
    per_image_nll = -np.log(np.clip(p[np.arange(len(y)), y], eps, 1 - eps))
    per_image_brier = ((onehot - p) ** 2).sum(1) * (0.5 if p.shape[1] == 2 else 1.0)
    total = w.sum(1)
    classwise = [_weighted_ece(p[:, c], y == c, w, n_bins) for c in range(p.shape[1])]
    return {
        "ece": gap.sum(1) / total,
        "mce": mce,
        "classwise_ece": np.mean(classwise, axis=0),
        "nll": w @ per_image_nll / total,
        "brier": w @ per_image_brier / total,
    }


def calibration_errors_ci(
    y: np.ndarray,
    proba: np.ndarray,
    groups: Sequence | None,
    n_boot: int = 1000,
    n_bins: int = N_BINS,
    alpha: float = 0.05,
    seed: int = 0,
) -> dict[str, float]:
    """:func:`calibration_errors` with percentile intervals from resampled lesions.

    The binned errors (ECE, MCE, classwise ECE) are biased upwards in small samples and every
    resample inherits the bias, so for a well-calibrated model their interval can lie above the
    value itself; NLL and Brier score are plain means and have no such bias.

    Args:
        y: (N,) class indices.
        proba: (N, C) probabilities (binary: (N, 2)).
        groups: (N,) lesion (or patient) id per image; None treats images as independent.
        n_boot: number of resamples.

    Returns:
        ``ece, ece_low, ece_high, mce, ...`` for each error of :func:`calibration_errors`.
    """
    errors = calibration_errors(y, proba, n_bins)
    ci = grouped_intervals(
        lambda w: weighted_calibration_errors(y, proba, w, n_bins),
        groups,
        len(y),
        n_boot,
        alpha,
        seed,
    )
    return _with_intervals(errors, ci)


def _with_intervals(errors: dict[str, float], ci: dict | None = None) -> dict[str, float]:
    """``name, name_low, name_high`` per error; NaN bounds where no interval was computed."""
    out = {}
    for name, value in errors.items():
        low, high = ci[name] if ci else (np.nan, np.nan)
        out |= {name: value, f"{name}_low": low, f"{name}_high": high}
    return out


def calibration_report(
    val_logits: np.ndarray,
    val_y: np.ndarray,
    test_logits: np.ndarray,
    test_y: np.ndarray,
    fit_split: str = "val",
    n_bins: int = N_BINS,
    test_groups: Sequence | None = None,
    n_boot: int = 1000,
    seed: int = 0,
) -> tuple[pd.DataFrame, float]:
    """Errors before and after temperature scaling, fitted on the first set (validation, or a
    calibration split), on that set and on test.

    The test errors carry 95% intervals from ``n_boot`` resamples of ``test_groups`` (lesions);
    the rows of the fitting split have none (NaN): it fitted the temperature, so its errors
    after scaling describe the fit, not new lesions.

    Args:
        val_logits, val_y: the logits (N, C) and labels the temperature is fitted on.
        fit_split: their split's name, in the ``split`` column (``val`` or ``calibration``).
        test_groups: (N_test,) lesion id per test image; None treats images as independent.

    Returns:
        (table with one row per split x stage (``before``/``after``) and the columns
        ``split, stage, temperature`` and ``ece, mce, classwise_ece, nll, brier``, each with
        ``_low``/``_high``; fitted temperature).
    """
    scaler = TemperatureScaler().fit(val_logits, val_y)
    rows = []
    for split, z, y in ((fit_split, val_logits, val_y), ("test", test_logits, test_y)):
        for stage, t in (("before", 1.0), ("after", scaler.temperature_)):
            proba = logits_to_proba(z, t)
            if split == "test":
                errors = calibration_errors_ci(y, proba, test_groups, n_boot, n_bins, seed=seed)
            else:
                errors = _with_intervals(calibration_errors(y, proba, n_bins))
            rows.append({"split": split, "stage": stage, "temperature": t, **errors})
    return pd.DataFrame(rows), scaler.temperature_


ERROR_NAMES = {  # calibration_errors key -> the name a reader sees
    "ece": "ECE",
    "mce": "MCE",
    "classwise_ece": "classwise ECE",
    "nll": "NLL",
    "brier": "Brier score",
}


def calibration_table(report: pd.DataFrame) -> pd.DataFrame:
    """:func:`calibration_report` rows (with a ``model`` column) as the thesis shows them: one
    row per model and error, its values on the fitting split (``val_`` or ``calibration_``)
    and on test before and after scaling side by side, the test ones with their intervals
    (``test_before``/``test_after`` with ``_low`` and ``_high``). Five errors with intervals in
    one row each would not fit a page.
    """
    rows = []
    for model, part in report.groupby("model", sort=False):
        at = part.set_index(["split", "stage"])
        fit = next(s for s in part["split"] if s != "test")
        for key, name in ERROR_NAMES.items():
            row = {
                "model": model,
                "error": name,
                "temperature": at.loc[(fit, "after"), "temperature"],
            }
            row |= {f"{fit}_{s}": at.loc[(fit, s), key] for s in ("before", "after")}
            for s in ("before", "after"):
                test = at.loc[("test", s)]
                row |= {f"test_{s}": test[key]}
                row |= {f"test_{s}_{b}": test[f"{key}_{b}"] for b in ("low", "high")}
            rows.append(row)
    return pd.DataFrame(rows)
