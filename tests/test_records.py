"""What the runs of a study recorded, read back: complete runs, the missing ones, the ledger
(thesis/records.py)."""

from __future__ import annotations

import shutil

from fixtures.studies import PROFILE

from skinlib import paths
from skinlib.profile import load_study_profile
from skinlib.thesis import records


def test_read_study_holds_each_complete_run_and_names_the_missing(study_dirs):
    profile = load_study_profile(study_dirs())
    shutil.rmtree(paths.run_dir("mini", "vit_tiny"))
    study = records.read_study(profile)
    assert [r.name for r in study.architectures] == ["resnet18"]
    assert "vit_tiny" in study.missing
    run = study.architectures[0]
    assert run.config.model.arch == "resnet18" and run.meta["seed"] == 0
    assert set(run.split["split"]) == {"train", "val", "test"} and len(run.split) == 60
    assert run.calibration["temperature"] == 1.5


def test_read_run_is_none_for_a_folder_that_did_not_finish(study_dirs):
    study_dirs()
    folder = paths.run_dir("mini", "resnet18")
    assert records.read_run(folder).name == "resnet18"
    (folder / "meta.json").unlink()
    assert records.read_run(folder) is None
    assert PROFILE["study"] == "mini"
