"""Calibration agrees with netcal and helps; thresholds chosen on validation meet their target."""

from __future__ import annotations

import numpy as np
import pytest
from netcal.metrics import ECE

from skinlib.calibration import (
    TemperatureScaler,
    brier,
    calibration_report,
    ece,
    logits_to_proba,
    mce,
    nll,
)
from skinlib.thresholds import (
    choose_threshold,
    load_thresholds,
    operating_point,
    operating_points_table,
    save_thresholds,
    sens_spec,
    wilson,
)


def simulated(n=3000, c=4, seed=0, scale=1.0):
    """Labels drawn from softmax(logits): perfectly calibrated at scale 1, over-confident above."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 1.5, (n, c))
    proba = logits_to_proba(logits)
    y = np.array([rng.choice(c, p=p) for p in proba])
    return logits * scale, y


@pytest.mark.parametrize("binary", [False, True])
def test_ece_agrees_with_netcal(binary):
    logits, y = simulated(scale=2.0, c=2 if binary else 4)
    proba = logits_to_proba(logits)
    ours = ece(y, proba, 15)
    theirs = ECE(bins=15).measure(proba[:, 1] if binary else proba, y)
    assert ours == pytest.approx(theirs, abs=1e-6)


def test_calibrated_set_has_small_ece_and_mce_bounds_it():
    logits, y = simulated()
    proba = logits_to_proba(logits)
    assert ece(y, proba) < 0.03
    assert mce(y, proba) >= ece(y, proba)


def test_temperature_scaling_fixes_overconfidence():
    logits, y = simulated(scale=3.0, seed=1)
    val, test = slice(0, 1500), slice(1500, None)
    scaler = TemperatureScaler().fit(logits[val], y[val])
    assert scaler.temperature_ == pytest.approx(3.0, rel=0.15)
    before = logits_to_proba(logits[test])
    after = scaler.transform(logits[test])
    assert ece(y[test], after) < ece(y[test], before) / 2
    assert nll(y[test], after) < nll(y[test], before)
    assert brier(y[test], after) < brier(y[test], before)
    assert (after.argmax(1) == before.argmax(1)).all()  # ranking unchanged
    table, t = calibration_report(logits[val], y[val], logits[test], y[test])
    assert t == scaler.temperature_ and len(table) == 4


def test_binary_temperature():
    rng = np.random.default_rng(3)
    z = rng.normal(0, 2, 4000)
    y = (rng.random(4000) < 1 / (1 + np.exp(-z))).astype(int)
    assert TemperatureScaler().fit(z[:, None] * 2.5, y).temperature_ == pytest.approx(2.5, rel=0.15)


@pytest.mark.parametrize("seed", range(5))
def test_threshold_meets_target_specificity_on_validation(seed):
    rng = np.random.default_rng(seed)
    truth = rng.random(500) < 0.2
    score = np.clip(truth * 0.3 + rng.normal(0.4, 0.2, 500), 0, 1)
    for target in (0.8, 0.9, 0.95):
        t = choose_threshold(truth, score, "specificity", target)
        sens, spec = sens_spec(truth, score, t)
        assert spec >= target
        # the least strict such threshold: any lower observed score breaks the target
        lower = score[score < t]
        if len(lower):
            assert sens_spec(truth, score, lower.max())[1] < target
    t = choose_threshold(truth, score, "sensitivity", 0.9)
    assert sens_spec(truth, score, t)[0] >= 0.9


def test_operating_points_table_and_storage(tmp_path):
    rng = np.random.default_rng(0)
    classes = ["bcc", "mel", "nv"]

    def fake(n):
        labels = rng.integers(0, 3, n)
        proba = rng.dirichlet(np.ones(3), n)
        proba[np.arange(n), labels] += 0.5
        return proba / proba.sum(1, keepdims=True), labels

    (vp, vl), (tp, tl) = fake(400), fake(400)
    table = operating_points_table(vp, vl, tp, tl, classes, positive=("mel",))
    assert table.loc[0, "val_specificity"] >= 0.95
    assert (table["test_sensitivity_low"] <= table["test_sensitivity"]).all()
    both = operating_points_table(vp, vl, tp, tl, classes, positive=("bcc", "mel"))
    assert (both["positive"] == "bcc+mel").all()
    point = operating_point(vl == 1, vp[:, 1], tl == 1, tp[:, 1], ["mel"], temperature=1.3)
    save_thresholds(tmp_path / "t.json", [point])
    assert load_thresholds(tmp_path / "t.json")[0].threshold == point.threshold


def test_wilson_interval_known_value():
    low, high = wilson(8, 10)
    assert low == pytest.approx(0.4902, abs=1e-3) and high == pytest.approx(0.9433, abs=1e-3)
