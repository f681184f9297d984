"""What the Study reports: chosen on validation, calibrated only where fitted, grouped intervals (study/front.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from fixtures.results import CLASSES, skilled_predictions

import skinlib.study.steps.base as study_module
from skinlib.config import Config, apply_overrides
from skinlib.data.prepare import table_settings
from skinlib.evaluation.calibration import TemperatureScaler, calibration_errors_ci
from skinlib.evaluation.conformal import stored_conformal
from skinlib.evaluation.predictions import Predictions
from skinlib.evaluation.selective import deferral_table, risk_coverage_by_confidence
from skinlib.evaluation.thresholds import (
    choose_threshold,
    operating_point,
    positive_score,
    positive_truth,
)
from skinlib.inference.ensemble import ensemble_weights
from skinlib.io import read_json
from skinlib.runs.folder import RunFolder
from skinlib.study.front import Study


@pytest.fixture
def study(tmp_path, monkeypatch):
    """The smoke profile's study over hand-made prediction files (no training)."""
    for var, sub in (("EXPERIMENTS", "exp"), ("FIGURES", "fig"), ("THESIS", "thesis")):
        monkeypatch.setenv(f"SKINLIB_{var}", str(tmp_path / sub))
    s = Study("params/smoke.yaml")
    # "a" is better on validation, "b" on test: the reference must be "a"
    skills = {"a": {"val": 4.0, "test": 1.0}, "b": {"val": 1.0, "test": 4.0}}
    for run, by_split in skills.items():
        for seed, (split, skill) in enumerate(by_split.items()):
            base = skilled_predictions(
                np.random.default_rng(seed), 240, 0.0
            )  # same images and labels
            p = skilled_predictions(np.random.default_rng(seed + 10 * len(run)), 240, skill)
            p = Predictions(base.image_id, base.group, base.labels, p.logits, CLASSES)
            p.logits += skill * np.eye(3)[p.labels]
            p.logits *= 3  # over-confident: calibration has something to do
            p.save(s.run_dir(run) / f"predictions_{split}.csv")
            tta = Predictions(p.image_id, p.group, p.labels, p.logits / 4, CLASSES)
            tta.save(s.run_dir(run) / f"predictions_{split}_tta.csv")
    return s


def test_reference_model_is_chosen_on_validation_not_test(study):
    assert study.reference_model(["a", "b"]) == "a"
    tests = study.paired_tests("a", ["b"])
    assert tests.loc[0, "comparison"] == "a - b"
    assert list(tests.columns) == [
        "comparison",
        "difference",
        "p (bootstrap)",
        "p (Holm)",
        "p (McNemar, images)",
    ]


def test_uncalibrated_runs_say_so_and_auc_is_the_raw_one(study):
    assert study.temperature("a") is None  # not calibrated: no silent 1.0
    before = study.headline("a")
    assert np.isnan(before["ece_calibrated"])
    assert study.comparison_table([before])["ECE (calibrated)"].item() == "not calibrated"
    assert "after" not in study.reliability_tables("a")
    study.calibrate("a")
    after = study.headline("a")
    assert study.temperature("a") > 1  # over-confident logits need T > 1
    assert after["ece_calibrated"] < after["ece_raw"]
    # one AUC per model, before and after 04 (temperature scaling may move a multi-class AUC)
    assert after["macro_auc"] == before["macro_auc"]


def test_tta_rows_use_their_own_temperature_and_threshold(study):
    study.calibrate("a")
    study.calibrate("a", tta=True)
    single, tta = study.temperature("a"), study.temperature("a", tta=True)
    assert tta == pytest.approx(single / 4, rel=0.05)  # the TTA logits are the single ones / 4
    assert study.headline("a", tta=True)["temperature"] == tta
    study.operating_points("a")
    study.operating_points("a", tta=True)
    assert (study.run_dir("a") / "thresholds_tta.json").is_file()
    assert (study.run_dir("a") / "thresholds.json").is_file()


def test_calibration_and_aurc_intervals_resample_the_lesions_of_the_predictions(study):
    """04's test errors and 08's AURC: intervals over the predictions' lesion ids, with the
    profile's ``evaluation.n_boot`` resamples, not over images."""
    n_boot = study.evaluation.n_boot
    table = study.calibrate("a")
    test, t = study.predictions("a"), study.temperature("a")
    after = table[(table["split"] == "test") & (table["stage"] == "after")].iloc[0]
    by_lesion = calibration_errors_ci(test.labels, test.probabilities(t), test.group, n_boot)
    by_image = calibration_errors_ci(test.labels, test.probabilities(t), None, n_boot)
    assert after[list(by_lesion)].to_dict() == pytest.approx(by_lesion)
    assert after["nll_low"] != pytest.approx(by_image["nll_low"])
    _, aurc = study.risk_coverage("a")
    tp = test.probabilities(t)
    _, expected = risk_coverage_by_confidence(test.labels, tp, test.group, n_boot)
    _, by_image = risk_coverage_by_confidence(test.labels, tp, None, n_boot)
    pd.testing.assert_frame_equal(aurc, expected)
    assert not np.allclose(aurc["aurc_low"], by_image["aurc_low"])


def test_operating_point_intervals_resample_lesions(study):
    table = study.operating_points("b")
    row = table.iloc[0]
    val, test = study.predictions("b", "val"), study.predictions("b", "test")
    t = row["temperature"]
    vt = positive_truth(val.labels, CLASSES, ["mel"])
    vs = positive_score(val.probabilities(t), CLASSES, ["mel"])
    tt = positive_truth(test.labels, CLASSES, ["mel"])
    ts = positive_score(test.probabilities(t), CLASSES, ["mel"])
    wilson = operating_point(vt, vs, tt, ts, ["mel"], "specificity", 0.9, t, ci="wilson")
    grouped = operating_point(
        vt, vs, tt, ts, ["mel"], "specificity", 0.9, t, test_groups=test.group, n_boot=50
    )
    assert row["test_sensitivity_low"] == pytest.approx(grouped.test_sensitivity_low)
    assert row["test_sensitivity_low"] != pytest.approx(wilson.test_sensitivity_low)


def test_imbalance_table_lists_what_each_arm_trained_with(study):
    settings = study.strategy_settings()
    assert settings.loc["none", "loss"] == "ce"
    assert settings.loc["focal", "loss"].startswith("focal")
    assert settings.loc["selection", "selection rate"] == 0.5


def test_each_run_trains_on_the_table_of_its_own_data_settings(study, monkeypatch):
    """A recipe that changes data.task, data.fold or data.split_seed gets its own table (once)."""
    prepared, trained = [], []

    def fake_prepare(cfg):
        prepared.append(cfg.data.split_seed)
        return pd.DataFrame({"split_seed": [cfg.data.split_seed]})

    monkeypatch.setattr(study_module, "prepare_table", fake_prepare)
    monkeypatch.setattr(study_module, "train", lambda cfg, table, resume: trained.append(table))
    base = study.profile.run_config("resnet18")
    other = apply_overrides(base, ["data.split_seed=7"])
    fed = apply_overrides(base, ["data.image_size=32", "data.num_workers=0"])
    for cfg in (base, other, fed, other):
        study.train(cfg)
    assert [t["split_seed"].item() for t in trained] == [0, 7, 0, 7]
    assert prepared == [0, 7]  # one table per distinct data setting; feeding changes share it
    assert study.table() is trained[0]  # the study's own table is the base config's


def test_table_settings_tell_tables_apart():
    base = Config()
    assert table_settings(base) == table_settings(apply_overrides(base, ["data.image_size=64"]))
    for change in ("data.task=binary", "data.fold=1", "data.split_seed=3"):
        assert table_settings(apply_overrides(base, [change])) != table_settings(base)


# --- a calibration split of the run's own (data.calibration_fraction > 0) -------------------------


def _give_calibration_split(study, run: str) -> Predictions:
    """Write a calibration split's predictions for ``run``: other images, other logits than its
    validation ones (less skilled, more over-confident), as training writes them."""
    p = skilled_predictions(np.random.default_rng(99), 240, 1.5, ids=np.arange(1000, 1240))
    cal = Predictions(p.image_id, [f"c{g}" for g in p.group], p.labels, 5 * p.logits, CLASSES)
    cal.save(study.run_dir(run) / "predictions_calibration.csv")
    return cal


def test_temperature_is_fitted_on_the_calibration_split_when_the_run_has_one(study):
    cal = _give_calibration_split(study, "a")
    val = study.predictions("a", "val")
    table = study.calibrate("a")
    on_cal = TemperatureScaler().fit(cal.logits, cal.labels).temperature_
    on_val = TemperatureScaler().fit(val.logits, val.labels).temperature_
    assert abs(on_cal - on_val) > 0.5  # the two splits ask for clearly different temperatures
    assert study.temperature("a") == pytest.approx(on_cal)
    assert read_json(study.run_dir("a") / "calibration.json")["fitted_on"] == "calibration"
    assert table["split"].unique().tolist() == ["calibration", "test"]
    assert study.posthoc_split("a") == "calibration" and study.posthoc_split("b") == "val"
    # a run without one is fitted on validation, as before
    study.calibrate("b")
    b_val = study.predictions("b", "val")
    assert study.temperature("b") == pytest.approx(
        TemperatureScaler().fit(b_val.logits, b_val.labels).temperature_
    )
    assert read_json(study.run_dir("b") / "calibration.json")["fitted_on"] == "val"


def test_thresholds_sets_and_deferral_fit_on_the_calibration_split(study):
    cal = _give_calibration_split(study, "a")
    study.calibrate("a")
    t = study.temperature("a")
    cp, test = cal.probabilities(t), study.predictions("a", "test")
    # 05: the stored threshold is chosen on the calibration split, and says so
    study.operating_points("a")
    point = RunFolder(study.run_dir("a")).operating_points()[0]
    truth, score = (
        positive_truth(cal.labels, CLASSES, ["mel"]),
        positive_score(cp, CLASSES, ["mel"]),
    )
    assert point.threshold == choose_threshold(truth, score, "specificity", 0.9)
    assert point.val_specificity >= 0.9
    assert RunFolder(study.run_dir("a")).thresholds_chosen_on() == "calibration"
    # 08: the stored sets are calibrated on the calibration lesions; deferral chosen there
    study.store_conformal("a")
    stored = RunFolder(study.run_dir("a")).conformal()
    expected = stored_conformal(cal, t, "lac", 0.9)
    assert stored.fitted_on == "calibration" and stored.quantiles == expected.quantiles
    assert "each calibration lesion weighs 1" in stored.grouping
    deferral = study.deferral("a")
    want = deferral_table(
        cal.labels, cp, test.labels, test.probabilities(t), test.group, 0.9, 50,
        coverages=study.profile.trust.deferral_coverages,
    )  # fmt: skip
    np.testing.assert_allclose(deferral["threshold"], want["threshold"])
    np.testing.assert_allclose(deferral["val_coverage"], want["val_coverage"])
    # a run without a calibration split: chosen on validation, thresholds.json as before
    study.calibrate("b")
    study.operating_points("b")
    record = read_json(study.run_dir("b") / "thresholds.json")
    assert "chosen_on" not in record and set(record) == {"operating_points", "applies_to"}
    assert RunFolder(study.run_dir("b")).thresholds_chosen_on() == "val"


def test_an_ensemble_of_runs_with_calibration_splits_calibrates_on_theirs(study):
    for run in ("a", "b"):
        _give_calibration_split(study, run)
        study.calibrate(run)
    (study.run_dir("a") / "split.csv").write_text("image_id\n")  # copied, not read
    study.build_ensemble(["a", "b"])
    ensemble = RunFolder(study.run_dir("ensemble"))
    assert ensemble.posthoc_split() == "calibration"
    assert ensemble.calibration()["fitted_on"] == "calibration"
    assert ensemble.thresholds_chosen_on() == "calibration"
    # the weights are still chosen on validation (each member's validation balanced accuracy)
    assert ensemble.ensemble()["weights"] == pytest.approx(
        ensemble_weights([study.predictions(r, "val") for r in ("a", "b")])
    )
