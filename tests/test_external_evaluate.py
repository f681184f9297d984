"""One run tested on one external set: native layouts, the class mapping, the guard's counts, the ledger (external/evaluate.py)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fixtures.builders import make_isic2018_folder, make_ph2_folder
from fixtures.runs import copy_run
from PIL import Image

from skinlib.cli import main
from skinlib.data.synthetic import generate
from skinlib.errors import DataError
from skinlib.evaluation.predictions import Predictions
from skinlib.evaluation.thresholds import load_thresholds
from skinlib.runs import ledger
from skinlib.runs.folder import RunFolder


@pytest.fixture(scope="module")
def run(trained_run, tmp_path_factory):

    return copy_run(trained_run, tmp_path_factory.mktemp("formatsrun"))


@pytest.mark.slow  # runs `skinlib evaluate` on the shared tiny run
def test_evaluate_cli_on_ph2(run, tmp_path, capsys):
    root = make_ph2_folder(tmp_path / "data", labels=("txt",))
    out = tmp_path / "out"
    args = ["evaluate", "--run", str(run), "--data", str(root), "--format", "ph2"]
    assert main([*args, "--out", str(out), "--n-boot", "50"]) == 0
    assert "PH2 has only mel, nv (2 of the model's 7 classes)" in capsys.readouterr().out
    report = json.loads((out / "report.json").read_text())
    ext = report["external"]
    assert report["images"] == 6 and ext["counts"]["nv"] == 4 and ext["counts"]["mel"] == 2
    assert ext["missing_classes"] == ["akiec", "bcc", "bkl", "df", "vasc"]
    assert ext["groups"] == "image" and 0 <= ext["macro_f1_present"] <= 1
    pvr = ext["positive_vs_rest"]
    assert pvr["positive"] == ["mel"] and pvr["positives"] == 2 and 0 <= pvr["auc"] <= 1
    assert pvr["threshold"] == pytest.approx(load_thresholds(run / "thresholds.json")[0].threshold)
    assert report["operating_point"]["sensitivity"] == pytest.approx(pvr["sensitivity"])


@pytest.mark.slow  # runs `skinlib evaluate` on the shared tiny run
def test_evaluate_cli_on_isic2018_archive_with_a_missing_image(run, tmp_path, capsys):
    root = make_isic2018_folder(tmp_path / "data", "archive")
    (root / "ISIC2018_Task3_Test_Images" / "ISIC_0034529.jpg").unlink()
    args = ["evaluate", "--run", str(run), "--data", str(root), "--format", "isic2018"]
    args += ["--out", str(tmp_path / "out"), "--n-boot", "50"]
    assert main(args) == 2
    assert "line 7: image ISIC_0034529 not found" in capsys.readouterr().err
    assert main([*args, "--skip-missing"]) == 0
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["images"] == 13 and report["skipped_missing"] == 1
    assert report["external"]["groups"] == "lesion" and report["external"]["missing_classes"] == []


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """External validation caches image hashes under SKINLIB_CACHE: one cache per test."""
    monkeypatch.setenv("SKINLIB_CACHE", str(tmp_path / "cache"))


def new_dataset(folder: Path, prefix: str = "NEW") -> Path:
    """Give a SynthDerm folder ids and lesion ids of its own.

    SynthDerm numbers images ISIC_0024306... and lesions HAM_0000000... whatever the seed, so
    two SynthDerm sets would otherwise share ids (and the overlap guard drops shared ids).
    """
    for csv in folder.glob("*.csv"):
        csv.write_text(
            csv.read_text().replace("ISIC_", f"{prefix}_").replace("HAM_", f"{prefix}L_")
        )
    for image in [p for p in folder.rglob("ISIC_*") if p.suffix in (".jpg", ".png")]:
        image.rename(image.with_name(image.name.replace("ISIC_", f"{prefix}_")))
    return folder


def test_external_validation_maps_classes(run, tmp_path):
    other = generate(
        tmp_path / "isic",
        n=40,
        size=64,
        seed=9,
        classes="isic2019",
        layout="isic2019",
        balanced=True,
        progress=False,
    )
    new_dataset(other)
    from skinlib.external.evaluate import evaluate_external

    with pytest.raises(DataError, match=r"scc \(\d+ images\)"):
        evaluate_external(run, other, "isic2019", tmp_path / "bad")
    assert (
        main(
            [
                "evaluate",
                "--run",
                str(run),
                "--data",
                str(other),
                "--format",
                "isic2019",
                "--out",
                str(tmp_path / "bad"),
            ]
        )
        == 2
    )  # the CLI prints it as one line
    code = main(
        [
            "evaluate",
            "--run",
            str(run),
            "--data",
            str(other),
            "--format",
            "isic2019",
            "--out",
            str(tmp_path / "out"),
            "--drop-unmapped",
            "--n-boot",
            "50",
            "--tta",
        ]
    )
    assert code == 0
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["tta"] and 0 <= report["balanced_accuracy"] <= 1
    # the run's temperature and threshold were fitted on single-view predictions: TTA has its
    # own (calibration_tta.json, thresholds_tta.json, written by 07) or none
    assert not report["calibrated"] and report["temperature"] is None
    assert "operating_point" not in report
    preds = Predictions.load(tmp_path / "out" / "predictions.csv")
    assert len(preds.labels) == report["images"] < 40  # scc rows dropped
    args = ["evaluate", "--run", str(run), "--data", str(other), "--format", "isic2019"]
    assert (
        main([*args, "--out", str(tmp_path / "single"), "--drop-unmapped", "--n-boot", "50"]) == 0
    )
    single = json.loads((tmp_path / "single" / "report.json").read_text())
    assert single["calibrated"] and single["temperature"] > 0 and "operating_point" in single


def test_evaluating_on_the_training_folder_refuses(run, tmp_path, capsys):
    """Every image is the run's own (train, val or test): nothing external to score."""
    args = ["evaluate", "--run", str(run), "--data", str(run_data(run)), "--out", str(tmp_path)]
    assert main([*args, "--n-boot", "10"]) == 2
    captured = capsys.readouterr().err  # progress bars, then the message
    assert "Traceback" not in captured
    err = captured.strip().splitlines()[-1]
    split = pd.read_csv(run / "split.csv")
    n_test = int((split["split"] == "test").sum())
    assert err.startswith(f"skinlib evaluate: error: no external images in {run_data(run)}")
    assert f"dropped {len(split) - n_test} the run trained or was selected on" in err
    assert f"and {n_test} of its own test split; 0 external images remain" in err
    assert not (tmp_path / "report.json").exists()


def test_external_scores_only_images_the_run_never_saw(run, tmp_path, caplog):
    """A folder mixing the run's images, disguised copies and new images: only new ones count."""
    from skinlib.external.evaluate import evaluate_external

    split = pd.read_csv(run / "split.csv", dtype=str).set_index("image_id")
    trained = split.index[split["split"] == "train"][0]
    tested = split.index[split["split"] == "test"][0]
    mixed = tmp_path / "mixed"
    shutil.copytree(run_data(run), mixed)
    fresh = new_dataset(
        generate(tmp_path / "new", n=14, seed=5, size=96, balanced=True, workers=1, progress=False)
    )
    meta = pd.read_csv(mixed / "HAM10000_metadata.csv")
    new_meta = pd.read_csv(fresh / "HAM10000_metadata.csv")
    for image in fresh.glob("HAM10000_images_part_*/*.jpg"):
        shutil.copy(image, mixed / "HAM10000_images_part_1" / image.name)
    images = mixed / "HAM10000_images_part_1"
    train_image = Path(split.loc[trained, "path"])
    shutil.copy(train_image, images / "COPY_BYTES.jpg")  # same bytes, new id and lesion
    with Image.open(train_image) as image:  # resized and re-compressed: new bytes, same picture
        image.resize((60, 60)).save(images / "COPY_SMALL.jpg", quality=70)
    shutil.copy(Path(split.loc[tested, "path"]), images / "COPY_TEST.jpg")
    shutil.copy(next(fresh.glob("HAM10000_images_part_1/*.jpg")), images / "SIBLING.jpg")

    def row(image_id: str, like: str, lesion: str) -> dict:
        return {
            **meta.set_index("image_id").loc[like].to_dict(),
            "image_id": image_id,
            "lesion_id": lesion,
        }

    extra = pd.DataFrame(
        [
            row("COPY_BYTES", trained, "X1"),
            row("COPY_SMALL", trained, "X2"),
            row("COPY_TEST", tested, "X3"),
            row(
                "SIBLING", trained, split.loc[trained, "group"]
            ),  # another view of a trained lesion
        ]
    )
    pd.concat([meta, new_meta, extra]).to_csv(mixed / "HAM10000_metadata.csv", index=False)

    with caplog.at_level("INFO", logger="skinlib.external.guard"):
        summary = evaluate_external(run, mixed, "ham10000", tmp_path / "out", n_boot=20)

    n_test = int((split["split"] == "test").sum())
    assert summary["images"] == len(new_meta) == 14
    assert summary["overlap"] == {
        "checked": len(split) + 14 + 4,
        "dropped": len(split) + 4,
        "kept": 14,
        "train_val_by_reason": {
            "id": len(split) - n_test,
            "content": 1,
            "perceptual": 1,
            "group": 1,
        },
        "run_test": n_test + 1,
        "unhashed_external": 0,
        "unhashed_run": 0,
        "phash_max_distance": 28,
    }
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["overlap"] == summary["overlap"]
    preds = Predictions.load(tmp_path / "out" / "predictions.csv")
    assert sorted(preds.image_id) == sorted(new_meta["image_id"])
    excluded = pd.read_csv(tmp_path / "out" / "excluded.csv").set_index("image_id")
    assert excluded.loc[
        "COPY_SMALL", ["overlap_reason", "overlap_split", "overlap_image"]
    ].tolist() == [
        "perceptual",
        "train",
        trained,
    ]
    assert excluded.loc["SIBLING", "overlap_reason"] == "group"
    assert excluded.loc["COPY_TEST", ["overlap_reason", "overlap_split"]].tolist() == [
        "content",
        "test",
    ]
    assert len(excluded) == len(split) + 4
    assert f"dropped {len(split) - n_test + 3} the run trained or was selected on" in caplog.text
    assert "14 external images remain" in caplog.text


def test_scoring_an_external_set_is_a_look_in_the_study_ledger(run, tmp_path):
    fresh = new_dataset(
        generate(
            tmp_path / "fresh", n=14, seed=5, size=96, balanced=True, workers=1, progress=False
        )
    )
    before = len(ledger.read_looks(run.parent) or [])  # the module's other tests look too
    args = ["evaluate", "--run", str(run), "--data", str(fresh), "--format", "ham10000"]
    assert main([*args, "--out", str(tmp_path / "out"), "--n-boot", "20"]) == 0
    new = (ledger.read_looks(run.parent) or [])[before:]
    assert [(x.run, x.scored, x.tta, x.entry) for x in new] == [
        (run.name, "external:fresh", False, "skinlib evaluate")
    ]
    assert new[0].config == ledger.config_fingerprint(RunFolder(run).config())


def run_data(run: Path) -> Path:
    """The SynthDerm folder the tiny run was trained on (see fixtures.runs.build_tiny_run)."""
    return run.parents[2] / "synthderm"


@pytest.mark.parametrize("layout", ["ph2", "isic2018"])
def test_a_metadata_model_on_an_external_set_encodes_what_the_set_records(
    metadata_run, tmp_path, layout
):
    """PH2 records no age, sex or site: a metadata model scores it with the missing levels; the
    ISIC 2018 archive release records all three, encoded with the training split's vocabulary
    and statistics (a site the training split never had: unknown)."""
    import torch

    from skinlib.data.images import load_image
    from skinlib.evaluation.predictions import Predictions
    from skinlib.external.evaluate import evaluate_external
    from skinlib.external.guard import external_set
    from skinlib.models.checkpoint import load_model

    root = (
        make_ph2_folder(tmp_path / "data", labels=("txt",))
        if layout == "ph2"
        else make_isic2018_folder(tmp_path / "data", "archive")
    )
    run = copy_run(metadata_run, tmp_path / "copy")  # the evaluation writes to the study
    out = tmp_path / "out"
    evaluate_external(run, root, layout, out, n_boot=20, set_name=f"{layout}_test")
    preds = Predictions.load(out / "predictions.csv")
    loaded = load_model(run)
    table = external_set(loaded, root, layout, progress=False).table
    encoded = loaded.metadata.transform(table)
    if layout == "ph2":
        assert table[["age", "sex", "site"]].isna().all().all()
        assert (encoded == loaded.metadata.missing_row()).all()
    else:
        assert table["age"].notna().any() and not (encoded[:, 1] == 1).all()
    x = torch.stack([loaded.transform(load_image(p)) for p in table["path"]])
    with torch.no_grad():
        expected = loaded.model(x, torch.from_numpy(encoded)).numpy()
    np.testing.assert_allclose(preds.logits, expected, atol=1e-5)
