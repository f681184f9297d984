"""ISIC 2018 Task 3: HAM10000's official test set (or its validation set), in either release."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from skinlib.data.classes import HAM10000_CLASSES, ISIC2018_COLUMNS
from skinlib.data.formats.base import DatasetFormat, Problem, attach_paths, onehot_labels, read_csv
from skinlib.data.formats.ham10000 import HAM10000_COLUMNS, ham_rows
from skinlib.errors import DataError

log = logging.getLogger(__name__)

ISIC2018_CSV = "ISIC2018_Task3_{split}_GroundTruth.csv"  # split: Test | Validation | Training


ISIC2018_SPLITS = ("Test", "Validation")  # looked for in this order when given a folder


ISIC2018_ONEHOT = ["image", *ISIC2018_COLUMNS]  # the challenge release's header


# challenge release: ISIC2018_Task3_Test_Input/; archive release (Dataverse): ..._Test_Images/
ISIC2018_IMAGE_DIRS = ("ISIC2018_Task3_{split}_Input", "ISIC2018_Task3_{split}_Images")


def isic2018_label_file(root: Path) -> Path:
    """The ISIC 2018 Task 3 ground truth to read: ``root`` itself when it is a file, else the Test
    file, else the Validation file, in ``root`` or in the folder its zip unpacks to
    (``ISIC2018_Task3_Test_GroundTruth/``). Point at the Validation CSV to read that split."""
    if root.is_file():
        return root
    found = []
    for split in ISIC2018_SPLITS:
        name = ISIC2018_CSV.format(split=split)
        found += [p for p in (root / name, root / Path(name).stem / name) if p.is_file()][:1]
    if not found:
        names = [ISIC2018_CSV.format(split=s) for s in ISIC2018_SPLITS]
        there = sorted(p.name for p in root.glob("*.csv")) if root.is_dir() else []
        raise DataError(
            f"{root}: no ISIC 2018 Task 3 ground truth ({' or '.join(names)}, also looked in "
            f"their unzipped folders; CSV files there: {there or 'none'}); point at the folder "
            "holding it, or at the CSV file itself"
        )
    if len(found) > 1:
        log.info(
            "%s holds both the Test and the Validation ground truth: reading Test (point at %s "
            "to read Validation)",
            root,
            found[1],
        )
    return found[0]


def _isic2018_image_folders(csv: Path) -> list[Path]:
    """Where a split's images are: its named folder (either release, also nested once by the
    unzip) beside the CSV or one level up; failing those, any sub-folder of the CSV's folder."""
    split = next((s for s in ("Test", "Validation", "Training") if f"_{s}_" in csv.name), None)
    named = []
    for base in (csv.parent, csv.parent.parent):
        for pattern in ISIC2018_IMAGE_DIRS if split else ():
            folder = base / pattern.format(split=split)
            named += [folder, folder / folder.name]
    if any(f.is_dir() for f in named):
        return named
    return [
        p
        for p in sorted(csv.parent.iterdir())
        if p.is_dir() and not p.name.startswith((".", "__MACOSX"))
    ] + [csv.parent]


def read_isic2018(root: Path, problems: list[Problem], require_images: bool = True) -> pd.DataFrame:
    """ISIC 2018 Task 3 (HAM10000's official test set of 1,512 images, or its validation set of 193).

    Two published releases, told apart by the header of ``ISIC2018_Task3_<Split>_GroundTruth.csv``:

    - the challenge release: ``image,MEL,NV,BCC,AKIEC,BKL,DF,VASC`` (one-hot 1.0/0.0), images in
      ``ISIC2018_Task3_<Split>_Input/``. It records no lesion ids, so each image is its own group
      (intervals then resample images);
    - the archive release (HAM10000 on Harvard Dataverse): the HAM10000 header
      (``lesion_id,image_id,dx,...,dataset``), images in ``ISIC2018_Task3_Test_Images/`` (or any
      one sub-folder); grouped by lesion. Its zip holds 1,511 of the 1,512 listed images.

    ``root`` is the folder holding the CSV (Test is read when Validation is there too) or the CSV.
    """
    csv = isic2018_label_file(root)
    df = read_csv(csv, [], required=[])
    if set(HAM10000_COLUMNS) <= set(df.columns):
        out = ham_rows(df, csv, problems, "isic2018").assign(isic2018_release="archive")
    elif set(ISIC2018_ONEHOT) <= set(df.columns):
        df = df.assign(image_id=df["image"])
        out = df.assign(
            label=onehot_labels(df, csv, problems, ISIC2018_COLUMNS, unknown=None),
            group=df["image"],  # no lesion ids in this release
            age=np.nan,
            sex=np.nan,
            site=np.nan,
            source="isic2018",
            path=np.nan,
            isic2018_release="challenge",
        )
    else:
        found = [c for c in df.columns if c != "_line"]
        raise DataError(
            f"{csv}: header {found} is neither the challenge release's {ISIC2018_ONEHOT} nor the "
            f"archive release's {HAM10000_COLUMNS + ['dataset']}; is it the ISIC 2018 Task 3 "
            "ground truth?"
        )
    if require_images:
        out = attach_paths(out, _isic2018_image_folders(csv), csv, problems)
    out.attrs["label_file"] = str(csv)
    return out


FORMAT = DatasetFormat(
    name="isic2018",
    display_name="ISIC 2018 Task 3",
    read=read_isic2018,
    layout=f"{ISIC2018_CSV.format(split='Test')} and {ISIC2018_IMAGE_DIRS[0].format(split='Test')}/",
    classes=HAM10000_CLASSES,
    note=(
        "ISIC 2018 Task 3 is HAM10000's official test set, drawn mostly from the sources of the "
        "training images: it measures new lesions more than new clinics or devices."
    ),
)
