"""The EDA computations on a ten-row table with known answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import write_jpeg

from skinlib.data import eda


@pytest.fixture
def table(tmp_path) -> pd.DataFrame:
    rows = [  # image, lesion, class, age, sex, site, split, size
        ("i0", "L0", "nv", 40, "male", "back", "train", (60, 40)),
        ("i1", "L0", "nv", 40, "male", "back", "train", (60, 40)),
        ("i2", "L1", "nv", 50, "female", "trunk", "train", (60, 40)),
        ("i3", "L2", "nv", 60, "female", "back", "val", (60, 40)),
        ("i4", "L3", "nv", 30, "male", "back", "test", (80, 60)),
        ("i5", "L4", "nv", 20, "female", "face", "train", (60, 40)),
        ("i6", "L5", "mel", 70, "male", "back", "train", (60, 40)),
        ("i7", "L5", "mel", 70, "male", "back", "train", (60, 40)),
        ("i8", "L6", "mel", np.nan, "male", "face", "test", (80, 60)),
        ("i9", "L7", "df", 35, None, None, "val", (60, 40)),
    ]
    frame = pd.DataFrame(
        rows, columns=["image_id", "group", "label", "age", "sex", "site", "split", "size"]
    )
    frame["path"] = [
        write_jpeg(tmp_path / f"{i}.jpg", size=s)
        for i, s in zip(frame.image_id, frame["size"], strict=True)
    ]
    return frame.drop(columns="size")


def test_class_counts_and_ratio(table):
    counts = eda.class_counts(table)
    assert list(counts.index) == ["nv", "mel", "df"]
    assert counts["images"].tolist() == [6, 3, 1]
    assert counts["lesions"].tolist() == [5, 2, 1]
    assert counts["share"].sum() == pytest.approx(1)
    assert eda.imbalance_ratio(counts) == 6


def test_metadata_by_class(table):
    meta = eda.metadata_by_class(table)
    assert meta.loc["nv", "age_mean"] == pytest.approx(240 / 6)
    assert meta.loc["mel", "age_mean"] == 70  # the missing age is left out, not zero
    assert meta.loc["nv", "male"] == pytest.approx(0.5)
    assert meta.loc["nv", "top_site"] == "back"
    assert meta.loc["df", "top_site"] == "--" and np.isnan(meta.loc["df", "male"])
    no_metadata = eda.metadata_by_class(table.drop(columns=["age", "sex", "site"]))
    assert no_metadata["age_mean"].isna().all()  # a source without metadata still works


def test_images_per_lesion_and_sizes(table):
    per = eda.images_per_lesion(table)
    assert per["lesions"].to_dict() == {1: 6, 2: 2}
    sizes = eda.image_sizes(table, n=10).set_index(["width", "height"])["images"]
    assert sizes.to_dict() == {(60, 40): 8, (80, 60): 2}


def test_split_audit_counts_and_leakage(table):
    counts, leakage = eda.split_audit(table)
    assert counts.loc["nv"].drop("max deviation (points)").to_dict() == {
        "test": 1,
        "train": 4,
        "val": 1,
    }
    assert leakage.iloc[0]["lesions in two splits"] == 0
    assert leakage.iloc[1]["split"] == "image-level random"
