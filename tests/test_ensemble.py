"""Ensembles: weighted means of calibrated probabilities, weights from validation (inference/ensemble.py)."""

from __future__ import annotations

import numpy as np
import pytest

from skinlib.errors import DataError
from skinlib.evaluation.predictions import Predictions
from skinlib.inference.ensemble import average_probabilities, ensemble, ensemble_weights


def test_ensemble_averages_probabilities():
    rng = np.random.default_rng(0)
    ids, groups, labels = np.arange(5).astype(str), np.arange(5).astype(str), rng.integers(0, 3, 5)
    a = Predictions(ids, groups, labels, rng.normal(size=(5, 3)), list("abc"))
    b = Predictions(ids, groups, labels, rng.normal(size=(5, 3)), list("abc"))
    mixed = ensemble([a, b], weights=[3, 1])
    expected = (3 * a.probabilities() + b.probabilities()) / 4
    np.testing.assert_allclose(mixed.probabilities(), expected, atol=1e-6)
    with pytest.raises(DataError, match="different images"):
        ensemble([a, Predictions(ids[::-1], groups, labels, a.logits, list("abc"))])


def test_average_probabilities_is_the_weighted_mean():
    p, q = np.array([[0.2, 0.8], [0.5, 0.5]]), np.array([[0.6, 0.4], [1.0, 0.0]])
    np.testing.assert_allclose(average_probabilities([p, q]), [[0.4, 0.6], [0.75, 0.25]])
    np.testing.assert_allclose(average_probabilities([p, q], [3, 1]), [[0.3, 0.7], [0.625, 0.375]])
    for bad in ([1], [1, -1], [0, 0]):
        with pytest.raises(ValueError, match="non-negative, one per member"):
            average_probabilities([p, q], bad)


def test_ensemble_of_calibrated_members_known_answer():
    """Member a at T = 2 gives [3/4, 1/4], member b [1/2, 1/2]; weights 3 and 1: [11/16, 5/16]."""
    a = Predictions(["x"], ["x"], [0], [[2 * np.log(3), 0.0]], ["nv", "mel"])
    b = Predictions(["x"], ["x"], [0], [[0.0, 0.0]], ["nv", "mel"])
    mean = ensemble([a, b], [3, 1], temperatures=[2.0, 1.0])
    np.testing.assert_allclose(mean.probabilities(), [[11 / 16, 5 / 16]])
    np.testing.assert_allclose(
        average_probabilities([a.probabilities(2), b.probabilities()]), [[0.625, 0.375]]
    )
    with pytest.raises(ValueError, match="non-negative"):
        average_probabilities([a.probabilities()], [-1.0])


def test_ensemble_weights_are_validation_balanced_accuracy():
    """Labels [0, 0, 1, 1], predictions [0, 1, 1, 1]: recalls 1/2 and 1, balanced accuracy 3/4."""
    logits = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [0.0, 1.0]])
    val = Predictions(list("abcd"), list("abcd"), [0, 0, 1, 1], logits, ["nv", "mel"])
    perfect = Predictions(list("abcd"), list("abcd"), [0, 1, 1, 1], logits, ["nv", "mel"])
    assert ensemble_weights([val, perfect]) == [0.75, 1.0]
