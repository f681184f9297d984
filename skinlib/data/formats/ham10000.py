"""HAM10000 (Tschandl et al. 2018): metadata CSV, images in part_1/part_2 (or one folder), masks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from skinlib.data.classes import HAM10000_CLASSES
from skinlib.data.formats.base import (
    DatasetFormat,
    Problem,
    attach_paths,
    metadata_problems,
    read_csv,
    row_problems,
    unknown_to_nan,
)

HAM10000_CSV = "HAM10000_metadata.csv"


HAM10000_COLUMNS = ["lesion_id", "image_id", "dx", "dx_type", "age", "sex", "localization"]


# The published vocabularies (all 10,015 rows of the metadata use them), the values the subgroup
# audit splits on: anything else is a typo that would become a group of its own.
HAM10000_SEXES = ("male", "female", "unknown")


HAM10000_SITES = (
    "abdomen",
    "acral",
    "back",
    "chest",
    "ear",
    "face",
    "foot",
    "genital",
    "hand",
    "lower extremity",
    "neck",
    "scalp",
    "trunk",
    "upper extremity",
    "unknown",
)


HAM10000_DX_TYPES = ("histo", "follow_up", "consensus", "confocal")


# How each dx_type confirmed a diagnosis, as a table or sentence says it (Tschandl et al. 2018)
HAM10000_DX_NAMES = {
    "histo": "histopathology",
    "follow_up": "follow-up",
    "consensus": "expert consensus",
    "confocal": "confocal microscopy",
}


HAM10000_IMAGE_DIRS = ("HAM10000_images_part_1", "HAM10000_images_part_2", "HAM10000_images")


HAM10000_MASK_DIR = "HAM10000_segmentations_lesion_tschandl"


def ham_rows(df: pd.DataFrame, csv: Path, problems: list[Problem], source: str) -> pd.DataFrame:
    """Rows with the HAM10000 header (also the archive release of ISIC 2018 Task 3)."""
    vocabularies = {"sex": HAM10000_SEXES, "localization": HAM10000_SITES}
    problems += metadata_problems(
        df, csv, "image_id", "age", {**vocabularies, "dx_type": HAM10000_DX_TYPES}
    )
    problems += row_problems(
        df,
        ~df["dx"].isin(HAM10000_CLASSES),
        csv,
        "unknown_label",
        lambda r: (
            f"unknown dx {r['dx']!r} for image {r['image_id']}; HAM10000 classes are "
            f"{list(HAM10000_CLASSES)}: fix or remove the row"
        ),
    )
    return df.assign(
        label=df["dx"],
        group=df["lesion_id"].fillna(df["image_id"]),
        age=pd.to_numeric(df["age"], errors="coerce"),
        sex=unknown_to_nan(df["sex"]),
        site=unknown_to_nan(df["localization"]),
        source=source,
        path=np.nan,
    )


def read_ham10000(root: Path, problems: list[Problem], require_images: bool = True) -> pd.DataFrame:
    """HAM10000: metadata CSV + images in part_1/part_2 (or one folder); masks if present."""
    csv = root if root.is_file() else root / HAM10000_CSV
    root = csv.parent
    # The newer release appends a `dataset` column (kept as a source column).
    out = ham_rows(read_csv(csv, HAM10000_COLUMNS), csv, problems, "ham10000")
    if require_images:
        folders = [root / d for d in HAM10000_IMAGE_DIRS] + [root / "images", root]
        out = attach_paths(out, folders, csv, problems)
    masks = root / HAM10000_MASK_DIR
    if masks.is_dir():
        found = out["image_id"].map(lambda i: masks / f"{i}_segmentation.png")
        out["mask_path"] = [str(p.resolve()) if p.is_file() else np.nan for p in found]
    return out


FORMAT = DatasetFormat(
    name="ham10000",
    display_name="HAM10000",
    read=read_ham10000,
    layout=f"{HAM10000_CSV} and {HAM10000_IMAGE_DIRS[0]}/ + {HAM10000_IMAGE_DIRS[1]}/",
    label_file=HAM10000_CSV,
    known_size=10_015,
    classes=HAM10000_CLASSES,
    group_unit="lesion",
    description="the HAM10000 dataset",
    citations=("tschandl2018ham10000",),
)
