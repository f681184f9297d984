"""Metrics against examples worked by hand and against scikit-learn; bootstrap coverage and speed."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    balanced_accuracy_score,
    f1_score,
    roc_auc_score,
)

from skinlib.evaluation.bootstrap import bootstrap_ci, bootstrap_weights
from skinlib.evaluation.metrics import HEADLINE, classification_report, score, weighted_metrics
from skinlib.evaluation.paired import mcnemar, paired_comparison


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


def test_bootstrap_interval_coverage():
    """Accuracy of Bernoulli(0.8) correctness: over 200 simulated test sets the 95% interval
    covers 0.8 in about 95% of them."""
    rng = np.random.default_rng(2)
    truth, runs, hits = 0.8, 200, 0
    y = np.zeros(200, dtype=int)
    for i in range(runs):
        proba = onehot_proba(np.where(rng.random(200) < truth, 0, 1), 2)  # column 0 = right
        ci = bootstrap_ci(y, proba, metrics=["accuracy"], n_boot=200, seed=i).iloc[0]
        hits += ci["low"] <= truth <= ci["high"]
    assert 0.90 <= hits / runs <= 0.99


def test_bootstrap_draws_whole_lesions():
    groups = np.repeat(["l1", "l2", "l3", "l4"], [1, 2, 3, 4])
    (w,) = bootstrap_weights(groups, len(groups), n_boot=100, seed=0)
    assert w.shape == (100, 10)
    for g in np.unique(groups):  # every image of a lesion has the lesion's draw count
        assert (w[:, groups == g] == w[:, groups == g][:, :1]).all()
    first = w[:, [0, 1, 3, 6]]  # one image per lesion: four lesions drawn per resample
    assert (first.sum(1) == 4).all()


def test_grouped_bootstrap_is_wider_for_clustered_data():
    rng = np.random.default_rng(3)
    groups = np.repeat(np.arange(40), 10)  # 40 lesions, 10 images each, same outcome per lesion
    correct = np.repeat(rng.random(40) < 0.7, 10)
    y = np.zeros(400, dtype=int)
    p = onehot_proba(np.where(correct, 0, 1), 2)
    naive = bootstrap_ci(y, p, metrics=["accuracy"], n_boot=400).iloc[0]
    grouped = bootstrap_ci(y, p, groups, metrics=["accuracy"], n_boot=400).iloc[0]
    assert (grouped["high"] - grouped["low"]) > 2 * (naive["high"] - naive["low"])


def test_bootstrap_is_reproducible_fast_and_leaves_inputs_alone():
    rng = np.random.default_rng(4)
    y = rng.integers(0, 7, 2000)
    p = rng.dirichlet(np.ones(7), 2000)
    groups = rng.integers(0, 1500, 2000)
    before = p.copy()
    start = time.perf_counter()
    a = bootstrap_ci(y, p, groups, n_boot=1000, seed=5)
    elapsed = time.perf_counter() - start
    assert elapsed < 30  # about 2 s on one free core; generous for a shared CI machine
    np.testing.assert_array_equal(p, before)
    b = bootstrap_ci(y, p, groups, n_boot=1000, seed=5)
    assert a.equals(b)
    assert (a["low"] <= a["value"]).all() and (a["value"] <= a["high"]).all()


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
