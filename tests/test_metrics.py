"""Metrics against examples worked by hand and against scikit-learn, weighted as the bootstrap weighs them (evaluation/metrics.py)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    balanced_accuracy_score,
    f1_score,
    roc_auc_score,
)

from skinlib.evaluation.bootstrap import bootstrap_ci
from skinlib.evaluation.metrics import HEADLINE, classification_report, score, weighted_metrics


def onehot_proba(pred, c=3):
    """Probabilities whose argmax is ``pred`` (0.8 on it, the rest shared)."""
    pred = np.asarray(pred)
    p = np.full((len(pred), c), 0.2 / (c - 1))
    p[np.arange(len(pred)), pred] = 0.8
    return p


def test_multiclass_worked_by_hand():
    # truth:      a a a a b b c c
    # prediction: a a a b b c c c
    # confusion (rows truth): a [3 1 0], b [0 1 1], c [0 0 2]
    y = np.array([0, 0, 0, 0, 1, 1, 2, 2])
    pred = np.array([0, 0, 0, 1, 1, 2, 2, 2])
    r = classification_report(y, onehot_proba(pred), ["a", "b", "c"])
    # accuracy 6/8; recalls a 3/4, b 1/2, c 2/2 -> balanced (0.75 + 0.5 + 1) / 3 = 0.75
    assert r.summary["accuracy"] == pytest.approx(0.75)
    assert r.summary["balanced_accuracy"] == pytest.approx(0.75)
    np.testing.assert_allclose(r.per_class["recall"], [0.75, 0.5, 1.0])
    # precision: a 3/3, b 1/2, c 2/3
    np.testing.assert_allclose(r.per_class["precision"], [1, 0.5, 2 / 3])
    # F1 = 2PR/(P+R): a 2*1*.75/1.75 = 6/7, b 2*.5*.5/1 = 0.5, c 2*(2/3)*1/(5/3) = 0.8
    np.testing.assert_allclose(r.per_class["f1"], [6 / 7, 0.5, 0.8])
    assert r.summary["macro_f1"] == pytest.approx((6 / 7 + 0.5 + 0.8) / 3)
    # weighted by support 4, 2, 2
    assert r.summary["weighted_f1"] == pytest.approx((4 * 6 / 7 + 2 * 0.5 + 2 * 0.8) / 8)
    # specificity = TN / (TN + FP): a: 4 negatives, none predicted a -> 1;
    # b: 6 negatives, one (an a) predicted b -> 5/6; c: 6 negatives, one (a b) predicted c -> 5/6
    np.testing.assert_allclose(r.per_class["specificity"], [1, 5 / 6, 5 / 6])
    np.testing.assert_array_equal(r.confusion.to_numpy(), [[3, 1, 0], [0, 1, 1], [0, 0, 2]])
    np.testing.assert_allclose(r.confusion_normalized.loc["b"], [0, 0.5, 0.5])
    assert r.per_class["support"].tolist() == [4, 2, 2]


def test_binary_worked_by_hand_and_both_input_forms():
    # truth 0 0 1 1, p(positive) 0.2 0.8 0.7 0.9
    y = np.array([0, 0, 1, 1])
    p = np.array([0.2, 0.8, 0.7, 0.9])
    r = classification_report(y, p, ["other", "mel"])
    # predicted positive where p >= 0.5: 0 1 1 1 -> sensitivity 2/2, specificity 1/2
    assert r.summary["sensitivity"] == 1.0 and r.summary["specificity"] == 0.5
    # AUC: positive-negative pairs ordered correctly: (.7>.2) (.7<.8) (.9>.2) (.9>.8) -> 3/4
    assert r.summary["macro_auc"] == pytest.approx(0.75)
    # AP: ranked .9(+) .8(-) .7(+) .2(-): precision at each positive 1/1, 2/3 -> (1 + 2/3) / 2
    assert r.summary["macro_ap"] == pytest.approx(5 / 6)
    two_columns = classification_report(y, np.stack([1 - p, p], 1), ["other", "mel"])
    assert two_columns.summary == r.summary


def test_ties_count_one_half_in_auc():
    # one positive and one negative with the same score: the pair counts 1/2
    assert score([0, 1], np.array([0.5, 0.5]), "macro_auc") == 0.5


def test_absent_class_gives_nan_auc_not_a_crash():
    # truth a a b b, prediction a c b b; class c never true
    y = np.array([0, 0, 1, 1])
    r = classification_report(y, onehot_proba([0, 2, 1, 1]), ["a", "b", "c"])
    assert np.isnan(r.per_class.loc["c", "auc"]) and np.isnan(
        r.per_class.loc["c", "average_precision"]
    )
    # balanced accuracy over classes in the truth: (1/2 + 2/2) / 2
    assert r.summary["balanced_accuracy"] == pytest.approx(0.75)
    # macro F1 over classes in truth or prediction: a 2*1/(2+1) = 2/3, b 1, c 0 -> 5/9
    assert r.summary["macro_f1"] == pytest.approx(5 / 9)
    assert np.isfinite(r.summary["macro_auc"])  # mean over a and b
    ci = bootstrap_ci(y, onehot_proba([0, 2, 1, 1]), n_boot=50)
    assert np.isfinite(ci["value"]).all()


def test_summary_matches_sklearn_on_random_data():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 300)
    p = rng.dirichlet(np.ones(4), 300)
    p[np.arange(300), y] += rng.random(300)
    p /= p.sum(1, keepdims=True)
    r = classification_report(y, p, list("abcd"))
    pred = p.argmax(1)
    assert r.summary["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, pred))
    assert r.summary["macro_f1"] == pytest.approx(f1_score(y, pred, average="macro"))
    assert r.summary["macro_auc"] == pytest.approx(roc_auc_score(y, p, multi_class="ovr"))
    # the bootstrap's own (vectorised) metrics give the same values on the full set
    ci = bootstrap_ci(y, p, n_boot=20).set_index("metric")
    for m in HEADLINE:
        assert ci.loc[m, "value"] == pytest.approx(r.summary[m]), m


@pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true")
def test_weighted_metrics_equal_sklearn_on_the_expanded_resample():
    """A row of integer weights is a resample: the metrics equal scikit-learn's on the images
    repeated that many times (with tied scores and a class absent from the truth)."""
    rng = np.random.default_rng(1)
    n, c = 200, 5
    y = rng.integers(0, 4, n)  # class 4 never occurs
    p = rng.dirichlet(np.ones(c), n)
    p[np.arange(n), y] += rng.random(n)
    p = np.round(p / p.sum(1, keepdims=True), 2)  # ties
    w = rng.integers(0, 3, (3, n)).astype(float)
    got = weighted_metrics(y, p, w, HEADLINE)
    for b in range(3):
        idx = np.repeat(np.arange(n), w[b].astype(int))
        yy, pp = y[idx], p[idx]
        pred = pp.argmax(1)
        present = [k for k in range(c) if (yy == k).any()]
        expected = {
            "accuracy": accuracy_score(yy, pred),
            "balanced_accuracy": balanced_accuracy_score(yy, pred),
            "macro_f1": f1_score(yy, pred, average="macro"),
            "weighted_f1": f1_score(yy, pred, average="weighted"),
            "macro_auc": np.mean([roc_auc_score(yy == k, pp[:, k]) for k in present]),
            "macro_ap": np.mean([average_precision_score(yy == k, pp[:, k]) for k in present]),
        }
        for m, value in expected.items():
            assert got[m][b] == pytest.approx(value), m
