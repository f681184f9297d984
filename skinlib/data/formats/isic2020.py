"""ISIC 2020 (Rotemberg et al. 2021): melanoma vs rest, grouped by patient; JPEG or DICOM."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from skinlib.data.classes import BINARY_CLASSES, NEGATIVE
from skinlib.data.formats.base import (
    DatasetFormat,
    Problem,
    attach_paths,
    read_csv,
    row_problems,
    unknown_to_nan,
)

ISIC2020_CSV = "ISIC_2020_Training_GroundTruth.csv"


ISIC2020_COLUMNS = [
    "image_name",
    "patient_id",
    "lesion_id",
    "sex",
    "age_approx",
    "anatom_site_general_challenge",
    "diagnosis",
    "benign_malignant",
    "target",
]


def read_isic2020(root: Path, problems: list[Problem], require_images: bool = True) -> pd.DataFrame:
    """ISIC 2020: melanoma (target 1) vs rest, grouped by patient; JPEG or DICOM in train/."""
    csv = root / ISIC2020_CSV
    df = read_csv(csv, ISIC2020_COLUMNS)
    problems += row_problems(
        df,
        ~df["target"].isin(["0", "1"]),
        csv,
        "unknown_label",
        lambda r: f"image {r['image_name']}: target {r['target']!r} is not 0 or 1; fix the row",
    )
    out = df.assign(
        image_id=df["image_name"],
        label=np.where(df["target"] == "1", "mel", NEGATIVE),
        # The challenge groups by patient: one patient's lesions resemble each other.
        group=df["patient_id"].fillna(df["image_name"]),
        age=pd.to_numeric(df["age_approx"], errors="coerce"),
        sex=unknown_to_nan(df["sex"]),
        site=unknown_to_nan(df["anatom_site_general_challenge"]),
        source="isic2020",
        path=np.nan,
    )
    if require_images:
        folders = [
            root / "train",
            root / "jpeg" / "train",
            root / "ISIC_2020_Training_JPEG" / "train",
        ]
        out = attach_paths(out, folders, csv, problems)
    return out


FORMAT = DatasetFormat(
    name="isic2020",
    display_name="ISIC 2020",
    read=read_isic2020,
    layout=f"{ISIC2020_CSV} and train/",
    label_file=ISIC2020_CSV,
    known_size=33_126,
    classes=BINARY_CLASSES,
    group_unit="patient",
    description="the ISIC 2020 challenge training set",
    citations=("rotemberg2021isic2020",),
)
