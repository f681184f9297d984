"""Shared fixtures: tiny image folders in the real datasets' layouts."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

FIXTURES = Path(__file__).parent / "fixtures"


def write_jpeg(path: Path, size=(40, 30), seed: int = 0, colour=None) -> Path:
    """A small JPEG; ``colour`` makes its class learnable, ``seed`` varies its noise."""
    rng = np.random.default_rng(seed)
    base = np.array(colour if colour is not None else rng.integers(0, 255, 3), dtype=float)
    pixels = np.clip(base + rng.normal(0, 20, (size[1], size[0], 3)), 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, format="JPEG", quality=90)
    return path


@pytest.fixture
def ham_folder(tmp_path) -> Path:
    """HAM10000 layout (50 rows of the real metadata) with images over part_1 and part_2."""
    import pandas as pd

    meta = pd.read_csv(FIXTURES / "ham10000" / "HAM10000_metadata.csv", nrows=50)
    meta.to_csv(tmp_path / "HAM10000_metadata.csv", index=False)
    for i, image in enumerate(meta["image_id"]):
        part = "HAM10000_images_part_1" if i % 2 else "HAM10000_images_part_2"
        write_jpeg(tmp_path / part / f"{image}.jpg", seed=i)
    return tmp_path


@pytest.fixture
def isic2019_folder(tmp_path) -> Path:
    for name in ("ISIC_2019_Training_GroundTruth.csv", "ISIC_2019_Training_Metadata.csv"):
        shutil.copy(FIXTURES / "isic2019" / name, tmp_path / name)
    import pandas as pd

    for i, image in enumerate(
        pd.read_csv(tmp_path / "ISIC_2019_Training_GroundTruth.csv")["image"]
    ):
        write_jpeg(tmp_path / "ISIC_2019_Training_Input" / f"{image}.jpg", seed=i)
    return tmp_path


@pytest.fixture
def isic2020_folder(tmp_path) -> Path:
    import pandas as pd

    shutil.copy(FIXTURES / "isic2020" / "ISIC_2020_Training_GroundTruth.csv", tmp_path)
    for i, image in enumerate(
        pd.read_csv(tmp_path / "ISIC_2020_Training_GroundTruth.csv")["image_name"]
    ):
        write_jpeg(tmp_path / "train" / f"{image}.jpg", seed=i)
    return tmp_path
