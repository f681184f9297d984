"""PH2 read from either of its label files in its native layout (data/formats/ph2.py)."""

from __future__ import annotations

import shutil

import openpyxl
import pandas as pd
import pytest
from fixtures.builders import PH2_DIR, make_ph2_folder

from skinlib.cli import main
from skinlib.data import load_table
from skinlib.data.classes import class_list
from skinlib.data.formats import FORMATS
from skinlib.data.formats.base import SCHEMA
from skinlib.errors import DataError

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
