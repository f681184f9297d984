"""Operating points: thresholds chosen on validation (or on a calibration split of the run's
own, :meth:`skinlib.runs.folder.RunFolder.posthoc_split`), reported on test, stored with the run.

The ``val_*`` fields and arguments are the split the threshold is chosen on, whichever it is.

A clinical claim ("at 95% specificity the model finds 70% of melanomas") needs a threshold fixed
before the test set is seen. The score for a set of classes (malignant vs benign) is the sum of
their probabilities; "positive" means ``score >= threshold``.

Thresholds apply to *calibrated* probabilities: the run's temperature (``calibration.json``,
fitted on the same split) is applied first, and the temperature used is stored with every operating
point. A threshold on calibrated probabilities reads as a probability ("refer above 12% melanoma
risk"), and the app, the external evaluation and the thesis all apply it to the same numbers.
Temperature scaling keeps each image's argmax but not, in a multi-class model, the ranking of one
class's probability across images, so the chosen point (and the ROC curve) depend a little on the
temperature: the one used is stored with every point.

Intervals resample lesions (the grouped bootstrap of :mod:`skinlib.evaluation.bootstrap`): several images of
one lesion are not independent, and an image-level (Wilson) interval is too narrow.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.metrics import roc_auc_score, roc_curve

from skinlib.evaluation.bootstrap import bootstrap_weights
from skinlib.evaluation.calibration import TemperatureScaler
from skinlib.evaluation.predictions import Predictions
from skinlib.formatting import format_ci
from skinlib.io import read_json, write_json

CRITERIA = ("specificity", "sensitivity", "youden")
DEFAULT_TARGETS = (
    ("specificity", 0.95),
    ("specificity", 0.90),
    ("sensitivity", 0.95),
    ("youden", None),
)


def targets_for(specificity: float) -> tuple[tuple[str, float | None], ...]:
    """The study's targets: the profile's specificity first (the point stored with the run), then
    the standard ones, each once.

    >>> targets_for(0.9)
    (('specificity', 0.9), ('specificity', 0.95), ('sensitivity', 0.95), ('youden', None))
    """
    return tuple(dict.fromkeys([("specificity", specificity), *DEFAULT_TARGETS]))


def _binary_run(classes: Sequence[str], positive: Sequence[str]) -> bool:
    """A binary run (``["other", <positive set>]``) asked about its own positive set."""
    return len(classes) == 2 and classes[0] == "other" and not set(positive) & {"other"}


def positive_score(
    proba: np.ndarray, classes: Sequence[str], positive: Sequence[str]
) -> np.ndarray:
    """Probability of the positive set (N,): the sum over its classes.

    A binary run (classes ``["other", "mel"]`` or ``["other", "akiec+bcc+mel"]``) answers for its
    own positive set whatever names are asked for.
    """
    classes = list(classes)
    idx = [classes.index(c) for c in positive if c in classes]
    if not idx and _binary_run(classes, positive):
        idx = [1]
    if not idx:
        raise ValueError(f"positive classes {list(positive)} are not among the classes {classes}")
    return np.asarray(proba)[:, idx].sum(axis=1)


def positive_truth(
    labels: np.ndarray, classes: Sequence[str], positive: Sequence[str]
) -> np.ndarray:
    """(N,) bool: the image's true class is in the positive set."""
    classes = list(classes)
    if _binary_run(classes, positive) and not set(positive) & set(classes):
        return np.asarray(labels) == 1
    return np.isin(np.asarray(classes)[np.asarray(labels, int)], list(positive))


def sens_spec(truth: np.ndarray, score: np.ndarray, threshold: float) -> tuple[float, float]:
    """Sensitivity and specificity when ``score >= threshold`` means positive (NaN if undefined)."""
    truth, pred = np.asarray(truth, bool), np.asarray(score) >= threshold
    pos, neg = truth.sum(), (~truth).sum()
    sens = float((pred & truth).sum() / pos) if pos else np.nan
    spec = float((~pred & ~truth).sum() / neg) if neg else np.nan
    return sens, spec


def choose_threshold(
    truth: np.ndarray,
    score: np.ndarray,
    criterion: str = "specificity",
    target: float | None = 0.95,
) -> float:
    """The least strict threshold that meets the target on these (validation) images.

    Candidate thresholds are the observed scores (``score >= t`` is positive), so the returned
    value is itself a score: lowering it to the next observed score would break the target.

    Args:
        truth: (N,) bool, positive or not.
        score: (N,) positive-set probability.
        criterion: ``specificity`` (specificity >= target; the lowest such threshold, so the
            highest sensitivity), ``sensitivity`` (sensitivity >= target; the highest such
            threshold, so the highest specificity) or ``youden`` (max sensitivity + specificity
            - 1; ``target`` unused).
    """
    truth, score = np.asarray(truth, bool), np.asarray(score, float)
    if criterion not in CRITERIA:
        raise ValueError(f"criterion must be one of {CRITERIA}, got {criterion!r}")
    if truth.all() or not truth.any():
        raise ValueError("choosing a threshold needs both positive and negative images")
    fpr, tpr, thr = roc_curve(truth, score, drop_intermediate=False)
    thr[0] = np.nextafter(score.max(), np.inf)  # roc_curve's first threshold is +inf: flag none
    if criterion == "specificity":
        return float(thr[np.flatnonzero(1 - fpr >= target)[-1]])
    if criterion == "sensitivity":
        return float(thr[np.flatnonzero(tpr >= target)[0]])
    return float(thr[np.argmax(tpr - fpr)])


def wilson(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion (scipy's binomtest); NaN when ``n`` is 0."""
    if n == 0:
        return np.nan, np.nan
    ci = stats.binomtest(int(successes), int(n)).proportion_ci(confidence, method="wilson")
    return float(ci.low), float(ci.high)


def _bootstrap_sens_spec(truth, score, threshold, groups, n_boot, alpha, seed):
    """Grouped percentile intervals of sensitivity and specificity at a fixed threshold."""
    pred = score >= threshold
    sens, spec = [], []
    with np.errstate(invalid="ignore", divide="ignore"):
        for w in bootstrap_weights(groups, len(truth), n_boot, seed):
            sens.append((w @ (pred & truth)) / (w @ truth))
            spec.append((w @ (~pred & ~truth)) / (w @ ~truth))
    q = [alpha / 2, 1 - alpha / 2]
    out = []
    for values in (np.concatenate(sens), np.concatenate(spec)):
        values = values[np.isfinite(values)]
        out.append(tuple(np.quantile(values, q)) if len(values) else (np.nan, np.nan))
    return out


@dataclass
class OperatingPoint:
    """A threshold and what it gives where it was chosen (``val_*``: validation, or the
    calibration split) and on test."""

    positive: list[str]  # the classes whose summed probability is the score
    criterion: str  # specificity | sensitivity | youden
    target: float | None  # e.g. 0.95 (None for youden)
    threshold: float  # on calibrated probabilities: score >= threshold is positive
    temperature: float  # the temperature the probabilities were calibrated with
    val_sensitivity: float
    val_specificity: float
    test_sensitivity: float = np.nan
    test_sensitivity_low: float = np.nan  # 95% interval (grouped bootstrap, or Wilson)
    test_sensitivity_high: float = np.nan
    test_specificity: float = np.nan
    test_specificity_low: float = np.nan
    test_specificity_high: float = np.nan


def operating_point(
    val_truth: np.ndarray,
    val_score: np.ndarray,
    test_truth: np.ndarray | None,
    test_score: np.ndarray | None,
    positive: Sequence[str],
    criterion: str = "specificity",
    target: float | None = 0.95,
    temperature: float = 1.0,
    test_groups: Sequence | None = None,
    ci: str = "bootstrap",
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
) -> OperatingPoint:
    """Choose a threshold on validation; report it on test (when given) with 95% intervals.

    Args:
        val_truth, val_score: (N,) validation truth (bool) and positive-set score.
        test_truth, test_score: the same on test, or None to choose only.
        ci: ``bootstrap`` (resamples ``test_groups``, i.e. lesions: right when several images
            show one lesion; without groups each image is its own) or ``wilson`` (images
            independent; for comparison only).
    """
    t = choose_threshold(val_truth, val_score, criterion, target)
    vs, vp = sens_spec(val_truth, val_score, t)
    point = OperatingPoint(list(positive), criterion, target, t, float(temperature), vs, vp)
    if test_truth is None:
        return point
    truth, score = np.asarray(test_truth, bool), np.asarray(test_score, float)
    point.test_sensitivity, point.test_specificity = sens_spec(truth, score, t)
    if ci == "bootstrap":
        sens_ci, spec_ci = _bootstrap_sens_spec(truth, score, t, test_groups, n_boot, alpha, seed)
    elif ci == "wilson":
        pred = score >= t
        sens_ci = wilson(int((pred & truth).sum()), int(truth.sum()), 1 - alpha)
        spec_ci = wilson(int((~pred & ~truth).sum()), int((~truth).sum()), 1 - alpha)
    else:
        raise ValueError(f"ci must be 'wilson' or 'bootstrap', got {ci!r}")
    point.test_sensitivity_low, point.test_sensitivity_high = map(float, sens_ci)
    point.test_specificity_low, point.test_specificity_high = map(float, spec_ci)
    return point


def operating_points_table(
    val_proba: np.ndarray,
    val_labels: np.ndarray,
    test_proba: np.ndarray | None,
    test_labels: np.ndarray | None,
    classes: Sequence[str],
    positive: Sequence[str] = ("mel",),
    targets: Sequence[tuple[str, float | None]] = DEFAULT_TARGETS,
    temperature: float = 1.0,
    **ci_options,
) -> pd.DataFrame:
    """Several operating points for one positive set, chosen on validation, tested on test.

    Args:
        val_proba, test_proba: (N, C) probabilities, already calibrated at ``temperature``.
        targets: ``(criterion, target)`` pairs, e.g. ``("specificity", 0.95)``, ``("youden", None)``.
        ci_options: passed to :func:`operating_point` (``ci="bootstrap", test_groups=...``).

    Returns:
        One row per target with the :class:`OperatingPoint` fields; ``positive`` joined by "+".
    """
    vt, vs = (
        positive_truth(val_labels, classes, positive),
        positive_score(val_proba, classes, positive),
    )
    tt = ts = None
    if test_proba is not None:
        tt = positive_truth(test_labels, classes, positive)
        ts = positive_score(test_proba, classes, positive)
    rows = [
        asdict(operating_point(vt, vs, tt, ts, positive, c, t, temperature, **ci_options))
        for c, t in targets
    ]
    table = pd.DataFrame(rows)
    table["positive"] = ["+".join(p) for p in table["positive"]]
    return table


def operating_points_from_predictions(
    val: Predictions,
    test: Predictions | None = None,
    positive: Sequence[str] = ("mel",),
    targets: Sequence[tuple[str, float | None]] = DEFAULT_TARGETS,
    temperature: float | None = None,
    ci: str = "bootstrap",
    n_boot: int = 1000,
) -> pd.DataFrame:
    """:func:`operating_points_table` for a run's predictions files.

    Args:
        temperature: the run's stored temperature; None fits one on ``val`` (as the calibration
            step does), so thresholds always apply to calibrated probabilities.
        ci: ``bootstrap`` resamples the test lesions (``test.group``); ``wilson`` treats images
            as independent.
    """
    if temperature is None:
        temperature = TemperatureScaler().fit(val.logits, val.labels).temperature_
    options = {"ci": ci, "n_boot": n_boot, "test_groups": None if test is None else test.group}
    return operating_points_table(
        val.probabilities(temperature),
        val.labels,
        None if test is None else test.probabilities(temperature),
        None if test is None else test.labels,
        val.classes,
        positive,
        targets,
        temperature,
        **options,
    )


def roc(truth: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """ROC curve and area of a score against bool truth: ``(fpr, tpr, auc)``, the input of
    :func:`skinlib.thesis.plots.roc_curves`.

    >>> fpr, tpr, auc = roc(np.array([False, False, True, True]), np.array([0.1, 0.6, 0.4, 0.9]))
    >>> auc
    0.75
    """
    fpr, tpr, _ = roc_curve(truth, score)
    return fpr, tpr, float(roc_auc_score(truth, score))


def positive_roc(
    labels: np.ndarray, proba: np.ndarray, classes: Sequence[str], positive: Sequence[str]
) -> tuple[np.ndarray, np.ndarray, float]:
    """ROC of the positive set against the rest, on the score the operating points threshold
    (:func:`positive_score`), so the stored point lies on this curve."""
    return roc(positive_truth(labels, classes, positive), positive_score(proba, classes, positive))


def roc_curves(
    labels: np.ndarray, proba: np.ndarray, classes: Sequence[str]
) -> dict[str, tuple[np.ndarray, np.ndarray, float]]:
    """One-vs-rest ROC curve per class ``{class: (fpr, tpr, auc)}`` (classes absent from
    ``labels`` are left out)."""
    labels, proba = np.asarray(labels, int), np.asarray(proba, float)
    out = {}
    for c, name in enumerate(classes):
        hit = labels == c
        if 0 < hit.sum() < len(hit):
            out[name] = roc(hit, proba[:, c])
    return out


def _finite_or_none(value):
    return None if isinstance(value, float) and not math.isfinite(value) else value


def save_thresholds(
    path: str | Path, points: Sequence[OperatingPoint], chosen_on: str = "val"
) -> Path:
    """Store operating points with a run (``thresholds.json``); the app uses the first.

    Missing test values are written as ``null`` (strict JSON). ``chosen_on`` (the split the
    thresholds were chosen on; their ``val_*`` fields are measured there) is written when it is
    not validation, so that files chosen on validation keep their bytes: a file without it was
    chosen on validation (:func:`thresholds_chosen_on`).
    """
    record = {
        "operating_points": [{k: _finite_or_none(v) for k, v in asdict(p).items()} for p in points],
        "applies_to": "calibrated probabilities: softmax(logits / temperature), "
        "score = sum over the positive classes, positive if score >= threshold",
    }
    if chosen_on != "val":
        record["chosen_on"] = chosen_on
    return write_json(path, record)


def thresholds_chosen_on(path: str | Path) -> str:
    """The split a ``thresholds.json``'s points were chosen on (``val`` where it names none:
    every file from before the calibration split existed, and every one chosen on validation)."""
    return str(read_json(path).get("chosen_on", "val"))


def load_thresholds(path: str | Path) -> list[OperatingPoint]:
    """The operating points of a ``thresholds.json`` (unknown keys are ignored)."""
    fields = {f.name for f in dataclasses.fields(OperatingPoint)}
    points = []
    for raw in read_json(path)["operating_points"]:
        values = {k: (np.nan if v is None and k != "target" else v) for k, v in raw.items()}
        points.append(OperatingPoint(**{k: v for k, v in values.items() if k in fields}))
    return points


def _criterion_label(criterion: str, target) -> str:
    short = (
        {"specificity": "spec.", "sensitivity": "sens."}[criterion] if criterion != "youden" else ""
    )
    return "Youden" if criterion == "youden" else f"{short} >= {float(target):.2f}"


def points_for_reading(points: pd.DataFrame, chosen_on: str = "val") -> pd.DataFrame:
    """Every operating point, as the appendix shows them (the criterion says what held on the
    split the thresholds were chosen on, ``chosen_on``, so its sensitivity there is left out to
    fit the page)."""
    return _for_reading(points, chosen_on).drop(columns=f"sens. ({chosen_on})")


def _for_reading(points: pd.DataFrame, chosen_on: str = "val") -> pd.DataFrame:
    """Operating points with human headers and intervals in their cells, as a thesis shows them.

    Args:
        points: :func:`operating_points_table` rows with a ``model`` column.
        chosen_on: the split the thresholds were chosen on (``val`` or ``calibration``), in the
            headers of the columns measured there.
    """

    def interval(what: str) -> list[str]:
        return [
            format_ci(r[f"test_{what}"], r[f"test_{what}_low"], r[f"test_{what}_high"], 2)
            for _, r in points.iterrows()
        ]

    return pd.DataFrame(
        {
            "model": points["model"],
            "positive": points["positive"],
            f"criterion ({chosen_on})": [
                _criterion_label(c, t)
                for c, t in zip(points["criterion"], points["target"], strict=True)
            ],
            "threshold": points["threshold"].to_numpy(),
            f"sens. ({chosen_on})": points["val_sensitivity"].to_numpy(),
            "sens. (test)": interval("sensitivity"),
            "spec. (test)": interval("specificity"),
        }
    )


def at_specificity(points: pd.DataFrame, specificity: float) -> pd.DataFrame:
    """The rows of :func:`operating_points_table` chosen for ``specificity`` on validation (the
    profile's target: the point the text discusses and the run stores), in table order."""
    chosen = (points["criterion"] == "specificity") & (
        (points["target"] - specificity).abs() < 1e-9
    )
    return points[chosen]


def stored_point(table: pd.DataFrame, positive: Sequence[str]) -> OperatingPoint:
    """The point a run stores (``thresholds.json``): the first row of its
    :func:`operating_points_table`, chosen for the profile's specificity (:func:`targets_for`
    puts it first)."""
    return OperatingPoint(**{**table.iloc[0].to_dict(), "positive": list(positive)})


def primary_points(points: pd.DataFrame, specificity: float) -> pd.DataFrame:
    """The point the text discusses: per model and positive set, the threshold chosen for the
    profile's target specificity (the full grid belongs in an appendix)."""
    return _for_reading(at_specificity(points, specificity)).drop(columns="criterion (val)")


def stored_point_marks(
    points: pd.DataFrame, positive: str, target: float
) -> dict[str, tuple[float, float]]:
    """Where each model's stored operating point (chosen for ``target`` specificity) lies on its
    test ROC: ``{"<model> op.": (1 - specificity, sensitivity)}``, for
    :func:`skinlib.thesis.plots.roc_curves`.

    Args:
        points: operating points of several models (``model``, ``positive`` and the ``test_*``
            columns, as :func:`operating_points_from_predictions` gives them).
        positive: the positive set as the table spells it (``"mel"``, ``"bcc+mel"``).
    """
    own = points[points["positive"] == positive]
    marks = {}
    for model in dict.fromkeys(own["model"]):
        stored = at_specificity(own[own["model"] == model], target).iloc[0]
        marks[f"{model} op."] = (1 - stored["test_specificity"], stored["test_sensitivity"])
    return marks
