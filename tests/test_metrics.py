"""Metrics against examples worked by hand and against scikit-learn; interval coverage."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score, f1_score, roc_auc_score

from skinlib.metrics import bootstrap_ci, classification_report, mcnemar, paired_comparison


def onehot_proba(pred, c=3):
    p = np.full((len(pred), c), 0.1)
    p[np.arange(len(pred)), pred] = 0.8
    return p


def test_hand_worked_example():
    # truth:      0 0 0 0 1 1 2 2
    # prediction: 0 0 0 1 1 2 2 2
    y = np.array([0, 0, 0, 0, 1, 1, 2, 2])
    pred = np.array([0, 0, 0, 1, 1, 2, 2, 2])
    r = classification_report(y, onehot_proba(pred), ["a", "b", "c"])
    # accuracy 6/8; recalls 3/4, 1/2, 2/2 -> balanced (0.75 + 0.5 + 1) / 3 = 0.75
    assert r.summary["accuracy"] == pytest.approx(0.75)
    assert r.summary["balanced_accuracy"] == pytest.approx(0.75)
    # precision: a 3/3, b 1/2, c 2/3; f1: a 2*1*.75/1.75 = 0.857, b 0.5, c 0.8
    np.testing.assert_allclose(r.per_class["precision"], [1, 0.5, 2 / 3])
    np.testing.assert_allclose(r.per_class["f1"], [6 / 7, 0.5, 0.8])
    assert r.summary["macro_f1"] == pytest.approx((6 / 7 + 0.5 + 0.8) / 3)
    # specificity of b: negatives are the 6 non-b images; one of them (a 0) predicted b -> 5/6
    assert r.per_class.loc["b", "specificity"] == pytest.approx(5 / 6)
    assert r.confusion.loc["a", "b"] == 1 and r.confusion_normalized.loc["b", "c"] == 0.5
    assert r.summary["weighted_f1"] == pytest.approx(f1_score(y, pred, average="weighted"))


def test_matches_sklearn_on_random_data():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 300)
    p = rng.dirichlet(np.ones(4), 300)
    p[np.arange(300), y] += rng.random(300)
    p /= p.sum(1, keepdims=True)
    r = classification_report(y, p, list("abcd"))
    assert r.summary["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, p.argmax(1)))
    assert r.summary["macro_f1"] == pytest.approx(f1_score(y, p.argmax(1), average="macro"))
    assert r.summary["macro_auc"] == pytest.approx(roc_auc_score(y, p, multi_class="ovr"))


def test_binary_and_missing_class():
    y = np.array([0, 0, 1, 1])
    r = classification_report(y, np.array([0.2, 0.8, 0.7, 0.9]), ["other", "mel"])
    assert r.summary["sensitivity"] == 1.0 and r.summary["specificity"] == 0.5
    assert r.summary["macro_auc"] == pytest.approx(0.75)  # 3 of 4 pos/neg pairs ordered
    three = classification_report(np.array([0, 0, 1, 1]), onehot_proba([0, 1, 1, 1]), list("abc"))
    assert np.isnan(three.per_class.loc["c", "auc"])  # class c never occurs: NaN, not a crash


def test_bootstrap_interval_coverage():
    """95% intervals of accuracy cover the true rate in about 95% of simulated studies."""
    rng = np.random.default_rng(1)
    truth, hits = 0.8, 0
    runs = 150
    for i in range(runs):
        y = np.zeros(200, dtype=int)
        correct = rng.random(200) < truth
        p = onehot_proba(np.where(correct, 0, 1), 2)
        ci = bootstrap_ci(y, p, metrics=["accuracy"], n_boot=300, seed=i).iloc[0]
        hits += ci["low"] <= truth <= ci["high"]
    assert 0.88 <= hits / runs <= 0.99


def test_grouped_bootstrap_is_wider_for_clustered_data():
    rng = np.random.default_rng(2)
    groups = np.repeat(np.arange(40), 10)  # 40 lesions, 10 images each, same outcome per lesion
    correct = np.repeat(rng.random(40) < 0.7, 10)
    y = np.zeros(400, dtype=int)
    p = onehot_proba(np.where(correct, 0, 1), 2)
    naive = bootstrap_ci(y, p, metrics=["accuracy"], n_boot=400).iloc[0]
    grouped = bootstrap_ci(y, p, groups, metrics=["accuracy"], n_boot=400).iloc[0]
    assert (grouped["high"] - grouped["low"]) > 2 * (naive["high"] - naive["low"])


def test_mcnemar_and_paired_comparison():
    a = np.array([1] * 30 + [0] * 10, bool)
    b = np.array([1] * 20 + [0] * 20, bool)
    # discordant: only_a = 10, only_b = 0 -> exact two-sided p = 2 * 0.5 ** 10
    test = mcnemar(a, b)
    assert test["method"] == "exact" and test["p_value"] == pytest.approx(2 * 0.5**10)
    y = np.zeros(40, dtype=int)
    pa, pb = onehot_proba(np.where(a, 0, 1), 2), onehot_proba(np.where(b, 0, 1), 2)
    out = paired_comparison(y, pa, pb, metric="accuracy", n_boot=300)
    assert out["difference"] == pytest.approx(0.25) and out["low"] > 0 and out["p_bootstrap"] < 0.05
