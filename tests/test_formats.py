"""ISIC 2018 Task 3 (both releases) and PH2 (xlsx and txt) read in their native layouts; external
sets report what they can and cannot say."""

from __future__ import annotations

import json
import logging
import os
import shutil

import numpy as np
import openpyxl
import pandas as pd
import pytest
from fixtures.builders import PH2_DIR, make_isic2018_folder, make_ph2_folder
from sklearn.metrics import f1_score, roc_auc_score

from skinlib.cli import main
from skinlib.data import load_table
from skinlib.data.classes import HAM10000_CLASSES, class_list
from skinlib.data.formats import FORMATS
from skinlib.data.formats.base import SCHEMA
from skinlib.errors import ConfigError, DataError
from skinlib.evaluation.thresholds import load_thresholds, sens_spec
from skinlib.external.describe import (
    caveat,
    class_counts,
    positive_vs_rest,
    present_class_metrics,
)
from skinlib.profile import parse_external_sets
from skinlib.runs import ledger
from skinlib.runs.folder import RunFolder

TEST_CSV = "ISIC2018_Task3_Test_GroundTruth.csv"
VAL_CSV = "ISIC2018_Task3_Validation_GroundTruth.csv"
TEST_COUNTS = {"nv": 6, "mel": 2, "bkl": 2, "bcc": 1, "akiec": 1, "df": 1, "vasc": 1}
PH2_LABELS = {
    "IMD002": "nv",
    "IMD003": "nv",
    "IMD009": "nv",
    "IMD016": "nv",
    "IMD058": "mel",
    "IMD061": "mel",
}


def _edit_sheet(path, row: int, col: int, value) -> None:
    book = openpyxl.load_workbook(path)
    book.active.cell(row, col).value = value
    book.save(path)


def _replace_line(path, number: int, line: str) -> None:
    lines = path.read_text().splitlines()
    lines[number - 1] = line
    path.write_text("\n".join(lines) + "\n")


def test_every_format_has_a_reader_and_the_cli_offers_it():
    assert all(callable(f.read) and f.name == name for name, f in FORMATS.items())
    assert {"isic2018", "ph2"} <= set(FORMATS)
    with pytest.raises(SystemExit):  # argparse refuses an unknown format
        main(["validate", ".", "--format", "derm7pt"])


# --- ISIC 2018 Task 3 -----------------------------------------------------------------------


def test_isic2018_challenge_release(tmp_path):
    root = make_isic2018_folder(tmp_path, "challenge")
    assert (root / TEST_CSV).read_text().startswith("image,MEL,NV,BCC,AKIEC,BKL,DF,VASC\n")
    table = load_table(root, "isic2018")
    assert list(table.columns[: len(SCHEMA)]) == SCHEMA and len(table) == 14
    assert table["label"].value_counts().to_dict() == TEST_COUNTS
    # the first three rows of the real file: nv, nv, bkl
    assert table["label"].head(3).tolist() == ["nv", "nv", "bkl"]
    assert (table["group"] == table["image_id"]).all()  # no lesion ids in this release
    assert (table["source"] == "isic2018").all() and (
        table["isic2018_release"] == "challenge"
    ).all()
    assert all("ISIC2018_Task3_Test_Input" in p for p in table["path"])
    assert list(FORMATS["isic2018"].classes) == list(HAM10000_CLASSES) and "isic2018" in FORMATS


def test_isic2018_test_preferred_validation_by_file(tmp_path, caplog):
    root = make_isic2018_folder(tmp_path, "challenge", ("Test", "Validation"), zip_folders=True)
    assert (root / "ISIC2018_Task3_Test_GroundTruth" / TEST_CSV).is_file()  # as unzipped
    with caplog.at_level(logging.INFO):
        table = load_table(root, "isic2018")
    assert table["image_id"].iloc[0] == "ISIC_0034524" and len(table) == 14
    assert "reading Test" in caplog.text and VAL_CSV in caplog.text
    val = load_table(root / "ISIC2018_Task3_Validation_GroundTruth" / VAL_CSV, "isic2018")
    assert len(val) == 8 and val["image_id"].iloc[0] == "ISIC_0034321"
    assert set(val["label"]) == set(HAM10000_CLASSES)
    assert all("ISIC2018_Task3_Validation_Input" in p for p in val["path"])


def test_isic2018_archive_release_matches_challenge(tmp_path):
    challenge = load_table(make_isic2018_folder(tmp_path / "c", "challenge"), "isic2018")
    root = make_isic2018_folder(tmp_path / "a", "archive")
    header = (root / TEST_CSV).read_text().splitlines()[0]
    assert header == "lesion_id,image_id,dx,dx_type,age,sex,localization,dataset"
    table = load_table(root, "isic2018")
    assert table["label"].tolist() == challenge["label"].tolist()  # one truth, two releases
    assert (table["isic2018_release"] == "archive").all()
    assert table["group"].nunique() == 12  # two lesions imaged twice
    by_id = table.set_index("image_id")
    assert by_id.loc["ISIC_0034527", "group"] == by_id.loc["ISIC_0034528", "group"]
    assert by_id.loc["ISIC_0034530", ["age", "sex", "site"]].isna().all()
    assert by_id.loc["ISIC_0034529", "dataset"] == "rosendahl"
    assert all("ISIC2018_Task3_Test_Images" in p for p in table["path"])


@pytest.mark.parametrize("layout", ["nested", "any_folder"])
def test_isic2018_archive_images_nested_or_renamed(tmp_path, layout):
    root = make_isic2018_folder(tmp_path, "archive")
    images = root / "ISIC2018_Task3_Test_Images"
    if layout == "nested":  # some unzippers add a level
        shutil.move(images, tmp_path / "tmp")
        images.mkdir()
        shutil.move(tmp_path / "tmp", images / images.name)
    else:
        images.rename(root / "test_jpegs")
    assert load_table(root, "isic2018")["path"].notna().all()


def test_isic2018_malformed_files_name_file_and_line(tmp_path):
    root = make_isic2018_folder(tmp_path, "challenge")
    csv = root / TEST_CSV
    _replace_line(csv, 3, "ISIC_0034525,1.0,1.0,0.0,0.0,0.0,0.0,0.0")
    with pytest.raises(DataError) as err:
        load_table(root, "isic2018")
    assert str(err.value).startswith(f"{csv}, line 3: image ISIC_0034525 has 2 classes marked")
    assert "['MEL', 'NV']" in str(err.value)
    _replace_line(csv, 3, "ISIC_0034525,0.0,0.5,0.0,0.0,0.0,0.0,0.0")
    with pytest.raises(DataError, match=r"line 3: image ISIC_0034525 has 0 classes marked"):
        load_table(root, "isic2018")
    _replace_line(csv, 1, "image,MEL,NV,BCC,AK,BKL,DF,VASC")  # ISIC 2019's AK, not AKIEC
    with pytest.raises(DataError) as err:
        load_table(root, "isic2018")
    assert str(err.value).startswith(f"{csv}: header ['image', 'MEL', 'NV', 'BCC', 'AK'")
    assert "challenge release's" in str(err.value) and "archive release's" in str(err.value)
    csv.unlink()
    with pytest.raises(DataError, match=r"no ISIC 2018 Task 3 ground truth .*Test_GroundTruth"):
        load_table(root, "isic2018")


def test_isic2018_archive_bad_dx_and_missing_image(tmp_path):
    root = make_isic2018_folder(tmp_path, "archive")
    csv = root / TEST_CSV
    (root / "ISIC2018_Task3_Test_Images" / "ISIC_0034529.jpg").unlink()  # line 7
    with pytest.raises(DataError) as err:
        load_table(root, "isic2018")
    assert str(err.value).startswith(f"{csv}, line 7: image ISIC_0034529 not found in")
    table = load_table(root, "isic2018", skip_missing=True)  # the Dataverse zip lacks one image
    assert len(table) == 13 and table.attrs["skipped_missing"] == 1
    lines = csv.read_text().splitlines()
    lines[3] = lines[3].replace(",bkl,", ",keratosis,")
    csv.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"line 4: unknown dx 'keratosis' for image ISIC_0034526"):
        load_table(root, "isic2018", skip_missing=True)


@pytest.mark.parametrize("release", ["challenge", "archive"])
def test_validate_cli_isic2018(tmp_path, release, capsys):
    root = make_isic2018_folder(tmp_path / "data", release)
    report = tmp_path / "report.csv"
    args = ["validate", str(root), "--format", "isic2018", "--report", str(report)]
    assert main(args) == 0 and "no problems found" in capsys.readouterr().out
    if release == "challenge":
        _replace_line(root / TEST_CSV, 5, "ISIC_0034527,0.0,0.0,0.0,0.0,0.0,0.0,0.0")
    else:
        (root / "ISIC2018_Task3_Test_Images" / "ISIC_0034527.jpg").unlink()
    assert main(args) == 1
    rows = pd.read_csv(report)
    assert rows[["row", "problem"]].values.tolist() == [
        [5, "onehot" if release == "challenge" else "missing_image"]
    ]
    assert rows["file"].item() == str(root / TEST_CSV)


# --- PH2 ------------------------------------------------------------------------------------


def test_ph2_fixture_keeps_the_published_layout():
    sheet = openpyxl.load_workbook(PH2_DIR / "PH2_dataset.xlsx").active
    assert sheet.cell(12, 3).value == "Clinical Diagnosis" and sheet.cell(12, 12).value == "Colors"
    assert [sheet.cell(13, c).value for c in range(1, 6)] == [
        "Image Name",
        "Histological Diagnosis",
        "Common Nevus",
        "Atypical Nevus",
        "Melanoma",
    ]
    # what public readers do: pd.read_excel(..., header=12)
    frame = pd.read_excel(PH2_DIR / "PH2_dataset.xlsx", header=12)
    assert frame["Image Name"].tolist() == list(PH2_LABELS)
    assert frame.loc[frame["Melanoma"] == "X", "Image Name"].tolist() == ["IMD058", "IMD061"]
    header = (PH2_DIR / "PH2_dataset.txt").read_text().splitlines()[0]
    assert header.startswith("||   Name || Histological Diagnosis || Clinical Diagnosis || ")


@pytest.mark.parametrize("labels", ["xlsx", "txt"])
def test_ph2_reads_either_label_file(tmp_path, labels):
    root = make_ph2_folder(tmp_path, labels=(labels,))
    table = load_table(root, "ph2")
    assert list(table.columns[: len(SCHEMA)]) == SCHEMA
    assert dict(zip(table["image_id"], table["label"], strict=True)) == PH2_LABELS
    assert table["diagnosis"].tolist() == [
        "Atypical Nevus",
        "Common Nevus",
        "Common Nevus",
        "Atypical Nevus",
        "Melanoma",
        "Melanoma",
    ]
    assert table["histology"].isna().sum() == 4 and table["histology"].iloc[4] == "Melanoma"
    assert (table["group"] == table["image_id"]).all() and (table["source"] == "ph2").all()
    first = table.iloc[0]
    assert first["path"].endswith("PH2 Dataset images/IMD002/IMD002_Dermoscopic_Image/IMD002.bmp")
    assert first["mask_path"].endswith("IMD002_lesion/IMD002_lesion.bmp")
    assert list(FORMATS["ph2"].classes) == ["mel", "nv"] == class_list(table)
    # the PH2Dataset folder and the label file itself work as roots too
    assert len(load_table(root / "PH2Dataset", "ph2")) == 6
    assert len(load_table(root / "PH2Dataset" / f"PH2_dataset.{labels}", "ph2")) == 6


def test_ph2_xlsx_malformed_rows_and_header(tmp_path):
    root = make_ph2_folder(tmp_path, labels=("xlsx",))
    xlsx = root / "PH2Dataset" / "PH2_dataset.xlsx"
    _edit_sheet(xlsx, 15, 5, "X")  # IMD003: common nevus and melanoma
    with pytest.raises(DataError) as err:
        load_table(root, "ph2")
    assert str(err.value).startswith(f"{xlsx}, row 15: image IMD003 has 2 clinical diagnoses")
    _edit_sheet(xlsx, 15, 3, None)
    _edit_sheet(xlsx, 15, 5, None)
    with pytest.raises(DataError, match=r"row 15: image IMD003 has 0 clinical diagnoses marked"):
        load_table(root, "ph2")
    _edit_sheet(xlsx, 15, 3, "yes")
    with pytest.raises(DataError, match=r"row 15: .*\{'Common Nevus': 'yes'\}.* with X"):
        load_table(root, "ph2")
    _edit_sheet(xlsx, 13, 5, "Melanomas")
    with pytest.raises(
        DataError, match=r"PH2_dataset.xlsx, row 13: missing column\(s\) \['Melanoma'\]"
    ):
        load_table(root, "ph2")
    _edit_sheet(xlsx, 13, 1, "Image")
    with pytest.raises(DataError, match=r"PH2_dataset.xlsx: no header row with an 'Image Name'"):
        load_table(root, "ph2")
    xlsx.write_text("not a workbook")
    with pytest.raises(DataError, match="cannot be read as an Excel workbook"):
        load_table(root, "ph2")


def test_ph2_txt_malformed_rows_and_missing_image(tmp_path):
    root = make_ph2_folder(tmp_path, labels=("txt",))
    txt = root / "PH2Dataset" / "PH2_dataset.txt"
    original = txt.read_text()
    txt.write_text(original.replace("|| IMD003 ||                        ||                  0 ||",
                                    "|| IMD003 ||                        ||                  3 ||"))  # fmt: skip
    with pytest.raises(DataError) as err:
        load_table(root, "ph2")
    assert str(err.value).startswith(f"{txt}, line 3: image IMD003: Clinical Diagnosis '3' is not")
    txt.write_text(original.replace("|| IMD009 ||                        ||", "|| IMD009 ||"))
    with pytest.raises(DataError, match=r"line 4: image IMD009: 4 cells where the header has 5"):
        load_table(root, "ph2")
    txt.write_text(original.replace("Clinical Diagnosis ||", "Diagnosis ||", 1))
    with pytest.raises(DataError, match=r"PH2_dataset.txt, line 1: missing column 'Clinical"):
        load_table(root, "ph2")
    txt.write_text(original)
    image = root / "PH2Dataset" / "PH2 Dataset images" / "IMD016" / "IMD016_Dermoscopic_Image"
    (image / "IMD016.bmp").unlink()
    with pytest.raises(DataError, match=r"PH2_dataset.txt, line 5: image IMD016 not found in .*"):
        load_table(root, "ph2")
    shutil.rmtree(root / "PH2Dataset" / "PH2 Dataset images")
    assert len(load_table(root, "ph2", require_images=False)) == 6
    txt.unlink()
    with pytest.raises(DataError, match=r"neither PH2_dataset.xlsx nor PH2_dataset.txt found"):
        load_table(root, "ph2")


def test_validate_cli_ph2(tmp_path, capsys):
    root = make_ph2_folder(tmp_path / "data")
    report = tmp_path / "report.csv"
    args = ["validate", str(root), "--format", "ph2", "--report", str(report)]
    assert main(args) == 0
    _edit_sheet(root / "PH2Dataset" / "PH2_dataset.xlsx", 18, 4, "X")  # IMD058: + atypical nevus
    bmp = root / "PH2Dataset" / "PH2 Dataset images" / "IMD061" / "IMD061_Dermoscopic_Image"
    (bmp / "IMD061.bmp").write_bytes(b"")
    assert main(args) == 1
    out = capsys.readouterr().out
    assert "PH2_dataset.xlsx, line 18: image IMD058 has 2 clinical diagnoses" in out
    rows = pd.read_csv(report).sort_values("problem")
    assert rows["problem"].tolist() == ["empty_file", "unknown_label"]
    assert rows["row"].tolist()[1] == 18 and rows["file"].str.endswith(".bmp").tolist()[0]


# --- what an external set can say -----------------------------------------------------------

CLASSES = list(HAM10000_CLASSES)  # akiec bcc bkl df mel nv vasc
MEL, NV = CLASSES.index("mel"), CLASSES.index("nv")


def _ph2_like(n=40, seed=0):
    """Labels nv/mel only; probabilities over 7 classes, melanoma scored higher on melanomas."""
    rng = np.random.default_rng(seed)
    labels = np.where(rng.random(n) < 0.3, MEL, NV)
    logits = rng.normal(size=(n, 7))
    logits[:, MEL] += 2.0 * (labels == MEL)
    proba = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return labels, proba


def test_present_class_metrics_on_a_two_class_set():
    labels, proba = _ph2_like()
    assert class_counts(labels, CLASSES) == {
        **dict.fromkeys(CLASSES, 0),
        "mel": int((labels == MEL).sum()),
        "nv": int((labels == NV).sum()),
    }
    out = present_class_metrics(labels, proba, CLASSES)
    assert out["present_classes"] == ["mel", "nv"]
    assert out["missing_classes"] == ["akiec", "bcc", "bkl", "df", "vasc"]
    pred = proba.argmax(1)
    expected = f1_score(labels, pred, labels=[MEL, NV], average="macro", zero_division=0)
    assert out["macro_f1_present"] == pytest.approx(expected)
    assert out["macro_f1_present"] > f1_score(labels, pred, average="macro", zero_division=0)
    assert out["predicted_absent"] == pytest.approx(np.mean(~np.isin(pred, [MEL, NV])))


def test_positive_vs_rest_matches_sklearn_and_the_threshold():
    labels, proba = _ph2_like(60, seed=1)
    out = positive_vs_rest(labels, proba, CLASSES, None, ["mel"], threshold=0.2, n_boot=200)
    truth = labels == MEL
    assert out["auc"] == pytest.approx(roc_auc_score(truth, proba[:, MEL]))
    assert out["auc_low"] < out["auc"] < out["auc_high"]
    sens, spec = sens_spec(truth, proba[:, MEL], 0.2)
    assert (out["sensitivity"], out["specificity"]) == pytest.approx((sens, spec))
    assert out["sensitivity_low"] <= sens <= out["sensitivity_high"]
    assert out["positives"] == truth.sum() and out["images"] == 60
    only_nevi = positive_vs_rest(np.full(5, NV), proba[:5], CLASSES, None, ["mel"], n_boot=10)
    assert np.isnan(only_nevi["auc"]) and only_nevi["positives"] == 0


def test_caveat_says_what_is_comparable():
    two = caveat("ph2", {c: (5 if c in ("mel", "nv") else 0) for c in CLASSES}, ["mel"], False)
    assert two.startswith("PH2 has only mel, nv (2 of the model's 7 classes)")
    assert "not comparable with the internal test" in two and "mel-vs-rest AUC" in two
    assert "resample images" in two and "atypical nevi" in two
    no_threshold = caveat("ph2", {"mel": 2, "nv": 3, "bkl": 0}, ["mel"], True, threshold=False)
    assert "the mel-vs-rest AUC is." in no_threshold and "stored threshold" not in no_threshold
    no_mel = caveat("folder", {"mel": 0, "nv": 3, "bkl": 4}, ["mel"], True)
    assert "it has no mel images, so only the specificity at the stored threshold is" in no_mel
    full = caveat("isic2018", dict.fromkeys(CLASSES, 3), ["mel"], True)
    assert full.startswith("ISIC 2018 Task 3 has all 7 of the model's classes")
    assert "resample images" not in full and "official test set" in full


def test_profile_external_sets(tmp_path):
    from skinlib.profile import load_study_profile

    profile = tmp_path / "p.yaml"
    profile.write_text(
        "evaluation:\n  external:\n"
        "    - {name: isic2018_test, format: isic2018, root: data/ISIC2018}\n"
        "    - {name: ph2, format: ph2, root: /data/PH2Dataset/PH2_dataset.txt}\n"
    )
    sets = load_study_profile(profile).evaluation.external
    assert [(s.name, s.format, s.skip_missing) for s in sets] == [
        ("isic2018_test", "isic2018", False),
        ("ph2", "ph2", False),
    ]
    assert (
        sets[0].path().is_absolute() and str(sets[1].path()) == "/data/PH2Dataset/PH2_dataset.txt"
    )
    assert load_study_profile("params/demo.yaml").evaluation.external == []
    for bad, message in [
        ([{"name": "a", "format": "ph3", "root": "x"}], "unknown format 'ph3'"),
        ([{"name": "a", "format": "ph2"}], r"missing key\(s\) \['root'\]"),
        ([{"name": "a", "format": "ph2", "root": "x", "tta": True}], r"unknown key\(s\) \['tta'\]"),
        ([{"name": "a", "format": "ph2", "root": "x"}] * 2, r"\['a'\] used twice"),
        (["ph2"], "expected a mapping"),
    ]:
        with pytest.raises(ConfigError, match=message):
            parse_external_sets(bad)


# --- skinlib evaluate on the native layouts ------------------------------------------------


@pytest.fixture(scope="module")
def run(trained_run, tmp_path_factory):
    from fixtures.runs import copy_run

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
                "root": str(tmp_path / "isic" / VAL_CSV),
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
