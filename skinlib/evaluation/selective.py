"""Selective prediction: the model answers where it is confident and defers the rest to a doctor.

A confidence score ranks the images; keeping the most confident share (the *coverage*) and
measuring the error of the kept ones gives the risk-coverage curve (Geifman and El-Yaniv 2017).
Its area (AURC) summarises a score: lower is better; a perfect ranking (every error after every
correct answer) gives the smallest area that the model's error rate allows; on test it comes with
a lesion-bootstrap interval. The deferral policy
is a confidence threshold chosen on validation and reported on test; its balanced accuracy
averages the answered images' accuracy over every class of the full set (a class the policy
never answers counts 0), and the answered share of each class is reported, so a policy cannot
reach its target by silencing a class.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from skinlib.evaluation.bootstrap import bootstrap_weights, grouped_intervals

CONFIDENCES = ("max_probability", "margin", "entropy")


def confidence(proba: np.ndarray, kind: str = "max_probability") -> np.ndarray:
    """(N,) confidence, higher = surer: the top probability, the gap between the top two, or
    minus the entropy (nats)."""
    p = np.asarray(proba, dtype=float)
    if kind == "max_probability":
        return p.max(1)
    if kind == "margin":
        top2 = np.sort(p, axis=1)[:, -2:]
        return top2[:, 1] - top2[:, 0]
    if kind == "entropy":
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(p > 0, p * np.log(p), 0.0).sum(1)
    raise ValueError(f"unknown confidence {kind!r}; choose from {list(CONFIDENCES)}")


def risk_coverage(labels: np.ndarray, proba: np.ndarray, conf: np.ndarray) -> pd.DataFrame:
    """Risk (error rate of the kept images) at each coverage, keeping the most confident first.

    Ties in confidence are kept or deferred together (one point per distinct confidence), so the
    curve does not depend on the order of tied images.

    Returns:
        ``coverage, risk, threshold`` from the most confident point to coverage 1.
    """
    y, p, c = np.asarray(labels, int), np.asarray(proba, float), np.asarray(conf, float)
    order = np.argsort(-c, kind="stable")
    errors = np.cumsum(p.argmax(1)[order] != y[order])
    kept = np.arange(1, len(y) + 1)
    last = np.r_[c[order][1:] != c[order][:-1], True]  # the last image of each tie block
    return pd.DataFrame(
        {
            "coverage": kept[last] / len(y),
            "risk": errors[last] / kept[last],
            "threshold": c[order][last],
        }
    )


def aurc(labels: np.ndarray, proba: np.ndarray, conf: np.ndarray) -> float:
    """Area under the risk-coverage curve: mean risk over the coverages k/N (ties share a risk).

    >>> y = np.array([0, 0, 1, 1]); p = np.array([[.9, .1], [.8, .2], [.3, .7], [.6, .4]])
    >>> round(aurc(y, p, p.max(1)), 4)  # the error (last image) is ranked last: (0+0+0+1/4)/4
    0.0625
    """
    curve = risk_coverage(labels, proba, conf)
    counts = np.diff(np.r_[0, np.round(curve["coverage"] * len(labels))])
    return float((curve["risk"] * counts).sum() / len(labels))


def weighted_aurc(
    labels: np.ndarray, proba: np.ndarray, conf: np.ndarray, weights: np.ndarray
) -> np.ndarray:
    """:func:`aurc` for every row of image weights (B, N): ``(B,)``.

    A row of integer weights is a bootstrap resample (weight = times drawn): its AURC is that of
    the resample written out image by image, where an image's copies tie in confidence and so
    share a risk; a row of ones gives :func:`aurc`.
    """
    y, p, c = np.asarray(labels, int), np.asarray(proba, float), np.asarray(conf, float)
    w = np.atleast_2d(weights)
    order = np.argsort(-c, kind="stable")
    starts = np.flatnonzero(np.r_[True, c[order][1:] != c[order][:-1]])  # tie blocks
    kept = np.add.reduceat(w[:, order], starts, axis=1)  # (B, blocks): weight of each block
    wrong = (p.argmax(1) != y)[order]
    errors = np.add.reduceat(w[:, order] * wrong, starts, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):  # a block drawn 0 times adds nothing
        risk = np.where(kept > 0, np.cumsum(errors, 1) / np.cumsum(kept, 1), 0.0)
    return (risk * kept).sum(1) / w.sum(1)


def _answered_balanced_accuracy(y, p, keep, weights) -> np.ndarray:
    """Accuracy of the answered images of each class, averaged over every class of the full set
    (a class with no answered image counts 0), for each weight row (B,).

    Averaging over the classes still answered would let a policy defer a whole class and still
    meet its target. (Counting every deferred image as not correct instead would make the score
    fall with every deferral, so no threshold could ever help.)
    """
    onehot = np.eye(p.shape[1])[y]
    right = (p.argmax(1) == y) & keep
    support, answered = weights @ onehot, (weights * keep) @ onehot
    correct = (weights * right) @ onehot
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.where(answered > 0, correct / answered, 0.0)
        return np.where(support > 0, recall, 0).sum(1) / (support > 0).sum(1)


def answered_by_class(labels: np.ndarray, keep: np.ndarray, n_classes: int) -> np.ndarray:
    """(C,) share of each class's images the model answers (NaN for a class absent), so a
    policy that silences a class shows it."""
    y, k = np.asarray(labels, int), np.asarray(keep, bool)
    total = np.bincount(y, minlength=n_classes).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.bincount(y[k], minlength=n_classes) / np.where(total > 0, total, np.nan)


def coverage_for_target(
    labels: np.ndarray, proba: np.ndarray, conf: np.ndarray, target: float
) -> tuple[float, float]:
    """The largest coverage whose answers reach ``target`` balanced accuracy (over every class
    of the full set, a class with no answer counting 0), and the confidence threshold that keeps them
    (``(0, inf)`` where no coverage does)."""
    y, p, c = np.asarray(labels, int), np.asarray(proba, float), np.asarray(conf, float)
    for t in np.unique(c):  # ascending: the first that works keeps the most images
        keep = c >= t
        if _answered_balanced_accuracy(y, p, keep, np.ones((1, len(y))))[0] >= target:
            return float(keep.mean()), float(t)
    return 0.0, float("inf")


def threshold_for_coverage(conf: np.ndarray, coverage: float) -> float:
    """The confidence threshold that answers the most confident ``coverage`` share of these
    images (at least one): a policy fixed by how much it answers, which a model too weak for
    an accuracy target still has."""
    c = np.sort(np.asarray(conf, float))[::-1]
    return float(c[max(1, round(coverage * len(c))) - 1])


@dataclass
class DeferralResult:
    """A deferral policy (threshold chosen on validation) as it does on test."""

    confidence: str
    target: float  # balanced accuracy (every class; unanswered class = 0) asked on validation
    threshold: float
    val_coverage: float
    coverage: float  # test share answered by the model
    coverage_low: float
    coverage_high: float
    balanced_accuracy: float  # test answers, every class (a class never answered counts 0)
    balanced_accuracy_low: float
    balanced_accuracy_high: float
    balanced_accuracy_all: float  # on every test image (no deferral)
    least_answered: str  # the test class with the smallest answered share
    least_answered_coverage: float
    unanswered: str  # test classes of which no image is answered, comma-separated ("" if none)
    # what fixed the threshold: "balanced accuracy 0.90" (the target) or "answers 70%" (the
    # share of validation images answered; ``target`` is then NaN)
    policy: str = ""


def _class_summary(y, keep, classes: Sequence[str]) -> tuple[str, float, str]:
    """The least answered class, its answered share, and the classes never answered."""
    share = answered_by_class(y, keep, len(classes))
    present = np.isfinite(share)
    least = int(np.nanargmin(np.where(present, share, np.inf)))
    silenced = [str(classes[c]) for c in np.flatnonzero(present & (share == 0))]
    return str(classes[least]), float(share[least]), ", ".join(silenced)


def deferral_policy(
    val_labels: np.ndarray,
    val_proba: np.ndarray,
    test_labels: np.ndarray,
    test_proba: np.ndarray,
    test_groups: Sequence | None,
    target: float,
    kind: str = "max_probability",
    n_boot: int = 1000,
    seed: int = 0,
    classes: Sequence[str] | None = None,
    coverage: float | None = None,
) -> DeferralResult:
    """Choose the confidence threshold on validation for ``target`` balanced accuracy of the
    answers (every class; one never answered counts 0), or, with ``coverage``, for answering
    that share of validation images; report test coverage, balanced accuracy with
    lesion-bootstrap intervals, and the answered share of the least answered class."""
    val_conf = confidence(val_proba, kind)
    if coverage is None:
        val_cov, t = coverage_for_target(val_labels, val_proba, val_conf, target)
        policy = f"balanced accuracy {target:.2f}"
    else:
        t = threshold_for_coverage(val_conf, coverage)
        val_cov, target, policy = (
            float((val_conf >= t).mean()),
            float("nan"),
            f"answers {coverage:.0%}",
        )
    y, p = np.asarray(test_labels, int), np.asarray(test_proba, float)
    keep = confidence(p, kind) >= t
    ones = np.ones((1, len(y)))
    cov, bal = [], []
    for w in bootstrap_weights(test_groups, len(y), n_boot, seed):
        cov.append((w @ keep) / w.sum(1))
        bal.append(_answered_balanced_accuracy(y, p, keep, w))
    cov, bal = np.concatenate(cov), np.concatenate(bal)
    bal = bal[np.isfinite(bal)]
    cov_lo, cov_hi = np.quantile(cov, [0.025, 0.975])
    bal_lo, bal_hi = np.quantile(bal, [0.025, 0.975]) if len(bal) else (np.nan, np.nan)
    names = classes if classes is not None else [str(c) for c in range(p.shape[1])]
    return DeferralResult(
        kind,
        target,
        t,
        val_cov,
        float(keep.mean()),
        float(cov_lo),
        float(cov_hi),
        float(_answered_balanced_accuracy(y, p, keep, ones)[0]),
        float(bal_lo),
        float(bal_hi),
        float(_answered_balanced_accuracy(y, p, np.ones(len(y), bool), ones)[0]),
        *_class_summary(y, keep, names),
        policy,
    )


def risk_coverage_by_confidence(
    labels: np.ndarray,
    proba: np.ndarray,
    groups: Sequence | None = None,
    n_boot: int = 1000,
    seed: int = 0,
) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    """The risk-coverage curve and its area (AURC) for every confidence score of
    :data:`CONFIDENCES`, so the scores can be compared on the same images.

    Every score's AURC gets a 95% percentile interval from the same ``n_boot`` resamples of
    ``groups`` (lesions), so the scores are compared on the same resampled lesions.

    Args:
        groups: (N,) lesion id per image; None treats images as independent.

    Returns:
        Curves by confidence name (:func:`risk_coverage`) and a table
        ``confidence, aurc, aurc_low, aurc_high``.
    """
    curves, rows = {}, []
    for kind in CONFIDENCES:
        conf = confidence(proba, kind)
        curves[kind] = risk_coverage(labels, proba, conf)
        ci = grouped_intervals(
            lambda w, conf=conf: {"aurc": weighted_aurc(labels, proba, conf, w)},
            groups,
            len(conf),
            n_boot,
            seed=seed,
        )["aurc"]
        rows.append(
            {"confidence": kind, "aurc": aurc(labels, proba, conf)}
            | {"aurc_low": ci[0], "aurc_high": ci[1]}
        )
    return curves, pd.DataFrame(rows)


def _answered_shares(labels, proba, result: DeferralResult, classes) -> dict[str, float]:
    """``{"answered <class>": share}`` of the test images the policy answers, per class."""
    p = np.asarray(proba, float)
    names = classes if classes is not None else [str(c) for c in range(p.shape[1])]
    keep = confidence(p, result.confidence) >= result.threshold
    share = answered_by_class(labels, keep, p.shape[1])
    return {f"answered {name}": float(v) for name, v in zip(names, share, strict=True)}


def deferral_table(
    val_labels: np.ndarray,
    val_proba: np.ndarray,
    test_labels: np.ndarray,
    test_proba: np.ndarray,
    test_groups: Sequence | None,
    target: float,
    n_boot: int = 1000,
    classes: Sequence[str] | None = None,
    coverages: Sequence[float] = (),
) -> pd.DataFrame:
    """:func:`deferral_policy` for every confidence score, for the accuracy ``target`` and for
    each fixed share of validation answered (``coverages``, so the trade-off shows where the
    target is out of reach): one row each (``policy`` first), with the fields of
    :class:`DeferralResult` (threshold chosen on validation, results on test) and the test
    share answered of every class (``answered <class>``, NaN for a class absent)."""
    results = [
        deferral_policy(
            val_labels,
            val_proba,
            test_labels,
            test_proba,
            test_groups,
            target,
            kind,
            n_boot,
            classes=classes,
            coverage=coverage,
        )
        for coverage in (None, *coverages)
        for kind in CONFIDENCES
    ]
    shares = pd.DataFrame([_answered_shares(test_labels, test_proba, r, classes) for r in results])
    table = pd.concat([pd.DataFrame([asdict(r) for r in results]), shares], axis=1)
    return table[["policy", *(c for c in table.columns if c != "policy")]]
