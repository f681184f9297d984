"""ISIC 2018 Task 3, HAM10000's official test set, read in both published releases (data/formats/isic2018.py)."""

from __future__ import annotations

import logging
import shutil

import pandas as pd
import pytest
from fixtures.builders import make_isic2018_folder

from skinlib.cli import main
from skinlib.data import load_table
from skinlib.data.classes import HAM10000_CLASSES
from skinlib.data.formats import FORMATS
from skinlib.data.formats.base import SCHEMA
from skinlib.errors import DataError


def _replace_line(path, number: int, line: str) -> None:
    lines = path.read_text().splitlines()
    lines[number - 1] = line
    path.write_text("\n".join(lines) + "\n")


TEST_CSV = "ISIC2018_Task3_Test_GroundTruth.csv"


VAL_CSV = "ISIC2018_Task3_Validation_GroundTruth.csv"


TEST_COUNTS = {"nv": 6, "mel": 2, "bkl": 2, "bcc": 1, "akiec": 1, "df": 1, "vasc": 1}


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
