"""Two models on the same images: McNemar, the paired grouped bootstrap, Holm, alignment (evaluation/paired.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from fixtures.results import CLASSES, skilled_predictions

from skinlib.evaluation.paired import align_pair, holm, mcnemar, paired_comparison, paired_tests
from skinlib.evaluation.predictions import Predictions


def onehot_proba(pred, c=3):
    """Probabilities whose argmax is ``pred`` (0.8 on it, the rest shared)."""
    pred = np.asarray(pred)
    p = np.full((len(pred), c), 0.2 / (c - 1))
    p[np.arange(len(pred)), pred] = 0.8
    return p


def test_mcnemar_exact_and_chi_square_by_hand():
    # 10 images only A gets right, none only B: exact two-sided p = 2 * 0.5**10
    a = np.array([1] * 30 + [0] * 10, bool)
    b = np.array([1] * 20 + [0] * 20, bool)
    test = mcnemar(a, b)
    assert test["method"] == "exact" and test["p_value"] == pytest.approx(2 * 0.5**10)
    # 30 only A, 10 only B (40 discordant): chi2 = (|30 - 10| - 1)^2 / 40 = 9.025, 1 dof,
    # p = erfc(sqrt(9.025 / 2)) ~ 0.00266
    a = np.r_[np.ones(30), np.zeros(10), np.ones(5)].astype(bool)
    b = np.r_[np.zeros(30), np.ones(10), np.ones(5)].astype(bool)
    test = mcnemar(a, b)
    assert test["method"] == "chi2_cc" and test["statistic"] == pytest.approx(9.025)
    assert test["p_value"] == pytest.approx(math.erfc(math.sqrt(9.025 / 2)))
    assert mcnemar(a, a)["p_value"] == 1.0


def test_paired_comparison():
    a = np.array([1] * 30 + [0] * 10, bool)
    b = np.array([1] * 20 + [0] * 20, bool)
    y = np.zeros(40, dtype=int)
    pa, pb = onehot_proba(np.where(a, 0, 1), 2), onehot_proba(np.where(b, 0, 1), 2)
    out = paired_comparison(y, pa, pb, metric="accuracy", n_boot=300)
    # accuracy 30/40 - 20/40 = 0.25; A is never worse on any image, so every resample has d >= 0
    assert out["difference"] == pytest.approx(0.25) and out["a"] == pytest.approx(0.75)
    assert out["low"] > 0 and out["p_mcnemar"] < 0.01
    assert out["p_bootstrap"] == pytest.approx(2 / 301)  # no resample crosses 0: p < 2/(B+1)
    same = paired_comparison(y, pa, pa, groups=np.arange(40) // 2, n_boot=100)
    assert same["difference"] == 0 and same["low"] == same["high"] == 0
    assert same["p_bootstrap"] == 1.0 and same["mcnemar"]["method"] == "none"


def test_holm_adjustment_known_answer():
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03]), [0.03, 0.06, 0.06])
    np.testing.assert_allclose(holm([0.5, 0.001]), [0.5, 0.002])


def test_paired_tests_refuse_different_images_and_align_the_same_ones():
    rng = np.random.default_rng(1)
    a = skilled_predictions(rng, 90, 3.0)
    b = skilled_predictions(rng, 90, 1.0)
    b = Predictions(a.image_id, a.group, a.labels, b.logits, CLASSES)
    shuffled = b.subset(rng.permutation(90))
    assert np.array_equal(align_pair(a, shuffled).image_id, a.image_id)
    table = paired_tests("a", a, {"b": shuffled, "b again": b}, n_boot=100)
    assert table["difference"].nunique() == 1  # the order of the images does not matter
    assert (table["p_holm"] >= table["p_bootstrap"]).all()
    other = Predictions(np.arange(100, 190), a.group, a.labels, b.logits, CLASSES)
    with pytest.raises(ValueError, match="different images"):
        paired_tests("a", a, {"other split": other}, n_boot=10)


def test_paired_bootstrap_resamples_lesions():
    """With lesions of 6 near-identical images, the grouped interval is wider than per image."""
    rng = np.random.default_rng(2)
    lesions = skilled_predictions(rng, 50, 3.0, lesion_size=1)
    a = Predictions(
        np.arange(300),
        np.arange(300) // 6,
        np.repeat(lesions.labels, 6),
        np.repeat(lesions.logits, 6, axis=0),
        CLASSES,
    )
    b = Predictions(a.image_id, a.group, a.labels, a.logits[::-1].copy(), CLASSES)
    grouped = paired_tests("a", a, {"b": b}, n_boot=300).iloc[0]
    per_image = paired_tests(
        "a", Predictions(a.image_id, a.image_id, a.labels, a.logits, CLASSES), {"b": b}, n_boot=300
    ).iloc[0]
    assert grouped["high"] - grouped["low"] > per_image["high"] - per_image["low"]
