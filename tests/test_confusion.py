"""Confused class pairs with lesion-bootstrap intervals, on a known confusion; top losses."""

from __future__ import annotations

import numpy as np
import pytest

from skinlib.evaluation.confusion import confused_pairs, top_losses


def _known_confusion():
    """100 images of a (30 read as b), 50 of b (5 read as a, 2 as c), 20 of c (all right)."""
    y = np.array([0] * 100 + [1] * 50 + [2] * 20)
    pred = y.copy()
    pred[:30] = 1
    pred[100:105] = 0
    pred[105:107] = 2
    return y, pred


def test_counts_and_shares_of_a_known_confusion():
    y, pred = _known_confusion()
    table = confused_pairs(y, pred, ["a", "b", "c"], n_boot=0, top=None)
    assert table[["true", "predicted"]].values.tolist() == [["a", "b"], ["b", "a"], ["b", "c"]]
    assert table["images"].tolist() == [30, 5, 2]
    np.testing.assert_allclose(table["share"], [0.3, 0.1, 0.04])
    np.testing.assert_allclose(table["error_share"], [30 / 37, 5 / 37, 2 / 37])
    assert confused_pairs(y, pred, ["a", "b", "c"], n_boot=0, top=1)["images"].tolist() == [30]


def test_the_interval_of_a_share_is_binomial_for_independent_images_and_wider_for_lesions():
    """Images as their own lesions: the 95% interval of 30/100 is close to the binomial
    +-1.96 sqrt(0.3 * 0.7 / 100) = +-0.090. The same errors in lesions of five images read
    alike: five times fewer independent draws, an interval about sqrt(5) times as wide."""
    y, pred = _known_confusion()
    alone = confused_pairs(y, pred, ["a", "b", "c"], n_boot=4000, top=1).iloc[0]
    assert alone["share_low"] < 0.3 < alone["share_high"]
    assert (alone["share_high"] - alone["share_low"]) / 2 == pytest.approx(0.090, abs=0.01)
    lesions = np.arange(len(y)) // 5  # errors 0..29 fill lesions 0..5 whole
    grouped = confused_pairs(y, pred, ["a", "b", "c"], lesions, n_boot=4000, top=1).iloc[0]
    assert grouped["lesions"] == 6 and alone["lesions"] == 30
    ratio = (grouped["share_high"] - grouped["share_low"]) / (
        alone["share_high"] - alone["share_low"]
    )
    assert 1.8 < ratio < 2.8  # sqrt(5) = 2.24


def test_no_errors_no_pairs():
    y = np.array([0, 1, 1])
    assert confused_pairs(y, y, ["a", "b"], n_boot=10).empty


def test_top_losses_are_the_surest_errors():
    y = np.array([0, 0, 1, 1, 2])
    proba = np.array(
        [
            [0.9, 0.05, 0.05],  # right
            [0.1, 0.85, 0.05],  # wrong, p(true) 0.1
            [0.7, 0.29, 0.01],  # wrong, p(true) 0.29
            [0.01, 0.01, 0.98],  # wrong, p(true) 0.01: the largest loss
            [0.2, 0.2, 0.6],  # right
        ]
    )
    losses = top_losses(y, proba, ["a", "b", "c"], [f"I{i}" for i in range(5)], k=2)
    assert losses["image_id"].tolist() == ["I3", "I1"]
    assert losses[["true", "predicted"]].values.tolist() == [["b", "c"], ["a", "b"]]
    assert losses["loss"].iloc[0] == pytest.approx(-np.log(0.01))
    assert losses["predicted_probability"].iloc[0] == pytest.approx(0.98)
    assert losses["row"].tolist() == [3, 1]
