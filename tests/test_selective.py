"""Selective prediction: risk-coverage curves, AURC, the deferral policy."""

from dataclasses import asdict

import numpy as np
import pandas as pd
import pytest

from skinlib.evaluation.bootstrap import bootstrap_weights
from skinlib.evaluation.selective import (
    CONFIDENCES,
    aurc,
    confidence,
    coverage_for_target,
    deferral_policy,
    deferral_table,
    risk_coverage,
    risk_coverage_by_confidence,
    threshold_for_coverage,
    weighted_aurc,
)
from skinlib.study import findings


def _perfect_scorer(rng, n=200, error_rate=0.25):
    """Predictions with a known error rate and a confidence that ranks every error last."""
    y = rng.integers(0, 3, n)
    wrong = rng.random(n) < error_rate
    pred = np.where(wrong, (y + 1) % 3, y)
    proba = np.full((n, 3), 0.1)
    proba[np.arange(n), pred] = 0.8
    conf = np.where(wrong, 0.0, 1.0) + rng.uniform(0, 0.5, n)  # correct ones all above errors
    return y, proba, conf, wrong


def test_risk_coverage_of_a_perfect_scorer():
    y, proba, conf, wrong = _perfect_scorer(np.random.default_rng(0))
    curve = risk_coverage(y, proba, conf)
    n, e = len(y), int(wrong.sum())
    correct_part = curve["coverage"] <= (n - e) / n + 1e-12
    assert (curve.loc[correct_part, "risk"] == 0).all()
    assert curve["risk"].iloc[-1] == pytest.approx(e / n)
    # the optimal AURC: sum over k > n - e of (k - (n - e)) / k, over n
    k = np.arange(n - e + 1, n + 1)
    assert aurc(y, proba, conf) == pytest.approx(((k - (n - e)) / k).sum() / n)
    assert aurc(y, proba, -conf) > aurc(y, proba, conf)  # the reversed ranking is worse


def test_ties_are_kept_together_and_constant_confidence_is_one_point():
    y = np.array([0, 1, 0, 1])
    proba = np.array([[0.9, 0.1], [0.9, 0.1], [0.2, 0.8], [0.2, 0.8]])
    curve = risk_coverage(y, proba, np.ones(4))
    assert curve[["coverage", "risk"]].values.tolist() == [[1.0, 0.5]]
    assert aurc(y, proba, np.ones(4)) == 0.5


def test_confidences():
    p = np.array([[0.7, 0.2, 0.1], [1 / 3, 1 / 3, 1 / 3]])
    assert np.allclose(confidence(p, "max_probability"), [0.7, 1 / 3])
    assert np.allclose(confidence(p, "margin"), [0.5, 0.0])
    assert np.allclose(confidence(p, "entropy")[1], -np.log(3))
    with pytest.raises(ValueError, match="unknown confidence"):
        confidence(p, "odds")


def test_coverage_for_target_and_the_policy_on_test():
    rng = np.random.default_rng(1)
    y, proba, conf, _ = _perfect_scorer(rng, 300)
    proba = proba * 0 + 0.1
    proba[np.arange(300), np.where(conf >= 1, y, (y + 1) % 3)] = 0.5 + conf / 4  # conf in proba
    cov, t = coverage_for_target(y, proba, confidence(proba), 1.0)
    assert cov == pytest.approx(np.mean(conf >= 1), abs=0.01)
    assert coverage_for_target(y, proba, confidence(proba), 1.01) == (0.0, float("inf"))
    y2, proba2, conf2, wrong2 = _perfect_scorer(rng, 300)
    proba2 = proba2 * 0 + 0.1
    proba2[np.arange(300), np.where(conf2 >= 1, y2, (y2 + 1) % 3)] = 0.5 + conf2 / 4
    res = deferral_policy(y, proba, y2, proba2, None, target=1.0, n_boot=100)
    assert res.balanced_accuracy == 1.0  # every kept test image is right
    assert res.coverage_low <= res.coverage <= res.coverage_high
    assert res.balanced_accuracy_all < 1.0


# four images, the wrong one (image 3) the least confident by every score
Y4 = np.array([0, 0, 1, 1])
P4 = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])


def test_risk_coverage_for_every_confidence_known_answer():
    curves, table = risk_coverage_by_confidence(Y4, P4)
    assert list(curves) == list(CONFIDENCES) == table["confidence"].tolist()
    # the error is deferred first by every score: risk 0 until it is answered, AURC (1/4) / 4
    np.testing.assert_allclose(table["aurc"], [0.0625] * 3)
    curve = curves["max_probability"]
    np.testing.assert_allclose(curve["coverage"], [0.25, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(curve["risk"], [0, 0, 0, 0.25])


def test_deferral_for_every_confidence_known_answer():
    """Balanced accuracy 1 is reached by deferring image 3 alone: coverage 3/4 on validation
    and on the same images as test, balanced accuracy 1 answered and 3/4 over all."""
    table = deferral_table(Y4, P4, Y4, P4, np.arange(4), target=1.0, n_boot=20)
    assert table["confidence"].tolist() == list(CONFIDENCES)
    np.testing.assert_allclose(table["val_coverage"], 0.75)
    np.testing.assert_allclose(table["coverage"], 0.75)
    np.testing.assert_allclose(table["balanced_accuracy"], 1.0)
    np.testing.assert_allclose(table["balanced_accuracy_all"], 0.75)
    assert table.loc[0, "threshold"] == pytest.approx(0.7)
    np.testing.assert_allclose(table[["answered 0", "answered 1"]], [[1.0, 0.5]] * 3)


def _one_hard_class(n=50):
    """Classes 0 and 1 answered right and confidently; all ``n`` images of class 2 wrong and the
    least confident."""
    y = np.repeat([0, 1, 2], n)
    proba = np.zeros((3 * n, 3))
    proba[: 2 * n] = np.where(np.eye(3)[y[: 2 * n]] > 0, 0.9, 0.05)
    proba[2 * n :] = [0.5, 0.4, 0.1]
    return y, proba


def test_a_policy_that_defers_a_whole_class_does_not_meet_its_target_silently():
    """Regression: averaging recall over the answered classes gave balanced accuracy 1.0 at
    coverage 2/3 with no class-2 image answered."""
    y, proba = _one_hard_class()
    assert coverage_for_target(y, proba, confidence(proba), 0.9) == (0.0, float("inf"))
    # chosen on validation (every image answered), on test class 2 falls below the threshold
    shifted = proba.copy()
    shifted[100:] = [0.34, 0.33, 0.33]
    res = deferral_policy(y, proba, y, shifted, None, 0.6, n_boot=20, classes=["a", "b", "c"])
    assert (res.val_coverage, res.coverage) == pytest.approx((1.0, 2 / 3))
    assert res.balanced_accuracy == pytest.approx(2 / 3)  # (1 + 1 + 0) / 3
    assert (res.unanswered, res.least_answered, res.least_answered_coverage) == ("c", "c", 0.0)
    text = findings.deferral(pd.DataFrame([asdict(res)]))
    assert "it answers no test image of c" in text


def test_an_unreachable_target_still_reports_what_fixed_shares_answered_give():
    """Regression: on the real images the 0.9 target was out of reach, and 08's table held one
    row per score answering nothing (every class share 0): no trade-off to read. The fixed
    shares are chosen on validation, as the target's threshold is, and show the cost per class."""
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], 100)
    conf = rng.uniform(0.34, 1.0, 300)
    proba = np.empty((300, 3))
    # surer answers are right more often; class c never: no threshold reaches 0.9 over a, b, c
    hit = (rng.uniform(size=300) < conf - 0.2) & (y != 2)
    pred = np.where(hit, y, (y + 1) % 3)
    proba[:] = ((1 - conf) / 2)[:, None]
    proba[np.arange(300), pred] = conf
    assert threshold_for_coverage(confidence(proba), 0.7) == pytest.approx(
        np.quantile(confidence(proba), 0.3), abs=0.01
    )
    table = deferral_table(y, proba, y, proba, None, 0.9, n_boot=20, classes=list("abc"))
    assert (table["policy"] == "balanced accuracy 0.90").all() and len(table) == 3
    table = deferral_table(
        y, proba, y, proba, None, 0.9, n_boot=20, classes=list("abc"), coverages=[0.7, 0.5]
    )
    assert list(table.columns[:2]) == ["policy", "confidence"] and len(table) == 9
    fixed = table[table["policy"] == "answers 50%"]
    assert fixed["val_coverage"].to_numpy() == pytest.approx(0.5, abs=0.01)
    assert fixed["target"].isna().all()
    mp = table.set_index(["policy", "confidence"]).loc[("answers 50%", "max_probability")]
    assert mp["balanced_accuracy"] > mp["balanced_accuracy_all"]  # deferring helps here
    shares = mp[["answered a", "answered b", "answered c"]].to_numpy(float)
    assert shares.mean() == pytest.approx(0.5, abs=0.01) and (shares > 0).all()
    text = findings.deferral(table)
    assert text.startswith("No confidence threshold reaches balanced accuracy 0.90")
    assert "answering 50% of test images (answers 50% of the threshold's split)" in text
    assert f"{mp['balanced_accuracy']:.3f}" in text


def test_deferral_shares_outside_zero_to_one_are_refused():
    from skinlib.errors import ConfigError
    from skinlib.profile import TrustSettings

    with pytest.raises(ConfigError, match=r"trust.deferral_coverages=\[70\]: shares in \(0, 1\]"):
        TrustSettings(deferral_coverages=[70])


def test_the_finding_chooses_the_confidence_score_on_validation():
    """Regression: the finding named the score with the best test coverage."""
    y, proba = _one_hard_class()
    table = pd.DataFrame([asdict(deferral_policy(y, proba, y, proba, None, 0.6, n_boot=20))] * 2)
    table["confidence"] = ["margin", "entropy"]
    table["val_coverage"] = [0.7, 0.6]
    table["coverage"] = [0.6, 0.7]
    assert "(margin, the score answering most validation images" in findings.deferral(table)


def test_weighted_aurc_is_that_of_the_resample_written_out():
    """Confidences rounded to one decimal tie often: a drawn image's copies tie with each other
    and with the images they tied with, as in the resample written out image by image."""
    rng = np.random.default_rng(3)
    y = rng.integers(0, 3, 200)
    proba = rng.dirichlet(np.ones(3), 200).round(1) + 1e-3
    proba /= proba.sum(1, keepdims=True)
    weights = next(bootstrap_weights(np.arange(200) // 4, 200, 10, seed=2))
    for kind in CONFIDENCES:
        conf = confidence(proba, kind)
        got = weighted_aurc(y, proba, conf, np.vstack([np.ones(200), weights]))
        expected = [aurc(y, proba, conf)] + [
            aurc(y[rows], proba[rows], conf[rows])
            for rows in (np.repeat(np.arange(200), w.astype(int)) for w in weights)
        ]
        np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_aurc_intervals_resample_lesions_not_images():
    """Lesions of six identical images resample as the distinct images do: the same interval;
    resampling the copies as independent images would make it narrower."""
    rng = np.random.default_rng(4)
    y, proba, _, _ = _perfect_scorer(rng, 60)
    proba = proba + rng.uniform(0, 0.05, proba.shape)  # confidences differ between images
    proba /= proba.sum(1, keepdims=True)
    lesion = np.repeat(np.arange(60), 6)
    _, by_lesion = risk_coverage_by_confidence(y[lesion], proba[lesion], lesion, n_boot=300)
    _, distinct = risk_coverage_by_confidence(y, proba, None, n_boot=300)
    _, per_image = risk_coverage_by_confidence(y[lesion], proba[lesion], None, n_boot=300)
    cols = ["aurc", "aurc_low", "aurc_high"]
    np.testing.assert_allclose(by_lesion[cols], distinct[cols], rtol=1e-12)
    width = by_lesion["aurc_high"] - by_lesion["aurc_low"]
    assert (per_image["aurc_high"] - per_image["aurc_low"] < 0.7 * width).all()
    assert (by_lesion["aurc_low"] < by_lesion["aurc"]).all()
    assert (by_lesion["aurc"] < by_lesion["aurc_high"]).all()
