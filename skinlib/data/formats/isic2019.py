"""ISIC 2019: one-hot ground truth (+ optional metadata), images in ISIC_2019_Training_Input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from skinlib.data.classes import ISIC2019_CLASSES, ISIC2019_COLUMNS
from skinlib.data.formats.base import (
    DatasetFormat,
    Problem,
    attach_paths,
    metadata_problems,
    onehot_labels,
    read_csv,
    unknown_to_nan,
)

ISIC2019_CSV = "ISIC_2019_Training_GroundTruth.csv"


ISIC2019_ONEHOT = [*ISIC2019_COLUMNS, "UNK"]


ISIC2019_META = "ISIC_2019_Training_Metadata.csv"


ISIC2019_META_COLUMNS = ["image", "age_approx", "anatom_site_general", "lesion_id", "sex"]


ISIC2019_IMAGE_DIR = "ISIC_2019_Training_Input"


ISIC2019_SEXES = ("male", "female")  # empty when not recorded


ISIC2019_SITES = (
    "anterior torso",
    "posterior torso",
    "lateral torso",
    "upper extremity",
    "lower extremity",
    "head/neck",
    "palms/soles",
    "oral/genital",
)


def read_isic2019(root: Path, problems: list[Problem], require_images: bool = True) -> pd.DataFrame:
    """ISIC 2019: one-hot ground truth (+ optional metadata), images in ISIC_2019_Training_Input."""
    csv = root / ISIC2019_CSV
    df = read_csv(csv, ["image", *ISIC2019_ONEHOT], required=["image", *ISIC2019_COLUMNS])
    df = df.assign(image_id=df["image"], label=onehot_labels(df, csv, problems))
    meta_path = root / ISIC2019_META
    if meta_path.is_file():
        meta = read_csv(meta_path, ISIC2019_META_COLUMNS)
        vocabularies = {"sex": ISIC2019_SEXES, "anatom_site_general": ISIC2019_SITES}
        problems += metadata_problems(meta, meta_path, "image", "age_approx", vocabularies)
        meta = meta.drop(columns="_line")
        df = df.merge(meta.drop_duplicates("image"), on="image", how="left")
    for col in ISIC2019_META_COLUMNS[1:]:
        if col not in df.columns:
            df[col] = np.nan
    out = df.assign(
        group=df["lesion_id"].fillna(df["image"]),
        age=pd.to_numeric(df["age_approx"], errors="coerce"),
        sex=unknown_to_nan(df["sex"]),
        site=unknown_to_nan(df["anatom_site_general"]),
        source="isic2019",
        path=np.nan,
    )
    if require_images:
        images = root / ISIC2019_IMAGE_DIR
        out = attach_paths(out, [images, images / ISIC2019_IMAGE_DIR, root], csv, problems)
    return out


FORMAT = DatasetFormat(
    name="isic2019",
    display_name="ISIC 2019",
    read=read_isic2019,
    layout=f"{ISIC2019_CSV} and {ISIC2019_IMAGE_DIR}/",
    label_file=ISIC2019_CSV,
    known_size=25_331,
    classes=ISIC2019_CLASSES,
    group_unit="lesion",
    description="the ISIC 2019 challenge training set",
    citations=("tschandl2018ham10000", "codella2018isic2017", "combalia2019bcn20000"),
)
