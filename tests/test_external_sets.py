"""Every run against every external set a profile names (external/sets.py)."""

from __future__ import annotations

import os

import pandas as pd
import pytest
from fixtures.builders import make_isic2018_folder, make_ph2_folder

from skinlib.runs import ledger
from skinlib.runs.folder import RunFolder


@pytest.fixture(scope="module")
def run(trained_run, tmp_path_factory):
    from fixtures.runs import copy_run

    return copy_run(trained_run, tmp_path_factory.mktemp("formatsrun"))


@pytest.mark.slow  # runs `skinlib evaluate` on the shared tiny run
def test_evaluate_external_sets_one_row_per_run_and_set(run, tmp_path):
    from skinlib.external.sets import evaluate_external_sets
    from skinlib.profile import EvaluationSettings

    make_isic2018_folder(tmp_path / "isic", "challenge", ("Test", "Validation"))
    make_ph2_folder(tmp_path / "ph2")
    settings = EvaluationSettings(
        n_boot=30,
        external=[
            {
                "name": "isic2018_val",
                "format": "isic2018",
                "root": str(tmp_path / "isic" / "ISIC2018_Task3_Validation_GroundTruth.csv"),
            },
            {"name": "ph2", "format": "ph2", "root": str(tmp_path / "ph2")},
        ],
    )
    table = evaluate_external_sets([run], settings, out_root=tmp_path / "ext")
    assert table[["set", "images", "classes_present"]].values.tolist() == [
        ["isic2018_val", 8, 7],
        ["ph2", 6, 2],
    ]
    assert (table["run"] == run.name).all()
    assert (table["balanced_accuracy_low"] <= table["balanced_accuracy"]).all()
    assert table["missing_classes"].tolist() == ["", "akiec bcc bkl df vasc"]
    assert table["caveat"].str.len().gt(50).all() and table["positive_auc"].between(0, 1).all()
    report = tmp_path / "ext" / run.name / "ph2" / "report.json"
    stamp = report.stat().st_mtime_ns
    again = evaluate_external_sets(run.parent, settings, out_root=tmp_path / "ext")  # the study
    assert report.stat().st_mtime_ns == stamp  # reused, not predicted again
    pd.testing.assert_frame_equal(table, again)
    looks = [x for x in ledger.read_looks(run.parent) if x.scored.startswith("external:")]
    assert [x.scored for x in looks[-4:]] == ["external:isic2018_val", "external:ph2"] * 2
    assert {x.config for x in looks[-4:]} == {RunFolder(run).fingerprint()}  # reused: looked at
    os.utime(run / "thresholds.json")  # a new operating point: evaluate again
    evaluate_external_sets([run], settings, out_root=tmp_path / "ext")
    assert report.stat().st_mtime_ns > stamp
