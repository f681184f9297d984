"""Calibration errors agree with netcal and hand computations; temperature scaling helps."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from netcal.metrics import ECE, MCE
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from skinlib.evaluation.bootstrap import bootstrap_weights
from skinlib.evaluation.calibration import (
    TemperatureScaler,
    brier,
    calibration_errors,
    calibration_errors_ci,
    calibration_report,
    calibration_table,
    classwise_ece,
    ece,
    logits_to_proba,
    mce,
    nll,
    reliability,
    reliability_tables,
    weighted_calibration_errors,
)
from skinlib.evaluation.ood import msp
from skinlib.evaluation.predictions import Predictions


def simulated(n=3000, c=4, seed=0, scale=1.0):
    """Labels drawn from softmax(logits): perfectly calibrated; ``scale`` > 1 makes the returned
    logits over-confident (a known model whose logits are multiplied)."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 1.5, (n, c))
    proba = logits_to_proba(logits)
    y = (proba.cumsum(1) > rng.random((n, 1))).argmax(1)
    return logits * scale, y


# four images, three classes: top confidences 0.9 (right), 0.9 (wrong), 0.65, 0.65 (both right)
HAND_PROBA = np.array([[0.9, 0.05, 0.05], [0.9, 0.05, 0.05], [0.65, 0.2, 0.15], [0.2, 0.65, 0.15]])
HAND_Y = np.array([0, 1, 0, 1])


def test_one_softmax_for_predictions_calibration_and_unknown_scores():
    """softmax([log 3, 0]) = [3/4, 1/4]; one binary logit log 3 gives p = 3/4 as [1/4, 3/4]."""
    multi = np.array([[0.0, 0.0], [np.log(3), 0.0]])
    np.testing.assert_allclose(logits_to_proba(multi), [[0.5, 0.5], [0.75, 0.25]])
    np.testing.assert_allclose(
        logits_to_proba(2 * multi, temperature=2), [[0.5, 0.5], [0.75, 0.25]]
    )
    binary = np.array([[0.0], [np.log(3)]])
    np.testing.assert_allclose(logits_to_proba(binary), [[0.5, 0.5], [0.25, 0.75]])
    for logits, classes in ((multi, ["a", "b"]), (binary, ["other", "mel"])):
        preds = Predictions(["x", "y"], ["x", "y"], [0, 1], logits, classes)
        assert np.array_equal(preds.probabilities(1.7), logits_to_proba(logits, 1.7))
    # a binary run's maximum probability is max(p, 1 - p), not the softmax of one column (1)
    np.testing.assert_allclose(msp(binary), [0.5, 0.75])


def test_reliability_before_and_after_a_fitted_temperature_only():
    """Three classes, logits [log 6, 0, 0]: confidence 6/8 = 3/4 (bin 11 of 15) for four images,
    three right. At T = log 6 / log 2 the logits become [log 2, 0, 0]: confidence 2/4 (bin 7),
    and the argmax, so the accuracy, stays."""
    logits, y = np.tile([np.log(6), 0.0, 0.0], (4, 1)), np.array([0, 0, 0, 1])
    assert list(reliability_tables(y, logits)) == ["before"]  # not calibrated: nothing to show
    tables = reliability_tables(y, logits, temperature=np.log(6) / np.log(2))
    before, after = (t.set_index("bin") for t in (tables["before"], tables["after"]))
    assert before.loc[11, "count"] == 4 and before["count"].sum() == 4
    assert before.loc[11, ["confidence", "accuracy"]].tolist() == pytest.approx([0.75, 0.75])
    assert after.loc[7, "count"] == 4
    assert after.loc[7, ["confidence", "accuracy"]].tolist() == pytest.approx([0.5, 0.75])


def test_errors_worked_by_hand():
    # bins of width 1/15: 0.9 in [13/15, 14/15): accuracy 1/2, gap |0.5 - 0.9| = 0.4;
    # 0.65 in [9/15, 10/15): accuracy 1, gap 0.35. ECE = 0.5 * 0.4 + 0.5 * 0.35 = 0.375
    assert ece(HAND_Y, HAND_PROBA) == pytest.approx(0.375)
    assert mce(HAND_Y, HAND_PROBA) == pytest.approx(0.4)
    # NLL = -mean log p(true) = -(ln .9 + ln .05 + 2 ln .65) / 4
    expected_nll = -(np.log(0.9) + np.log(0.05) + 2 * np.log(0.65)) / 4
    assert nll(HAND_Y, HAND_PROBA) == pytest.approx(expected_nll)
    # Brier, sum over classes of squared differences to one-hot: 0.01 + 0.0025 + 0.0025 = 0.015;
    # 0.81 + 0.9025 + 0.0025 = 1.715; 0.1225 + 0.04 + 0.0225 = 0.185; 0.185 -> mean 2.1 / 4
    assert brier(HAND_Y, HAND_PROBA) == pytest.approx(0.525)
    table = reliability(HAND_Y, HAND_PROBA)
    assert table["count"].sum() == 4 and table.loc[13, "accuracy"] == 0.5
    assert table.loc[9, "confidence"] == pytest.approx(0.65)


def test_binary_brier_is_the_usual_one():
    # binary (two columns): mean (p - y)^2 = ((0.2)^2 + (0.4)^2) / 2 = 0.1
    proba = np.array([[0.8, 0.2], [0.4, 0.6]])
    assert brier(np.array([0, 1]), proba) == pytest.approx(0.1)


@pytest.mark.parametrize("binary", [False, True])
def test_ece_and_mce_agree_with_netcal(binary):
    logits, y = simulated(scale=2.0, c=2 if binary else 4)
    proba = logits_to_proba(logits)
    assert ece(y, proba, 15) == pytest.approx(ECE(bins=15).measure(proba, y), abs=1e-9)
    assert mce(y, proba, 15) == pytest.approx(MCE(bins=15).measure(proba, y), abs=1e-9)
    if binary:  # netcal reads a binary task's positive probability from (N,) or (N, 2)
        assert ece(y, proba) == pytest.approx(ECE(bins=15).measure(proba[:, 1], y), abs=1e-9)


def test_ece_agrees_with_netcal_on_bin_edges():
    """Confidences exactly on bin edges go to the bin above (bins closed on the left)."""
    rng = np.random.default_rng(5)
    edges = np.linspace(0, 1, 16)
    p = rng.choice(np.r_[edges, 0.2, 0.6, 0.4, 0.8], 600)
    y = (rng.random(600) < p).astype(int)
    proba = np.stack([1 - p, p], axis=1)
    assert ece(y, proba) == pytest.approx(ECE(bins=15).measure(proba, y), abs=1e-12)
    conf = rng.choice(edges[6:], 400)
    multi = np.stack([conf, (1 - conf) / 2, (1 - conf) / 2], axis=1)
    ym = rng.integers(0, 3, 400)
    assert ece(ym, multi) == pytest.approx(ECE(bins=15).measure(multi, ym), abs=1e-12)


def test_classwise_ece_is_the_mean_of_netcal_per_class():
    logits, y = simulated(scale=2.0, seed=6)
    proba = logits_to_proba(logits)
    per_class = [ECE(bins=15).measure(proba[:, c], (y == c).astype(int)) for c in range(4)]
    assert classwise_ece(y, proba) == pytest.approx(np.mean(per_class), abs=1e-9)


def test_calibrated_set_has_small_ece_and_mce_bounds_it():
    logits, y = simulated(n=5000, seed=7)
    proba = logits_to_proba(logits)
    assert ece(y, proba) < 0.02
    assert mce(y, proba) >= ece(y, proba)


def test_temperature_scaling_fixes_overconfidence():
    logits, y = simulated(scale=3.0, seed=1)
    val, test = slice(0, 1500), slice(1500, None)
    scaler = TemperatureScaler().fit(logits[val], y[val])
    assert scaler.temperature_ == pytest.approx(3.0, rel=0.15)  # undoes the known factor
    before, after = logits_to_proba(logits[test]), scaler.transform(logits[test])
    assert ece(y[test], after) < ece(y[test], before) / 2
    assert nll(y[test], after) < nll(y[test], before)
    assert brier(y[test], after) < brier(y[test], before)
    np.testing.assert_array_equal(after.argmax(1), before.argmax(1))  # ranking unchanged
    np.testing.assert_allclose(
        scaler.transform_logits(logits[:3]), logits[:3] / scaler.temperature_
    )


def test_binary_temperature_from_one_logit_column():
    rng = np.random.default_rng(3)
    z = rng.normal(0, 2, 4000)
    y = (rng.random(4000) < 1 / (1 + np.exp(-z))).astype(int)
    scaler = TemperatureScaler().fit(z[:, None] * 2.5, y)
    assert scaler.temperature_ == pytest.approx(2.5, rel=0.15)
    assert scaler.transform(z[:5, None]).shape == (5, 2)


def test_scaler_is_a_scikit_learn_estimator():
    scaler = TemperatureScaler(bounds=(0.1, 10.0))
    assert scaler.get_params() == {"bounds": (0.1, 10.0)}
    assert not hasattr(scaler, "temperature_")  # __init__ only stores its arguments
    assert clone(scaler).bounds == (0.1, 10.0)
    with pytest.raises(NotFittedError):
        scaler.transform(np.zeros((2, 3)))
    logits, y = simulated(n=300)
    assert scaler.fit(logits, y) is scaler


def test_calibration_report_before_and_after():
    logits, y = simulated(scale=3.0, seed=2)
    table, t = calibration_report(logits[:1500], y[:1500], logits[1500:], y[1500:])
    assert list(zip(table["split"], table["stage"], strict=True)) == [
        ("val", "before"),
        ("val", "after"),
        ("test", "before"),
        ("test", "after"),
    ]
    assert t == table.loc[1, "temperature"] and table.loc[0, "temperature"] == 1.0
    # T = 1 lies inside the search range, so the fitted T cannot have a worse validation NLL
    assert table.loc[1, "nll"] <= table.loc[0, "nll"]
    assert (table["mce"] >= table["ece"]).all()


@pytest.mark.parametrize("c", [2, 4])
def test_weighted_errors_are_those_of_the_resample_written_out(c):
    """A row of bootstrap weights gives the errors of the resample with each image repeated as
    often as it was drawn; a row of ones gives the set's own errors."""
    logits, y = simulated(n=300, c=c, seed=3, scale=2.0)
    proba = logits_to_proba(logits)
    weights = next(bootstrap_weights(np.arange(300) // 3, 300, 6, seed=1))
    got = weighted_calibration_errors(y, proba, np.vstack([np.ones(300), weights]))
    expected = [calibration_errors(y, proba)] + [
        calibration_errors(y[rows], proba[rows])
        for rows in (np.repeat(np.arange(300), w.astype(int)) for w in weights)
    ]
    for name in expected[0]:
        np.testing.assert_allclose(got[name], [e[name] for e in expected], rtol=1e-9)


def _repeated_lesions(copies: int = 6):
    """50 distinct images, and the same set with every image repeated ``copies`` times as the
    images of one lesion."""
    logits, y = simulated(n=50, seed=4, scale=2.0)
    lesion = np.repeat(np.arange(50), copies)
    return logits, y, logits[lesion], y[lesion], lesion


def test_intervals_resample_lesions_not_images():
    """Resampling lesions of identical images is resampling the distinct images: the same
    intervals; resampling the repeated images as if independent gives narrower ones."""
    logits, y, rep_logits, rep_y, lesion = _repeated_lesions()
    by_lesion = calibration_errors_ci(rep_y, logits_to_proba(rep_logits), lesion, n_boot=300)
    distinct = calibration_errors_ci(y, logits_to_proba(logits), None, n_boot=300)
    assert by_lesion == pytest.approx(distinct, rel=1e-9)
    per_image = calibration_errors_ci(rep_y, logits_to_proba(rep_logits), None, n_boot=300)
    for name in ("ece", "nll", "brier"):
        assert per_image[f"{name}_high"] - per_image[f"{name}_low"] < 0.7 * (
            by_lesion[f"{name}_high"] - by_lesion[f"{name}_low"]
        ), name


def test_calibration_report_gives_the_test_errors_lesion_intervals():
    val_logits, val_y = simulated(n=400, seed=5, scale=2.0)
    _, _, test_logits, test_y, lesion = _repeated_lesions()
    table, t = calibration_report(
        val_logits, val_y, test_logits, test_y, test_groups=lesion, n_boot=200
    )
    test = table[table["split"] == "test"].set_index("stage")
    for stage, temperature in (("before", 1.0), ("after", t)):
        proba = logits_to_proba(test_logits, temperature)
        expected = calibration_errors_ci(test_y, proba, lesion, n_boot=200)
        assert test.loc[stage, list(expected)].to_dict() == pytest.approx(expected)
        # the mean errors' intervals hold their value (the binned ones are biased upwards)
        for name in ("nll", "brier"):
            assert expected[f"{name}_low"] < expected[name] < expected[f"{name}_high"]
    # validation fitted the temperature: its rows carry values, no intervals
    val = table[table["split"] == "val"]
    assert val["ece"].notna().all() and val["ece_low"].isna().all()


def test_calibration_table_puts_each_error_of_each_model_on_one_row():
    val_logits, val_y = simulated(n=400, seed=6, scale=2.0)
    test_logits, test_y = simulated(n=200, seed=7, scale=2.0)
    report, t = calibration_report(val_logits, val_y, test_logits, test_y, n_boot=50)
    reports = pd.concat([report.assign(model="a"), report.assign(model="b")], ignore_index=True)
    table = calibration_table(reports)
    assert table["model"].tolist() == ["a"] * 5 + ["b"] * 5
    row = table.set_index(["model", "error"]).loc[("b", "NLL")]
    at = report.set_index(["split", "stage"])
    assert row["temperature"] == t
    assert row["val_before"] == at.loc[("val", "before"), "nll"]
    assert row["test_after"] == at.loc[("test", "after"), "nll"]
    assert row["test_after_low"] == at.loc[("test", "after"), "nll_low"]
    assert row["test_before_high"] == at.loc[("test", "before"), "nll_high"]
