"""Ensembles: several runs' probabilities of the same images averaged, weighted on validation."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from skinlib.data.splits import CALIBRATION
from skinlib.errors import DataError, SkinlibError
from skinlib.evaluation.metrics import classification_report
from skinlib.evaluation.predictions import Predictions, probabilities_to_logits
from skinlib.runs.folder import RunFolder


def average_probabilities(
    probabilities: Sequence[np.ndarray], weights: Sequence[float] | None = None
) -> np.ndarray:
    """The (weighted) mean of several models' (N, C) probabilities of the same images: how every
    ensemble combines its members.

    >>> average_probabilities([np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]])], [3, 1]).tolist()
    [[0.75, 0.25]]
    """
    w = np.ones(len(probabilities)) if weights is None else np.asarray(weights, dtype=float)
    if len(w) != len(probabilities) or np.any(w < 0) or w.sum() <= 0:
        raise ValueError("weights must be non-negative, one per member, not all zero")
    return sum(wi * p for wi, p in zip(w, probabilities, strict=True)) / w.sum()


def ensemble_weights(val_predictions: Sequence[Predictions]) -> list[float]:
    """Each member's validation balanced accuracy: its weight in the ensemble (chosen on
    validation, so the test set plays no part in how the members are combined)."""
    return [
        classification_report(p.labels, p.probabilities(), p.classes).summary["balanced_accuracy"]
        for p in val_predictions
    ]


def ensemble(
    predictions: Sequence[Predictions],
    weights: Sequence[float] | None = None,
    temperatures: Sequence[float] | None = None,
) -> Predictions:
    """Average the probabilities of several runs on the same images (optionally weighted).

    Args:
        temperatures: one per member: average the calibrated probabilities (each member's
            ``softmax(logits / T)``); default the raw ones.
    """
    if not predictions:
        raise ValueError("ensemble needs at least one predictions set")
    first = predictions[0]
    for other in predictions[1:]:
        if list(other.classes) != list(first.classes):
            raise DataError(
                f"ensemble members disagree on classes: {first.classes} vs {other.classes}"
            )
        if not np.array_equal(other.image_id, first.image_id):
            raise DataError(
                "ensemble members were predicted on different images (or another order)"
            )
    temperatures = [1.0] * len(predictions) if temperatures is None else temperatures
    members = zip(predictions, temperatures, strict=True)
    proba = average_probabilities([p.probabilities(t) for p, t in members], weights)
    return Predictions(
        image_id=first.image_id,
        group=first.group,
        labels=first.labels,
        logits=probabilities_to_logits(proba, first.binary),
        classes=list(first.classes),
    )


def write_ensemble(
    out: RunFolder, members: Sequence[RunFolder], weighted: bool = True
) -> RunFolder:
    """Average the members' calibrated probabilities (weighted by validation balanced accuracy)
    into the run folder ``out``, so every step and the app use it like a run; its own temperature
    and operating points are fitted on it afterwards, as for any run.

    Raises:
        SkinlibError: a member has no temperature yet (04 has not run).
    """
    val = [m.predictions("val") for m in members]
    weights = ensemble_weights(val) if weighted else None
    out.path.mkdir(parents=True, exist_ok=True)
    uncalibrated = [m.name for m in members if m.temperature() is None]
    if uncalibrated:
        raise SkinlibError(
            f"the ensemble averages calibrated probabilities, but {uncalibrated} have no "
            "temperature yet: run 04_calibration first"
        )
    temperatures = [m.temperature() for m in members]
    splits = ["val", "test"]
    if all(m.posthoc_split() == CALIBRATION for m in members):
        splits.append(CALIBRATION)  # so the ensemble calibrates where its members did
    else:  # an earlier ensemble's would make it calibrate on a split its members lack
        out.predictions_file(CALIBRATION).unlink(missing_ok=True)
    for split in splits:
        predictions = [m.predictions(split) for m in members]
        out.write_predictions(ensemble(predictions, weights, temperatures), split)
    out.split_file.write_bytes(members[0].split_file.read_bytes())
    out.write_ensemble([m.name for m in members], weights, "mean of calibrated probabilities")
    return out
