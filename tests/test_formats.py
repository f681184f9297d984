"""Dataset formats: the registry and the readers of HAM10000, ISIC 2019, ISIC 2020 and folders read the real layouts into the common schema and refuse bad input clearly."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
from fixtures.builders import (
    HAM_CSV,
    make_class_folders,
    make_ham10000_folder,
    write_dicom,
)

from skinlib.cli import main
from skinlib.data import load_table
from skinlib.data.classes import (
    MALIGNANT,
    canonical,
    class_list,
    map_labels,
    merge_tables,
    to_binary,
)
from skinlib.data.formats import FORMATS
from skinlib.data.formats.base import SCHEMA
from skinlib.errors import DataError

# --- the four formats -----------------------------------------------------------------------


def test_ham10000_real_metadata_without_images():
    table = load_table(HAM_CSV, require_images=False)
    assert list(table.columns[: len(SCHEMA)]) == SCHEMA
    assert len(table) == 10015 and table["group"].nunique() == 7470
    assert table["label"].value_counts().to_dict() == {
        "nv": 6705,
        "mel": 1113,
        "bkl": 1099,
        "bcc": 514,
        "akiec": 327,
        "vasc": 142,
        "df": 115,
    }
    assert table["age"].isna().sum() == 57 and table["age"].dtype == float
    assert table["sex"].isna().sum() == 57 and set(table["sex"].dropna()) == {"male", "female"}
    assert table["site"].isna().sum() == 234  # localization "unknown"
    assert (table["source"] == "ham10000").all() and table["path"].isna().all()
    assert {"dx_type", "localization", "lesion_id"} <= set(table.columns)  # own columns kept


def test_ham10000_images_over_both_parts(ham_folder):
    table = load_table(ham_folder, "ham10000")
    assert len(table) == 50 and table["path"].notna().all()
    assert {p.split("/")[-2] for p in table["path"]} == {
        "HAM10000_images_part_1",
        "HAM10000_images_part_2",
    }
    assert (table["group"] == table["lesion_id"]).all()
    assert all(
        p.endswith(f"{i}.jpg") for p, i in zip(table["path"], table["image_id"], strict=True)
    )
    assert "mask_path" not in table


@pytest.mark.parametrize("folder", ["images", "HAM10000_images", "."])
def test_ham10000_images_in_one_folder(tmp_path, folder):
    table = load_table(make_ham10000_folder(tmp_path, 6, one_folder=folder))
    assert table["path"].notna().all() and len(table) == 6


def test_ham10000_masks_and_newer_release_column(tmp_path):
    root = make_ham10000_folder(tmp_path, 8, masks=True)
    (root / "HAM10000_segmentations_lesion_tschandl" / "ISIC_0027419_segmentation.png").unlink()
    meta = pd.read_csv(root / "HAM10000_metadata.csv")
    meta["dataset"] = "vidir_modern"  # the newer release appends this column
    meta.to_csv(root / "HAM10000_metadata.csv", index=False)
    table = load_table(root)
    assert (table["dataset"] == "vidir_modern").all()
    assert table["mask_path"].isna().sum() == 1
    assert table.loc[table["image_id"] == "ISIC_0027419", "mask_path"].isna().item()


def test_isic2019_crlf_01_fixture(isic2019_folder):
    raw = (isic2019_folder / "ISIC_2019_Training_GroundTruth.csv").read_bytes()
    assert raw.count(b"\r\n") == 33  # the fixture keeps the real file's CRLF
    table = load_table(isic2019_folder, "isic2019")
    assert list(table.columns[: len(SCHEMA)]) == SCHEMA and len(table) == 32
    assert table["label"].value_counts().to_dict() == {
        "nv": 8,
        "mel": 5,
        "bkl": 5,
        "df": 3,
        "bcc": 3,
        "vasc": 3,
        "akiec": 3,
        "scc": 2,
    }
    by_id = table.set_index("image_id")
    assert by_id.loc["ISIC_0000017_downsampled", "label"] == "nv"
    assert by_id.loc["ISIC_0000022_downsampled", "path"].endswith("ISIC_0000022_downsampled.jpg")
    # one HAM10000 lesion imaged three times is one group; MSK rows (no lesion id) stand alone
    assert (
        by_id.loc[["ISIC_0026016", "ISIC_0029505", "ISIC_0031277"], "group"] == "HAM_0003789"
    ).all()
    assert by_id.loc["ISIC_0000000", "group"] == "ISIC_0000000"
    assert by_id.loc["ISIC_0000000", "age"] == 45.0
    # the last image has no metadata row: its own group, unknown age
    last = table.iloc[-1]
    assert last["group"] == last["image_id"] and np.isnan(last["age"])


def test_isic2019_lf_float_onehot_and_no_metadata(isic2019_folder):
    reference = load_table(isic2019_folder, "isic2019")
    csv = isic2019_folder / "ISIC_2019_Training_GroundTruth.csv"
    rows = pd.read_csv(csv)
    lines = ["image,MEL,NV,BCC,AK,BKL,DF,VASC,SCC,UNK"]
    lines += [
        ",".join([r.iloc[0], *(f"{float(v):.1f}" for v in r.iloc[1:])]) for _, r in rows.iterrows()
    ]
    csv.write_text("\n".join(lines) + "\n")
    assert ",1.0,0.0," in csv.read_text() and "\r" not in csv.read_text()
    (isic2019_folder / "ISIC_2019_Training_Metadata.csv").unlink()  # metadata is optional
    table = load_table(isic2019_folder, "isic2019")
    assert table["label"].tolist() == reference["label"].tolist()
    assert (table["group"] == table["image_id"]).all() and table["age"].isna().all()


def test_isic2020_binary_grouped_by_patient(isic2020_folder):
    table = load_table(isic2020_folder, "isic2020")
    assert list(table.columns[: len(SCHEMA)]) == SCHEMA
    assert table["label"].value_counts().to_dict() == {"other": 13, "mel": 2}
    assert table.loc[table["image_id"] == "ISIC_0149568", "group"].item() == "IP_0962375"
    assert table["group"].nunique() == 11  # 15 images of 11 patients
    assert table["diagnosis"].iloc[2] == "nevus"  # own columns kept
    assert table["age"].isna().sum() == 4 and table["sex"].isna().sum() == 2
    assert class_list(table) == ["other", "mel"] == list(FORMATS["isic2020"].classes)


def test_isic2020_dicom_accepted_jpeg_preferred(isic2020_folder):
    pixels = np.full((8, 8, 3), 90, np.uint8)
    write_dicom(isic2020_folder / "train" / "ISIC_0015719.dcm", pixels)  # beside its JPEG
    (isic2020_folder / "train" / "ISIC_2637011.jpg").unlink()
    write_dicom(isic2020_folder / "train" / "ISIC_2637011.dcm", pixels)  # DICOM only
    by_id = load_table(isic2020_folder, "isic2020").set_index("image_id")["path"]
    assert by_id["ISIC_2637011"].endswith(".dcm") and by_id["ISIC_0015719"].endswith(".jpg")


def test_folder_per_class_maps_aliases(tmp_path):
    root = make_class_folders(
        tmp_path,
        {
            "melanoma": ["a.png", "b.jpg"],
            "NV": ["c.jpg", "d.bmp"],
            "AK": ["e.tif"],
            "odd lesions": ["f.tiff", "g.jpeg"],
        },
    )
    (root / "NV" / "notes.txt").write_text("not an image, ignored")
    table = load_table(root, "folder")
    assert list(table.columns[: len(SCHEMA)]) == SCHEMA
    assert table.groupby("label")["image_id"].apply(sorted).to_dict() == {
        "akiec": ["e"],
        "mel": ["a", "b"],
        "nv": ["c", "d"],
        "odd lesions": ["f", "g"],
    }
    assert (table["group"] == table["image_id"]).all() and (table["source"] == "folder").all()
    assert class_list(table) == ["akiec", "mel", "nv", "odd lesions"]


# --- malformed input: each error names the file and the row -------------------------------


def test_missing_column_lists_expected_and_found(ham_folder):
    meta = pd.read_csv(ham_folder / "HAM10000_metadata.csv").drop(columns="dx")
    meta.to_csv(ham_folder / "HAM10000_metadata.csv", index=False)
    with pytest.raises(DataError) as err:
        load_table(ham_folder)
    msg = str(err.value)
    assert "HAM10000_metadata.csv" in msg and "missing column(s) ['dx']" in msg
    assert "expected ['lesion_id', 'image_id', 'dx'," in msg
    assert "found ['lesion_id', 'image_id', 'dx_type'," in msg


def test_isic2020_header_must_match(isic2020_folder):
    csv = isic2020_folder / "ISIC_2020_Training_GroundTruth.csv"
    csv.write_text(csv.read_text().replace("patient_id", "patient"))
    with pytest.raises(
        DataError, match=r"ISIC_2020_Training_GroundTruth.csv: missing column\(s\) \['patient_id'\]"
    ):
        load_table(isic2020_folder, "isic2020")


def test_unknown_dx_names_file_and_line(ham_folder):
    meta = pd.read_csv(ham_folder / "HAM10000_metadata.csv")
    meta.loc[4, "dx"] = "melanoma?"  # data row 5 = line 6 of the file
    meta.to_csv(ham_folder / "HAM10000_metadata.csv", index=False)
    with pytest.raises(DataError, match=r"HAM10000_metadata.csv, line 6: unknown dx 'melanoma\?'"):
        load_table(ham_folder)


def test_onehot_row_with_two_ones_names_line_and_image(isic2019_folder):
    csv = isic2019_folder / "ISIC_2019_Training_GroundTruth.csv"
    lines = csv.read_bytes().split(b"\r\n")
    lines[3] = b"ISIC_0000002,1,1,0,0,0,0,0,0,0"
    csv.write_bytes(b"\r\n".join(lines))
    with pytest.raises(DataError) as err:
        load_table(isic2019_folder, "isic2019")
    assert str(err.value).startswith(f"{csv}, line 4: image ISIC_0000002 has 2 classes marked")
    assert "['MEL', 'NV']" in str(err.value)


def test_onehot_row_with_no_one(isic2019_folder):
    csv = isic2019_folder / "ISIC_2019_Training_GroundTruth.csv"
    csv.write_bytes(csv.read_bytes().replace(b"ISIC_0000001,0,1,", b"ISIC_0000001,0,0,"))
    with pytest.raises(DataError, match=r"line 3: image ISIC_0000001 has 0 classes marked"):
        load_table(isic2019_folder, "isic2019")


def test_unk_is_an_error_only_when_used(isic2019_folder):
    csv = isic2019_folder / "ISIC_2019_Training_GroundTruth.csv"
    assert len(load_table(isic2019_folder, "isic2019")) == 32  # UNK column present, all 0
    csv.write_bytes(
        csv.read_bytes().replace(
            b"ISIC_0000003,0,1,0,0,0,0,0,0,0", b"ISIC_0000003,0,0,0,0,0,0,0,0,1"
        )
    )
    with pytest.raises(DataError, match=r"line 5: image ISIC_0000003 is labelled UNK"):
        load_table(isic2019_folder, "isic2019")


def test_missing_image_is_named_or_skipped(ham_folder, caplog):
    victim = ham_folder / "HAM10000_images_part_2" / "ISIC_0027419.jpg"  # data row 1
    victim.unlink()
    with pytest.raises(DataError) as err:
        load_table(ham_folder)
    assert "HAM10000_metadata.csv, line 2: image ISIC_0027419 not found" in str(err.value)
    with caplog.at_level(logging.WARNING):
        table = load_table(ham_folder, skip_missing=True)
    assert len(table) == 49 and table.attrs["skipped_missing"] == 1
    assert "ISIC_0027419" not in set(table["image_id"]) and "skipping 1 rows" in caplog.text


def test_duplicate_image_id_names_the_line(ham_folder):
    meta = pd.read_csv(ham_folder / "HAM10000_metadata.csv")
    pd.concat([meta, meta.iloc[[0]]]).to_csv(ham_folder / "HAM10000_metadata.csv", index=False)
    with pytest.raises(DataError, match=r"line 52: image id ISIC_0027419 appears more than once"):
        load_table(ham_folder)


def test_wrong_format_missing_folder_and_unknown_format(ham_folder, tmp_path):
    with pytest.raises(
        DataError, match=r"ISIC_2019_Training_GroundTruth.csv not found .*HAM10000_metadata.csv"
    ):
        load_table(ham_folder, "isic2019")
    with pytest.raises(DataError, match="unknown dataset format 'derm7pt'"):
        load_table(tmp_path, "derm7pt")
    with pytest.raises(DataError, match="does not exist"):
        load_table(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images found"):
        load_table(tmp_path / "empty", "folder")


# --- vocabularies ---------------------------------------------------------------------------


def test_aliases():
    assert [canonical(n) for n in ["MEL", "Melanoma", "nevus", "AK", "Bowen's disease"]] == [
        "mel",
        "mel",
        "nv",
        "akiec",
        "akiec",
    ]
    assert canonical("solar_lentigo") == "bkl" and canonical("unknown") is None


def test_isic2020_diagnoses_map_or_are_named(isic2020_folder):
    table = load_table(isic2020_folder, "isic2020")
    words = table.assign(label=table["diagnosis"])
    with pytest.raises(DataError) as err:
        map_labels(words, ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"])
    msg = str(err.value)
    for name in [
        "unknown (6 images)",
        "cafe-au-lait macule (1 images)",
        "atypical melanocytic",
    ]:
        assert name in msg
    known = words[words["diagnosis"].map(canonical).notna()]
    mapped = map_labels(known, ["bkl", "mel", "nv"])
    assert mapped["label"].value_counts().to_dict() == {"bkl": 4, "mel": 2, "nv": 1}
    assert words["label"].tolist() == table["diagnosis"].tolist()  # input not changed


def test_binary_view_and_mapping():
    table = pd.DataFrame({"image_id": list("abcd"), "label": ["mel", "nv", "bcc", "scc"]})
    binary = to_binary(table, ["mel", "bcc"])
    assert binary["label"].tolist() == ["bcc+mel", "other", "bcc+mel", "other"]
    assert binary["label_multiclass"].tolist() == ["mel", "nv", "bcc", "scc"]
    assert class_list(binary) == ["other", "bcc+mel"]
    assert to_binary(table, MALIGNANT)["label"].value_counts().to_dict() == {
        "akiec+bcc+mel+scc": 3,
        "other": 1,
    }
    assert to_binary(table, ["melanoma"])["label"].tolist() == ["mel", "other", "other", "other"]
    with pytest.raises(DataError, match=r"scc \(1 images\)"):
        map_labels(table, ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"])


def test_merge_detects_duplicates_across_sources(caplog):
    a = pd.DataFrame({"image_id": ["1", "2"], "source": "isic2019"})
    b = pd.DataFrame({"image_id": ["2", "3", "4"], "source": "ham10000"})
    with caplog.at_level(logging.WARNING):
        merged = merge_tables([a, b])
    assert merged["image_id"].tolist() == ["1", "2", "3", "4"]
    assert merged["source"].tolist() == ["isic2019", "isic2019", "ham10000", "ham10000"]
    assert "dropped 1 images" in caplog.text
    with pytest.raises(DataError, match=r"1 image ids appear in several sources \(e.g. \['2'\]\)"):
        merge_tables([a, b], on_duplicate="raise")


def test_every_format_has_a_reader_and_the_cli_offers_it():
    assert all(callable(f.read) and f.name == name for name, f in FORMATS.items())
    assert {"isic2018", "ph2"} <= set(FORMATS)
    with pytest.raises(SystemExit):  # argparse refuses an unknown format
        main(["validate", ".", "--format", "derm7pt"])
