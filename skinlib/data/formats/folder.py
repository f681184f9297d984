"""Plain folders: ``root/<class>/<image>``, the class taken from the folder's name."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from skinlib.data.classes import canonical
from skinlib.data.formats.base import DatasetFormat, Problem
from skinlib.data.images import IMAGE_SUFFIXES
from skinlib.errors import DataError


def read_folder(root: Path, problems: list[Problem], require_images: bool = True) -> pd.DataFrame:
    """``root/<class>/<image>``; known class names (``melanoma``, ``MEL``, ``nevus``) map to codes."""
    if not root.is_dir():
        raise DataError(f"{root} is not a folder; expected root/<class>/<image files>")
    rows = []
    for class_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        label = canonical(class_dir.name) or class_dir.name
        for path in sorted(class_dir.iterdir()):
            if path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith("."):
                rows.append((path.stem, str(path.resolve()), label, class_dir.name))
    if not rows:
        raise DataError(
            f"{root}: no images found; expected one sub-folder per class holding image files "
            f"({', '.join(IMAGE_SUFFIXES)})"
        )
    df = pd.DataFrame(rows, columns=["image_id", "path", "label", "class_folder"])
    return df.assign(
        group=df["image_id"], age=np.nan, sex=np.nan, site=np.nan, source="folder", _line=np.nan
    )


FORMAT = DatasetFormat(
    name="folder",
    display_name="this set",
    read=read_folder,
    layout="one sub-folder of images per class",
    group_unit="image",
    description="a folder of images with one sub-folder per class",
)
