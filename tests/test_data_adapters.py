"""Adapters read the real formats into the common schema and refuse bad input clearly."""

from __future__ import annotations

import pandas as pd
import pytest
from conftest import FIXTURES, write_jpeg

from skinlib.data import load_table
from skinlib.data.adapters import SCHEMA
from skinlib.data.classes import map_labels, merge_tables, to_binary
from skinlib.errors import DataError


def test_ham10000_real_metadata_counts():
    table = load_table(FIXTURES / "ham10000" / "HAM10000_metadata.csv", require_images=False)
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
    assert table["age"].isna().sum() == 57
    assert "unknown" not in set(table["sex"].dropna())


def test_ham10000_images_over_both_parts(ham_folder):
    table = load_table(ham_folder, "ham10000")
    assert len(table) == 50 and table["path"].notna().all()
    assert {p.split("/")[-2] for p in table["path"]} == {
        "HAM10000_images_part_1",
        "HAM10000_images_part_2",
    }
    assert (table["group"] == table["lesion_id"]).all()


def test_ham10000_newer_release_with_dataset_column(ham_folder):
    meta = pd.read_csv(ham_folder / "HAM10000_metadata.csv")
    meta["dataset"] = "vidir_modern"
    meta.to_csv(ham_folder / "HAM10000_metadata.csv", index=False)
    assert (load_table(ham_folder)["dataset"] == "vidir_modern").all()


def test_isic2019_crlf_01_and_lf_float(isic2019_folder):
    table = load_table(isic2019_folder, "isic2019")
    assert len(table) == 20
    assert table["image_id"].str.endswith("_downsampled").sum() >= 4
    assert set(table["label"]) <= {"mel", "nv", "bcc", "akiec", "bkl", "df", "vasc", "scc"}
    # lesion_id empty -> the image is its own group
    assert (table["group"] == table["image_id"]).all()
    csv = isic2019_folder / "ISIC_2019_Training_GroundTruth.csv"
    text = csv.read_text().replace("\r\n", "\n").replace(",1", ",1.0").replace(",0", ",0.0")
    csv.write_text(text)
    again = load_table(isic2019_folder, "isic2019")
    assert again["label"].tolist() == table["label"].tolist()


def test_isic2020_binary_grouped_by_patient(isic2020_folder):
    table = load_table(isic2020_folder, "isic2020")
    assert table["label"].value_counts().to_dict() == {"other": 7, "mel": 1}
    assert table.loc[table["image_id"] == "ISIC_0149568", "group"].item() == "IP_0962375"
    assert table["group"].nunique() == 7


def test_folder_per_class_maps_aliases(tmp_path):
    for cls, ext in [("melanoma", ".png"), ("NV", ".jpg"), ("bcc", ".bmp"), ("odd", ".tif")]:
        for i in range(2):
            path = write_jpeg(tmp_path / "raw" / f"{cls}_{i}.jpg", seed=i)
            from PIL import Image

            (tmp_path / "data" / cls).mkdir(parents=True, exist_ok=True)
            Image.open(path).save(tmp_path / "data" / cls / f"{cls}_{i}{ext}")
    table = load_table(tmp_path / "data", "folder")
    assert sorted(table["label"].unique()) == ["bcc", "mel", "nv", "odd"]
    assert len(table) == 8


# --- malformed input: each error names the file and row -------------------------------------


def test_missing_column_lists_expected_and_found(ham_folder):
    meta = pd.read_csv(ham_folder / "HAM10000_metadata.csv").drop(columns="dx")
    meta.to_csv(ham_folder / "HAM10000_metadata.csv", index=False)
    with pytest.raises(DataError, match=r"missing column\(s\) \['dx'\].*found"):
        load_table(ham_folder)


def test_unknown_dx_names_the_line(ham_folder):
    meta = pd.read_csv(ham_folder / "HAM10000_metadata.csv")
    meta.loc[4, "dx"] = "melanoma?"
    meta.to_csv(ham_folder / "HAM10000_metadata.csv", index=False)
    with pytest.raises(DataError, match=r"HAM10000_metadata.csv, line 6: unknown dx 'melanoma\?'"):
        load_table(ham_folder)


def test_onehot_row_with_two_ones(isic2019_folder):
    csv = isic2019_folder / "ISIC_2019_Training_GroundTruth.csv"
    lines = csv.read_bytes().split(b"\r\n")
    lines[3] = lines[3].split(b",")[0] + b",1,1,0,0,0,0,0,0,0"
    csv.write_bytes(b"\r\n".join(lines))
    with pytest.raises(
        DataError, match=r"line 4: image ISIC_\d+ has 2 classes marked \(\['MEL', 'NV'\]\)"
    ):
        load_table(isic2019_folder, "isic2019")


def test_missing_image_is_named_or_skipped(ham_folder):
    victim = next((ham_folder / "HAM10000_images_part_1").glob("*.jpg"))
    victim.unlink()
    with pytest.raises(DataError, match=rf"image {victim.stem} not found"):
        load_table(ham_folder)
    table = load_table(ham_folder, skip_missing=True)
    assert len(table) == 49 and table.attrs["skipped_missing"] == 1


def test_unknown_format_and_missing_folder(tmp_path):
    with pytest.raises(DataError, match="unknown dataset format"):
        load_table(tmp_path, "ph2")
    with pytest.raises(DataError, match="does not exist"):
        load_table(tmp_path / "nope")


# --- vocabularies ---------------------------------------------------------------------------


def test_binary_view_and_mapping():
    table = pd.DataFrame({"image_id": list("abcd"), "label": ["mel", "nv", "bcc", "scc"]})
    binary = to_binary(table, ["mel", "bcc"])
    assert binary["label"].tolist() == ["bcc+mel", "other", "bcc+mel", "other"]
    with pytest.raises(DataError, match=r"scc \(1 images\)"):
        map_labels(table, ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"])
    words = pd.DataFrame({"image_id": ["x"], "label": ["seborrheic keratosis"]})
    assert map_labels(words, ["bkl"])["label"].item() == "bkl"


def test_merge_detects_duplicates_across_sources():
    a = pd.DataFrame({"image_id": ["1", "2"], "source": "isic2019"})
    b = pd.DataFrame({"image_id": ["2", "3"], "source": "isic2020"})
    assert merge_tables([a, b])["image_id"].tolist() == ["1", "2", "3"]
    with pytest.raises(DataError, match="1 image ids appear in several sources"):
        merge_tables([a, b], on_duplicate="raise")
