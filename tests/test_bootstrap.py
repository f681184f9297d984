"""The grouped bootstrap: whole lesions resampled, intervals that cover, reproducible and fast (evaluation/bootstrap.py)."""

from __future__ import annotations

import time

import numpy as np

from skinlib.evaluation.bootstrap import bootstrap_ci, bootstrap_weights


def onehot_proba(pred, c=3):
    """Probabilities whose argmax is ``pred`` (0.8 on it, the rest shared)."""
    pred = np.asarray(pred)
    p = np.full((len(pred), c), 0.2 / (c - 1))
    p[np.arange(len(pred)), pred] = 0.8
    return p


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
