"""RunFolder on hand-made folders: names, explicit optional state, lifecycle, ensemble members
(runs/folder.py)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from skinlib.config import Config, apply_overrides
from skinlib.errors import DataError, SkinlibError
from skinlib.evaluation.predictions import Predictions
from skinlib.evaluation.thresholds import OperatingPoint, load_thresholds
from skinlib.io import write_json
from skinlib.runs.folder import RunFolder


def split_table() -> pd.DataFrame:
    rows = [
        {"image_id": f"I{i}", "group": f"L{i}", "label": "mel" if i % 2 else "nv", "split": split}
        for i, split in enumerate(["train"] * 4 + ["val"] * 2 + ["test"] * 2)
    ]
    return pd.DataFrame(rows)


def trained(folder: RunFolder) -> RunFolder:
    """Mark a folder as having a best checkpoint (its content is never read here)."""
    folder.checkpoint("best").parent.mkdir(parents=True, exist_ok=True)
    folder.checkpoint("best").write_bytes(b"")
    return folder


def test_file_names_and_tta_variants(tmp_path):
    run = RunFolder.of("study", "resnet18")
    assert run.path.parts[-2:] == ("study", "resnet18") and run.name == "resnet18"
    run = RunFolder(tmp_path)
    assert run.predictions_file("val").name == "predictions_val.csv"
    assert run.predictions_file("test", tta=True).name == "predictions_test_tta.csv"
    assert run.calibration_file(tta=True).name == "calibration_tta.json"
    assert run.thresholds_file().name == "thresholds.json"
    assert run.checkpoint("last").relative_to(tmp_path).as_posix() == "checkpoints/last.pt"


def test_missing_state_is_none_never_a_default(tmp_path):
    run = RunFolder(tmp_path)
    assert run.temperature() is None and run.calibration() is None
    assert run.operating_points() is None and run.conformal() is None
    assert run.ensemble() is None and not run.is_ensemble and not run.is_trained
    with pytest.raises(SkinlibError, match="meta.json not found"):
        run.meta()
    with pytest.raises(DataError, match="split.csv not found"):
        run.split_rows("test")


def test_temperature_round_trip_and_bad_files(tmp_path):
    run = RunFolder(tmp_path)
    run.write_temperature(1.7)
    run.write_temperature(2.5, tta=True)
    assert run.temperature() == 1.7 and run.temperature(tta=True) == 2.5
    assert run.calibration()["fitted_on"] == "val"
    assert run.calibration(tta=True)["fitted_on"] == "val (TTA predictions)"
    run.calibration_file().write_text('{"temp": 1.5}')
    with pytest.raises(DataError, match="no usable 'temperature'"):
        run.temperature()
    run.calibration_file().write_text('{"temperature": -1}')
    with pytest.raises(DataError, match="must be a positive number"):
        run.temperature()


def test_operating_points_keep_the_thresholds_schema(tmp_path):
    run = RunFolder(tmp_path)
    point = OperatingPoint(["mel"], "specificity", 0.9, 0.3, 1.2, 0.7, 0.91)
    run.write_operating_points([point], tta=True)
    assert run.operating_points() is None
    assert run.operating_points(tta=True)[0].threshold == 0.3
    # the file is the one skinlib.evaluation.thresholds reads and writes
    assert load_thresholds(run.thresholds_file(tta=True))[0].positive == ["mel"]
    run.thresholds_file().write_text(json.dumps({"points": []}))
    with pytest.raises(DataError, match="not a thresholds file"):
        run.operating_points()


def test_start_fresh_then_complete_with_that_config(tmp_path):
    cfg = apply_overrides(Config(), ["train.epochs=2"])
    run = RunFolder(tmp_path / "run")
    run.start_fresh(cfg, split_table())
    assert run.trained_with(cfg) and not run.trained_with(Config())
    assert not run.is_complete(cfg)  # no meta.json until training finishes
    assert list(run.split_rows("val")["image_id"]) == ["I4", "I5"]
    run.write_history(pd.DataFrame({"epoch": [1, 2], "train_loss": [0.9, 0.5]}))
    assert run.epochs_done() == 2 and list(run.history()["epoch"]) == [1, 2]
    run.write_meta({"status": "complete"})
    assert run.is_complete(cfg) and run.is_complete() and not run.is_complete(Config())
    run.tensorboard_dir.mkdir()
    run.start_fresh(cfg, split_table())  # training again forgets the old run
    assert not run.meta_file.exists() and not run.tensorboard_dir.exists()


def test_predictions_round_trip(tmp_path):
    run = RunFolder(tmp_path)
    preds = Predictions(
        ["a", "b"], ["a", "b"], [0, 1], np.array([[1.0, 0.0], [0.0, 2.0]]), ["x", "y"]
    )
    run.write_predictions(preds, "test", tta=True)
    back = run.predictions("test", tta=True)
    np.testing.assert_allclose(back.logits, preds.logits)
    with pytest.raises(FileNotFoundError):
        run.predictions("test")


def test_ensemble_members_by_name_and_older_files(tmp_path):
    a, b = trained(RunFolder(tmp_path / "a")), trained(RunFolder(tmp_path / "b"))
    ensemble = RunFolder(tmp_path / "ensemble")
    alone, weights = ensemble.ensemble_members()  # a plain folder answers alone
    assert [m.path for m in alone] == [ensemble.path] and weights == [1.0]
    ensemble.write_ensemble(["a", "b"], [0.6, 0.8], "mean of calibrated probabilities")
    members, weights = ensemble.ensemble_members()
    assert [m.path for m in members] == [a.path, b.path] and weights == [0.6, 0.8]
    assert ensemble.ensemble()["members"] == ["a", "b"]  # names: the study folder may move
    write_json(ensemble.ensemble_file, {"members": [str(a.path), "../b"]})  # as older versions
    members, weights = ensemble.ensemble_members()
    assert [m.path.resolve() for m in members] == [a.path.resolve(), b.path.resolve()]
    assert weights == [1.0, 1.0]


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"members": []}, "expected a list of run names"),
        ({"members": ["a", "missing"]}, "without checkpoints"),
        ({"members": ["a"], "weights": [1, 2]}, "one per member"),
        ({"members": ["a"], "weights": [-1]}, "non-negative"),
    ],
)
def test_bad_ensemble_files_name_the_problem(tmp_path, record, message):
    trained(RunFolder(tmp_path / "a"))
    ensemble = RunFolder(tmp_path / "ensemble")
    write_json(ensemble.ensemble_file, record)
    with pytest.raises(DataError, match=message):
        ensemble.ensemble_members()


def test_trained_in_lists_the_runs_with_a_best_checkpoint(tmp_path):
    for name in ("b", "a"):
        trained(RunFolder(tmp_path / name))
    (tmp_path / "ensemble").mkdir()
    assert [r.name for r in RunFolder.trained_in(tmp_path)] == ["a", "b"]


def test_a_metadata_run_keeps_its_inputs_beside_an_unchanged_split_file(tmp_path):
    table = split_table().assign(
        age=[30.0, None, 50.0, 70.0, 45.0, 60.0, None, 80.0],
        sex=["male", "female", None, "male", "female", "male", "female", None],
    )  # no site column: a set without sites
    folder = RunFolder(tmp_path / "run")
    folder.start_fresh(Config(), table)
    plain = folder.split_file.read_bytes()
    assert not folder.metadata_file.exists() and "age" not in folder.split_table()
    folder.start_fresh(apply_overrides(Config(), ["model.metadata=true"]), table)
    assert folder.split_file.read_bytes() == plain  # the same assignment, the same hash
    read = folder.split_table()
    assert list(read["image_id"]) == list(table["image_id"])
    pd.testing.assert_series_equal(read["age"], table["age"])
    assert read["sex"][:2].tolist() == ["male", "female"] and pd.isna(read["sex"][2])
    folder.start_fresh(Config(), table)  # retrained without metadata: the old inputs go
    assert not folder.metadata_file.exists()
