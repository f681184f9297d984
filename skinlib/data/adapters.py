"""Adapters: every public dataset layout becomes one table with a common schema.

Columns: ``image_id, path, label, group, age, sex, site, source`` (+ the source's own columns and
``mask_path`` where ground-truth lesion masks exist). ``group`` is the id that must never cross
splits: the lesion where the source records it, else the patient, else the image itself.

Adapters collect row problems (:class:`Problem`) so that ``skinlib validate`` can list them all;
:func:`load_table` raises the first one as a :class:`~skinlib.errors.DataError` naming the file
and row.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from skinlib.data.classes import HAM10000_CLASSES, ISIC2019_COLUMNS, NEGATIVE, canonical
from skinlib.errors import DataError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".dcm"}
SCHEMA = ["image_id", "path", "label", "group", "age", "sex", "site", "source"]
FORMATS = ("ham10000", "isic2019", "isic2020", "folder")

HAM10000_CSV = "HAM10000_metadata.csv"
HAM10000_COLUMNS = ["lesion_id", "image_id", "dx", "dx_type", "age", "sex", "localization"]
HAM10000_IMAGE_DIRS = (
    "HAM10000_images_part_1",
    "HAM10000_images_part_2",
    "HAM10000_images",
    "images",
)
HAM10000_MASK_DIR = "HAM10000_segmentations_lesion_tschandl"
ISIC2019_CSV = "ISIC_2019_Training_GroundTruth.csv"
ISIC2019_META = "ISIC_2019_Training_Metadata.csv"
ISIC2019_META_COLUMNS = ["image", "age_approx", "anatom_site_general", "lesion_id", "sex"]
ISIC2019_IMAGE_DIR = "ISIC_2019_Training_Input"
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


@dataclass
class Problem:
    """One thing wrong with a dataset: where, what, and detail for the user."""

    file: str
    row: int | None  # 1-based line number in the CSV (the header is line 1), if any
    problem: str  # short kind: missing_image, unknown_label, onehot, ...
    detail: str

    def message(self) -> str:
        where = f"{self.file}, line {self.row}" if self.row else self.file
        return f"{where}: {self.detail}"


def _unknown_to_nan(series: pd.Series) -> pd.Series:
    s = series.astype("string").str.strip()
    return s.mask(s.isna() | s.str.lower().isin(["unknown", "", "nan"])).astype(object)


def _read_csv(path: Path, expected: list[str], required: list[str] | None = None) -> pd.DataFrame:
    """Read a label file (LF or CRLF), checking that the expected columns are there."""
    if not path.is_file():
        raise DataError(f"{path} not found; the folder should hold {path.name} (see README)")
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as err:
        raise DataError(f"{path}: cannot be read as CSV ({err}); is it the right file?") from None
    df.columns = [c.strip() for c in df.columns]
    missing = [c for c in (required or expected) if c not in df.columns]
    if missing:
        raise DataError(
            f"{path}: missing column(s) {missing}; expected {expected}, found {list(df.columns)}"
        )
    return df


def index_images(folders: list[Path]) -> dict[str, Path]:
    """Map image id (file stem) to path for every image under the given folders (first wins)."""
    index: dict[str, Path] = {}
    for folder in folders:
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            if path.suffix.lower() in IMAGE_SUFFIXES and path.stem not in index:
                index[path.stem] = path.resolve()
    return index


def _attach_paths(
    df: pd.DataFrame, index: dict[str, Path], csv: Path, problems: list[Problem], folders: str
) -> pd.DataFrame:
    paths = df["image_id"].map(lambda i: str(index[i]) if i in index else np.nan)
    for row in np.flatnonzero(paths.isna().to_numpy()):
        image = df["image_id"].iloc[row]
        problems.append(
            Problem(
                str(csv),
                int(df["_line"].iloc[row]),
                "missing_image",
                f"image {image} not found in {folders}; restore the file or remove the row "
                "(training can skip it with data.skip_bad=true)",
            )
        )
    return df.assign(path=paths)


def read_ham10000(root: Path, problems: list[Problem], require_images: bool = True) -> pd.DataFrame:
    """HAM10000: metadata CSV + images in part_1/part_2 (or one folder); masks if present."""
    csv = root / HAM10000_CSV if root.is_dir() else root
    root = csv.parent
    df = _read_csv(csv, HAM10000_COLUMNS)
    df["_line"] = np.arange(len(df)) + 2
    for row in np.flatnonzero(~df["dx"].isin(HAM10000_CLASSES).to_numpy()):
        problems.append(
            Problem(
                str(csv),
                int(df["_line"].iloc[row]),
                "unknown_label",
                f"unknown dx {df['dx'].iloc[row]!r} for image {df['image_id'].iloc[row]}; "
                f"HAM10000 classes are {list(HAM10000_CLASSES)}",
            )
        )
    out = df.assign(
        label=df["dx"],
        group=df["lesion_id"].fillna(df["image_id"]),
        age=pd.to_numeric(df["age"], errors="coerce"),
        sex=_unknown_to_nan(df["sex"]),
        site=_unknown_to_nan(df["localization"]),
        source="ham10000",
    )
    if require_images:
        index = index_images([root / d for d in HAM10000_IMAGE_DIRS] + [root])
        out = _attach_paths(
            out, index, csv, problems, f"{root}/{{{','.join(HAM10000_IMAGE_DIRS)}}}"
        )
    else:
        out["path"] = np.nan
    masks = root / HAM10000_MASK_DIR
    if masks.is_dir():
        found = out["image_id"].map(lambda i: masks / f"{i}_segmentation.png")
        out["mask_path"] = [str(p) if p.is_file() else np.nan for p in found]
    return out


def read_isic2019(root: Path, problems: list[Problem], require_images: bool = True) -> pd.DataFrame:
    """ISIC 2019: one-hot ground truth (+ optional metadata), images in ISIC_2019_Training_Input."""
    csv = root / ISIC2019_CSV
    columns = ["image", *ISIC2019_COLUMNS, "UNK"]
    df = _read_csv(csv, columns, required=["image", *ISIC2019_COLUMNS])
    df["_line"] = np.arange(len(df)) + 2
    onehot_cols = [c for c in columns[1:] if c in df.columns]
    onehot = df[onehot_cols].apply(pd.to_numeric, errors="coerce")
    bad = onehot.isna().any(axis=1) | ~onehot.isin([0, 1]).all(axis=1) | (onehot.sum(axis=1) != 1)
    for row in np.flatnonzero(bad.to_numpy()):
        ones = [c for c in onehot_cols if onehot[c].iloc[row] == 1]
        problems.append(
            Problem(
                str(csv),
                int(df["_line"].iloc[row]),
                "onehot",
                f"image {df['image'].iloc[row]} has {len(ones)} classes marked ({ones or 'none'}); "
                "each row needs exactly one 1 (values 1/0 or 1.0/0.0)",
            )
        )
    winner = onehot.fillna(0).idxmax(axis=1)
    for row in np.flatnonzero(((winner == "UNK") & ~bad).to_numpy()):
        problems.append(
            Problem(
                str(csv),
                int(df["_line"].iloc[row]),
                "unknown_label",
                f"image {df['image'].iloc[row]} is labelled UNK; drop it or give it a class",
            )
        )
    df = df.assign(label=winner.map(ISIC2019_COLUMNS), image_id=df["image"])
    meta_path = root / ISIC2019_META
    if meta_path.is_file():
        meta = _read_csv(meta_path, ISIC2019_META_COLUMNS).drop_duplicates("image")
        df = df.merge(meta, on="image", how="left")
    for col in ISIC2019_META_COLUMNS[1:]:
        if col not in df.columns:
            df[col] = np.nan
    out = df.assign(
        group=df["lesion_id"].fillna(df["image"]),
        age=pd.to_numeric(df["age_approx"], errors="coerce"),
        sex=_unknown_to_nan(df["sex"]),
        site=_unknown_to_nan(df["anatom_site_general"]),
        source="isic2019",
    )
    if require_images:
        index = index_images([root / ISIC2019_IMAGE_DIR, root])
        out = _attach_paths(out, index, csv, problems, str(root / ISIC2019_IMAGE_DIR))
    else:
        out["path"] = np.nan
    return out


def read_isic2020(root: Path, problems: list[Problem], require_images: bool = True) -> pd.DataFrame:
    """ISIC 2020: melanoma (target 1) vs rest; grouped by patient; JPEG or DICOM in train/."""
    csv = root / ISIC2020_CSV
    df = _read_csv(csv, ISIC2020_COLUMNS)
    df["_line"] = np.arange(len(df)) + 2
    bad = ~df["target"].isin(["0", "1"])
    for row in np.flatnonzero(bad.to_numpy()):
        problems.append(
            Problem(
                str(csv),
                int(df["_line"].iloc[row]),
                "unknown_label",
                f"image {df['image_name'].iloc[row]}: target {df['target'].iloc[row]!r} is not 0 or 1",
            )
        )
    out = df.assign(
        image_id=df["image_name"],
        label=np.where(df["target"] == "1", "mel", NEGATIVE),
        group=df["patient_id"].fillna(df["image_name"]),
        age=pd.to_numeric(df["age_approx"], errors="coerce"),
        sex=_unknown_to_nan(df["sex"]),
        site=_unknown_to_nan(df["anatom_site_general_challenge"]),
        source="isic2020",
    )
    if require_images:
        index = index_images([root / "train", root / "jpeg" / "train", root])
        out = _attach_paths(out, index, csv, problems, str(root / "train"))
    else:
        out["path"] = np.nan
    return out


def read_folder(root: Path, problems: list[Problem], require_images: bool = True) -> pd.DataFrame:
    """``root/<class>/<image>``; known class names (``melanoma``, ``MEL``, ``nevus``) map to codes."""
    if not root.is_dir():
        raise DataError(f"{root} is not a folder; expected root/<class>/<image files>")
    rows = []
    for class_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        label = canonical(class_dir.name) or class_dir.name
        for path in sorted(class_dir.iterdir()):
            if path.suffix.lower() in IMAGE_SUFFIXES:
                rows.append(
                    {
                        "image_id": path.stem,
                        "path": str(path.resolve()),
                        "label": label,
                        "class_folder": class_dir.name,
                    }
                )
    if not rows:
        raise DataError(
            f"{root}: no images found; expected one sub-folder per class holding images "
            f"({', '.join(sorted(IMAGE_SUFFIXES))})"
        )
    df = pd.DataFrame(rows)
    dup = df["image_id"].duplicated(keep=False)
    for _, r in df[dup].iterrows():
        problems.append(
            Problem(
                r["path"],
                None,
                "duplicate_id",
                f"image id {r['image_id']} appears in several class folders",
            )
        )
    return df.assign(
        group=df["image_id"], age=np.nan, sex=np.nan, site=np.nan, source="folder", _line=np.nan
    )


READERS: dict[str, Callable[..., pd.DataFrame]] = {
    "ham10000": read_ham10000,
    "isic2019": read_isic2019,
    "isic2020": read_isic2020,
    "folder": read_folder,
}


def read_source(
    root: str | Path, format: str, require_images: bool = True
) -> tuple[pd.DataFrame, list[Problem]]:
    """Read a dataset without stopping at bad rows: the table and the list of problems."""
    if format not in READERS:
        raise DataError(f"unknown dataset format {format!r}; choose one of {list(READERS)}")
    root = Path(root).expanduser()
    if not root.exists():
        raise DataError(f"dataset folder {root} does not exist; check data.root / the path given")
    problems: list[Problem] = []
    table = READERS[format](root, problems, require_images)
    ids = table["image_id"]
    for image in ids[ids.duplicated()].unique():
        line = table.loc[ids == image, "_line"].iloc[-1]
        problems.append(
            Problem(
                str(root),
                int(line) if pd.notna(line) else None,
                "duplicate_id",
                f"image id {image} appears more than once; keep one row",
            )
        )
    return table, problems


def _finish(table: pd.DataFrame) -> pd.DataFrame:
    for col in ("group", "image_id"):
        table[col] = table[col].astype(str)
    ordered = SCHEMA + [c for c in table.columns if c not in SCHEMA and c != "_line"]
    return table[ordered].reset_index(drop=True)


def load_table(
    root: str | Path,
    format: str = "ham10000",
    *,
    skip_missing: bool = False,
    require_images: bool = True,
) -> pd.DataFrame:
    """Load a dataset into the common schema.

    Args:
        root: the dataset folder (for HAM10000 also the metadata CSV itself).
        format: ham10000 | isic2019 | isic2020 | folder.
        skip_missing: drop rows whose image file is missing (logged and counted) instead of
            raising. Other problems (labels, one-hot rows) always raise.
        require_images: False reads the labels alone (``path`` is NaN), e.g. to audit splits.

    Raises:
        DataError: naming the file and CSV line of the first problem found.
    """
    table, problems = read_source(root, format, require_images)
    missing = [p for p in problems if p.problem == "missing_image"]
    if skip_missing and missing:
        log.warning(
            "skipping %d rows whose image is missing (first: %s)",
            len(missing),
            missing[0].message(),
        )
        table = table[table["path"].notna()]
        problems = [p for p in problems if p.problem != "missing_image"]
    if problems:
        more = (
            f" (and {len(problems) - 1} more problems: run `skinlib validate`)"
            if len(problems) > 1
            else ""
        )
        raise DataError(problems[0].message() + more)
    table = _finish(table)
    table.attrs["skipped_missing"] = len(missing) if skip_missing else 0
    return table
