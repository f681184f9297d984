"""Thresholds chosen on validation meet their target there, and are stored and read back."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from skinlib.evaluation.calibration import TemperatureScaler
from skinlib.evaluation.predictions import Predictions
from skinlib.evaluation.thresholds import (
    OperatingPoint,
    at_specificity,
    choose_threshold,
    load_thresholds,
    operating_point,
    operating_points_from_predictions,
    operating_points_table,
    positive_roc,
    positive_score,
    positive_truth,
    roc_curves,
    save_thresholds,
    sens_spec,
    stored_point,
    targets_for,
    wilson,
)

# ten negatives and three positives, worked by hand below
NEG = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95]
POS = [0.55, 0.85, 0.97]
HAND_TRUTH = np.array([False] * 10 + [True] * 3)
HAND_SCORE = np.array(NEG + POS)


def test_thresholds_worked_by_hand():
    # specificity >= 0.9 allows one negative at or above t: t = 0.95 flags only the 0.95
    # negative (spec 9/10) and the 0.97 positive (sens 1/3); t = 0.9 would flag two negatives
    assert choose_threshold(HAND_TRUTH, HAND_SCORE, "specificity", 0.9) == 0.95
    # specificity >= 0.8 allows two: the least strict such t is 0.85 (a positive's score):
    # flagged 0.85, 0.9, 0.95, 0.97 -> spec 8/10, sens 2/3; t = 0.8 gives spec 7/10
    t = choose_threshold(HAND_TRUTH, HAND_SCORE, "specificity", 0.8)
    assert t == 0.85 and sens_spec(HAND_TRUTH, HAND_SCORE, t) == pytest.approx((2 / 3, 0.8))
    # sensitivity >= 0.6 needs two of three positives: the strictest such t is 0.85
    assert choose_threshold(HAND_TRUTH, HAND_SCORE, "sensitivity", 0.6) == 0.85
    # Youden J = sens + spec - 1: t = 0.55 flags all positives and 5 negatives -> 1 + 0.5 - 1
    # = 0.5, the best (t = 0.85: 0.467, t = 0.5: 0.4, t = 0.97: 0.333)
    assert choose_threshold(HAND_TRUTH, HAND_SCORE, "youden") == 0.55
    # specificity 1 is reached only by flagging nothing among the negatives: t above 0.95
    t = choose_threshold(HAND_TRUTH, HAND_SCORE, "specificity", 1.0)
    assert sens_spec(HAND_TRUTH, HAND_SCORE, t) == pytest.approx((1 / 3, 1.0))


def _dataset(seed, n=400):
    rng = np.random.default_rng(seed)
    truth = rng.random(n) < rng.uniform(0.1, 0.4)
    score = np.clip(truth * rng.uniform(0.1, 0.4) + rng.normal(0.4, 0.2, n), 0, 1)
    return truth, np.round(score, 2)  # rounding makes ties, the hard case


@pytest.mark.parametrize("seed", range(6))
def test_specificity_target_met_by_the_least_strict_threshold(seed):
    truth, score = _dataset(seed)
    for target in (0.8, 0.9, 0.95, 0.99):
        t = choose_threshold(truth, score, "specificity", target)
        assert sens_spec(truth, score, t)[1] >= target
        lower = score[score < t]  # the next less strict candidate breaks the target
        if len(lower):
            assert sens_spec(truth, score, lower.max())[1] < target


@pytest.mark.parametrize("seed", range(6))
def test_sensitivity_target_and_youden(seed):
    truth, score = _dataset(seed)
    for target in (0.8, 0.9, 0.95):
        t = choose_threshold(truth, score, "sensitivity", target)
        assert sens_spec(truth, score, t)[0] >= target
        higher = score[score > t]  # the next stricter candidate misses the target
        if len(higher):
            assert sens_spec(truth, score, higher.min())[0] < target
    j = [sum(sens_spec(truth, score, t)) - 1 for t in np.unique(score)]
    best = choose_threshold(truth, score, "youden")
    assert sum(sens_spec(truth, score, best)) - 1 == pytest.approx(max(j))


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="criterion"):
        choose_threshold(HAND_TRUTH, HAND_SCORE, "accuracy", 0.9)
    with pytest.raises(ValueError, match="both positive and negative"):
        choose_threshold(np.zeros(5, bool), np.linspace(0, 1, 5))


def test_wilson_interval_known_value():
    # 8 of 10: centre (0.8 + 1.96^2/20) / (1 + 1.96^2/10), half-width 1.96 sqrt(.016 + .0096)/1.384
    low, high = wilson(8, 10)
    assert low == pytest.approx(0.4902, abs=1e-3) and high == pytest.approx(0.9433, abs=1e-3)
    assert np.isnan(wilson(0, 0)).all()


def _fake(rng, n, classes=("bcc", "mel", "nv")):
    labels = rng.integers(0, len(classes), n)
    proba = rng.dirichlet(np.ones(len(classes)), n)
    proba[np.arange(n), labels] += 0.5
    return proba / proba.sum(1, keepdims=True), labels


def test_positive_set_scores_sum_their_probabilities():
    classes = ["bcc", "mel", "nv"]
    proba = np.array([[0.2, 0.3, 0.5], [0.6, 0.1, 0.3]])
    np.testing.assert_allclose(positive_score(proba, classes, ["bcc", "mel"]), [0.5, 0.7])
    assert positive_truth(np.array([0, 2]), classes, ["bcc", "mel"]).tolist() == [True, False]
    # a binary run answers for its own positive set
    binary = ["other", "akiec+bcc+mel"]
    np.testing.assert_allclose(positive_score(proba[:, :2], binary, ["bcc", "mel"]), [0.3, 0.1])
    assert positive_truth(np.array([1, 0]), binary, ["bcc", "mel"]).tolist() == [True, False]
    with pytest.raises(ValueError, match="not among"):
        positive_score(proba, classes, ["scc"])


def test_operating_points_table_with_intervals():
    rng = np.random.default_rng(0)
    classes = ["bcc", "mel", "nv"]
    (vp, vl), (tp, tl) = _fake(rng, 400), _fake(rng, 400)
    table = operating_points_table(vp, vl, tp, tl, classes, positive=("mel",))
    assert table["criterion"].tolist() == ["specificity", "specificity", "sensitivity", "youden"]
    assert table.loc[0, "val_specificity"] >= 0.95 and table.loc[1, "val_specificity"] >= 0.90
    assert table.loc[2, "val_sensitivity"] >= 0.95
    for what in ("sensitivity", "specificity"):
        assert (table[f"test_{what}_low"] <= table[f"test_{what}"]).all()
        assert (table[f"test_{what}"] <= table[f"test_{what}_high"]).all()
    both = operating_points_table(vp, vl, tp, tl, classes, positive=("bcc", "mel"))
    assert (both["positive"] == "bcc+mel").all()
    lesions = np.arange(400) // 4  # four images per lesion: a wider, lesion-level interval
    grouped = operating_points_table(
        vp, vl, tp, tl, classes, ci="bootstrap", test_groups=lesions, n_boot=300
    )
    assert (grouped["test_specificity_low"] <= grouped["test_specificity"]).all()
    assert (grouped["test_specificity"] <= grouped["test_specificity_high"]).all()


def test_operating_points_from_predictions_use_calibrated_probabilities():
    rng = np.random.default_rng(1)

    def preds(n):
        labels = rng.integers(0, 3, n)
        logits = 3 * (rng.normal(0, 1, (n, 3)) + np.eye(3)[labels])  # over-confident
        return Predictions(np.arange(n), np.arange(n) // 2, labels, logits, ["bcc", "mel", "nv"])

    val, test = preds(300), preds(300)
    table = operating_points_from_predictions(val, test, n_boot=200)
    t = TemperatureScaler().fit(val.logits, val.labels).temperature_
    assert table["temperature"].tolist() == pytest.approx([t] * 4)
    truth = positive_truth(val.labels, val.classes, ["mel"])
    score = positive_score(val.probabilities(t), val.classes, ["mel"])
    assert sens_spec(truth, score, table.loc[0, "threshold"])[1] >= 0.95


def test_thresholds_round_trip_as_strict_json(tmp_path):
    point = operating_point(HAND_TRUTH, HAND_SCORE, None, None, ["mel"], temperature=1.3)
    full = operating_point(HAND_TRUTH, HAND_SCORE, HAND_TRUTH, HAND_SCORE, ["mel"], "youden", None)
    path = save_thresholds(tmp_path / "thresholds.json", [point, full])

    def no_nan(token):
        raise AssertionError(f"{token} is not JSON")

    raw = json.loads(path.read_text(), parse_constant=no_nan)
    assert raw["operating_points"][0]["test_sensitivity"] is None
    back = load_thresholds(path)
    assert isinstance(back[0], OperatingPoint) and back[0].threshold == point.threshold
    assert back[0].temperature == 1.3 and np.isnan(back[0].test_sensitivity)
    assert back[1].target is None and back[1].test_specificity == full.test_specificity


def test_roc_curves_per_class_leave_out_absent_classes():
    rng = np.random.default_rng(2)
    proba, labels = _fake(rng, 200, classes=("a", "b", "c", "d"))
    labels[labels == 3] = 0  # class d never occurs
    curves = roc_curves(labels, proba, ["a", "b", "c", "d"])
    assert list(curves) == ["a", "b", "c"]
    fpr, tpr, auc = curves["b"]
    assert fpr[0] == 0 and tpr[-1] == 1 and 0.5 < auc <= 1


def test_roc_of_a_positive_set_known_answer():
    """Classes [nv, bcc, mel], positive set {bcc, mel}: score = p(bcc) + p(mel).

    Scores: negatives 0.2, 0.5; positives 0.4, 0.9. Of the 4 positive-negative pairs 3 are
    ranked right (0.4 < 0.5 is the miss): AUC 3/4.
    """
    proba = np.array([[0.8, 0.1, 0.1], [0.5, 0.3, 0.2], [0.6, 0.3, 0.1], [0.1, 0.1, 0.8]])
    labels = np.array([0, 0, 1, 2])
    fpr, tpr, auc = positive_roc(labels, proba, ["nv", "bcc", "mel"], ["bcc", "mel"])
    assert auc == pytest.approx(0.75)
    # thresholds inf, 0.9 (P), 0.5 (N), 0.4 (P), 0.2 (N)
    np.testing.assert_allclose(fpr, [0, 0, 0.5, 0.5, 1])
    np.testing.assert_allclose(tpr, [0, 0.5, 0.5, 1, 1])
    # one ROC for a positive set and a class: the set {mel} is the class mel's curve
    one = positive_roc(labels, proba, ["nv", "bcc", "mel"], ["mel"])
    per_class = roc_curves(labels, proba, ["nv", "bcc", "mel"])["mel"]
    for a, b in zip(one, per_class, strict=True):
        np.testing.assert_array_equal(a, b)


def test_the_stored_point_is_the_one_chosen_for_the_profile_specificity():
    rows = [
        {"criterion": "specificity", "target": 0.9, "model": "a"},
        {"criterion": "specificity", "target": 0.95, "model": "a"},
        {"criterion": "youden", "target": np.nan, "model": "a"},
        {"criterion": "specificity", "target": 0.9000000000001, "model": "b"},
    ]
    chosen = at_specificity(pd.DataFrame(rows), 0.9)
    assert chosen.index.tolist() == [0, 3]
    val = Predictions(np.arange(13), np.arange(13), HAND_TRUTH, np.c_[NEG + POS], ["other", "mel"])
    table = operating_points_from_predictions(
        val, positive=["mel"], targets=targets_for(0.9), temperature=1.0
    )
    point = stored_point(table, ["mel"])
    assert (point.criterion, point.target, point.positive) == ("specificity", 0.9, ["mel"])
    assert point.threshold == table.loc[0, "threshold"]
