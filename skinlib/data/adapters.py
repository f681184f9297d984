"""Adapters: every public dataset layout becomes one table with a common schema.

Columns: ``image_id, path, label, group, age, sex, site, source`` (+ the source's own columns and
``mask_path`` where ground-truth lesion masks exist). ``group`` is the id that must never cross
splits: the lesion where the source records it, else the patient, else the image itself.

Formats: ``ham10000``, ``isic2018`` (the official HAM10000 test protocol: ISIC 2018 Task 3 test or
validation set, in either published release), ``isic2019``, ``isic2020``, ``ph2`` (PH2, Hospital Pedro
Hispano) and ``folder``.

Readers collect row problems (:class:`Problem`) instead of stopping at the first one, so that
``skinlib validate`` can list them all; :func:`load_table` raises the first one as a
:class:`~skinlib.errors.DataError` naming the file and CSV line.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from skinlib.data.classes import (
    HAM10000_CLASSES,
    ISIC2018_COLUMNS,
    ISIC2019_COLUMNS,
    NEGATIVE,
    PH2_DIAGNOSES,
    canonical,
)
from skinlib.data.ph2 import read_labels
from skinlib.errors import DataError

log = logging.getLogger(__name__)

# Earlier suffixes win when one id has several files (ISIC 2020 ships JPEG and DICOM).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".dcm")
SCHEMA = ["image_id", "path", "label", "group", "age", "sex", "site", "source"]
FORMATS = ("ham10000", "isic2018", "isic2019", "isic2020", "ph2", "folder")

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
HAM10000_IMAGE_DIRS = ("HAM10000_images_part_1", "HAM10000_images_part_2", "HAM10000_images")
HAM10000_MASK_DIR = "HAM10000_segmentations_lesion_tschandl"
ISIC2018_CSV = "ISIC2018_Task3_{split}_GroundTruth.csv"  # split: Test | Validation | Training
ISIC2018_SPLITS = ("Test", "Validation")  # looked for in this order when given a folder
ISIC2018_ONEHOT = ["image", *ISIC2018_COLUMNS]  # the challenge release's header
# challenge release: ISIC2018_Task3_Test_Input/; archive release (Dataverse): ..._Test_Images/
ISIC2018_IMAGE_DIRS = ("ISIC2018_Task3_{split}_Input", "ISIC2018_Task3_{split}_Images")
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
# Ages are approximate, in 5-year steps (HAM10000: 0-85, ISIC 2019: 0-85); beyond 120 is a typo.
AGE_RANGE = (0, 120)
AGE_STEP = 5
# Problems that do not stop loading: training needs neither the metadata nor the unlisted files,
# so they are listed by `skinlib validate` and logged by load_table instead of raised.
ADVISORY = ("bad_metadata", "orphan_image")
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
PH2_XLSX = "PH2_dataset.xlsx"
PH2_TXT = "PH2_dataset.txt"
PH2_FOLDER = "PH2Dataset"  # the unpacked archive: labels and "PH2 Dataset images/" inside
PH2_IMAGE_DIR = "PH2 Dataset images"  # IMDxxx/IMDxxx_Dermoscopic_Image/IMDxxx.bmp


@dataclass
class Problem:
    """One thing wrong with a dataset: where, what kind, and what to do about it."""

    file: str
    row: int | None  # line in a CSV/txt (the header is line 1) or row of a sheet, if any
    problem: str  # kind: missing_image, unknown_label, onehot, duplicate_id, empty_file, ...
    detail: str

    def message(self) -> str:
        unit = "row" if self.file.endswith(".xlsx") else "line"
        where = f"{self.file}, {unit} {self.row}" if self.row else self.file
        return f"{where}: {self.detail}"


def _unknown_to_nan(series: pd.Series) -> pd.Series:
    """Empty and ``unknown`` become NaN, so "not recorded" has one spelling."""
    s = series.astype("string").str.strip()
    return s.mask(s.isna() | s.str.lower().isin(["unknown", "", "nan"])).astype(object)


def _read_csv(path: Path, expected: list[str], required: list[str] | None = None) -> pd.DataFrame:
    """Read a label file (LF or CRLF, optional BOM) as strings, checking its columns.

    A ``_line`` column holds each row's line number for messages.
    """
    if not path.is_file():
        found = sorted(p.name for p in path.parent.glob("*.csv")) if path.parent.is_dir() else []
        raise DataError(
            f"{path} not found (CSV files there: {found or 'none'}); point at the dataset "
            "folder and check --format / data.format"
        )
    try:
        df = pd.read_csv(
            path, dtype=str, keep_default_na=False, na_values=[""], encoding="utf-8-sig"
        )
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as err:
        raise DataError(f"{path}: cannot be read as CSV ({err}); is it the right file?") from None
    df.columns = [c.strip() for c in df.columns]
    missing = [c for c in (required or expected) if c not in df.columns]
    if missing:
        raise DataError(
            f"{path}: missing column(s) {missing}; expected {expected}, found {list(df.columns)}"
        )
    df["_line"] = np.arange(len(df)) + 2
    return df


def index_images(folders: Iterable[Path]) -> dict[str, Path]:
    """Map image id (file stem) to path for the images in ``folders``, scanning each once.

    The first folder wins for an id found twice; within a folder JPEG wins over DICOM.
    """
    rank = {s: i for i, s in enumerate(IMAGE_SUFFIXES)}
    index: dict[str, Path] = {}
    for folder in folders:
        if not folder.is_dir():
            continue
        found = (p for p in folder.iterdir() if p.suffix.lower() in rank)
        for path in sorted(found, key=lambda p: (p.stem, rank[p.suffix.lower()], p.name)):
            index.setdefault(path.stem, path.resolve())
    return index


def _row_problems(df, mask, file, kind, detail: Callable[[pd.Series], str]) -> list[Problem]:
    """One Problem per row where ``mask`` holds, with the row's CSV line."""
    return [
        Problem(str(file), int(row["_line"]), kind, detail(row))
        for _, row in df[np.asarray(mask, dtype=bool)].iterrows()
    ]


def _bad_age(raw: pd.Series) -> pd.Series:
    """True where an age is recorded but is not a number of years in :data:`AGE_RANGE` in steps
    of :data:`AGE_STEP` (empty means not recorded, which is allowed)."""
    age = pd.to_numeric(raw, errors="coerce")
    low, high = AGE_RANGE
    return raw.notna() & (age.isna() | (age < low) | (age > high) | (age % AGE_STEP != 0))


def _metadata_problems(
    df: pd.DataFrame,
    csv: Path,
    id_column: str,
    age_column: str,
    vocabularies: dict[str, tuple[str, ...]],
) -> list[Problem]:
    """One ``bad_metadata`` problem per value outside its column's vocabulary or age range.

    The subgroup audit splits on these columns, so a typo (``M``, an age of 250) would silently
    become a group of its own or fall in a wrong age band. Empty values are allowed (unknown).
    """
    low, high = AGE_RANGE
    problems = _row_problems(
        df,
        _bad_age(df[age_column]),
        csv,
        "bad_metadata",
        lambda r: (
            f"image {r[id_column]}: {age_column} {r[age_column]!r} is not an age in years "
            f"{low}-{high} in steps of {AGE_STEP}; correct it, or leave it empty if unknown"
        ),
    )
    for column, allowed in vocabularies.items():
        problems += _row_problems(
            df,
            df[column].notna() & ~df[column].isin(allowed),
            csv,
            "bad_metadata",
            lambda r, c=column, a=allowed: (
                f"image {r[id_column]}: {c} {r[c]!r} is not one of {list(a)}; correct it, or "
                "leave it empty if unknown"
            ),
        )
    return sorted(problems, key=lambda p: p.row)  # in file order, as the reader meets them


def _orphans(folders: list[Path], ids: Iterable[str]) -> list[Problem]:
    """Image files in ``folders`` that no row names: left out of the dataset without a word."""
    listed = set(ids)
    seen: set[Path] = set()
    problems = []
    for folder in dict.fromkeys(folders):
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            if path.suffix.lower() in IMAGE_SUFFIXES and path.stem not in listed:
                if path.resolve() in seen:
                    continue
                seen.add(path.resolve())
                problems.append(
                    Problem(
                        str(path.resolve()),
                        None,
                        "orphan_image",
                        f"image file {path.name} is in the image folder but no row of the label "
                        "file names it; add its row, or move the file out of the folder",
                    )
                )
    return problems


def _attach_paths(
    df, folders: list[Path], csv: Path, problems: list[Problem], where: str | None = None
) -> pd.DataFrame:
    """Add ``path`` from an index of ``folders``; a missing image is a problem of its row."""
    index = index_images(folders)
    paths = df["image_id"].map(lambda i: str(index[i]) if i in index else np.nan)
    where = where or ", ".join(str(f) for f in folders if f.is_dir()) or str(folders[0])
    problems += _row_problems(
        df,
        paths.isna(),
        csv,
        "missing_image",
        lambda r: (
            f"image {r['image_id']} not found in {where}; restore the file or remove the "
            "row (training can skip it: data.skip_bad=true / load_table(skip_missing=True))"
        ),
    )
    problems += _orphans(folders, df["image_id"])
    return df.assign(path=paths)


def _ham_rows(df: pd.DataFrame, csv: Path, problems: list[Problem], source: str) -> pd.DataFrame:
    """Rows with the HAM10000 header (also the archive release of ISIC 2018 Task 3)."""
    vocabularies = {"sex": HAM10000_SEXES, "localization": HAM10000_SITES}
    problems += _metadata_problems(
        df, csv, "image_id", "age", {**vocabularies, "dx_type": HAM10000_DX_TYPES}
    )
    problems += _row_problems(
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
        sex=_unknown_to_nan(df["sex"]),
        site=_unknown_to_nan(df["localization"]),
        source=source,
        path=np.nan,
    )


def read_ham10000(root: Path, problems: list[Problem], require_images: bool = True) -> pd.DataFrame:
    """HAM10000: metadata CSV + images in part_1/part_2 (or one folder); masks if present."""
    csv = root if root.is_file() else root / HAM10000_CSV
    root = csv.parent
    # The newer release appends a `dataset` column (kept as a source column).
    out = _ham_rows(_read_csv(csv, HAM10000_COLUMNS), csv, problems, "ham10000")
    if require_images:
        folders = [root / d for d in HAM10000_IMAGE_DIRS] + [root / "images", root]
        out = _attach_paths(out, folders, csv, problems)
    masks = root / HAM10000_MASK_DIR
    if masks.is_dir():
        found = out["image_id"].map(lambda i: masks / f"{i}_segmentation.png")
        out["mask_path"] = [str(p.resolve()) if p.is_file() else np.nan for p in found]
    return out


def _onehot_labels(
    df: pd.DataFrame,
    csv: Path,
    problems: list[Problem],
    columns: dict[str, str] = ISIC2019_COLUMNS,
    unknown: str | None = "UNK",
) -> pd.Series:
    """One-hot columns (1/0 or 1.0/0.0) -> canonical code; bad rows are problems.

    Args:
        columns: one-hot column -> canonical code (ISIC 2019's or ISIC 2018's).
        unknown: the column meaning "no class" (ISIC 2019's UNK), refused by name when used.
    """
    cols = [c for c in [*columns, unknown] if c in df.columns]
    onehot = df[cols].apply(pd.to_numeric, errors="coerce")
    bad = onehot.isna().any(axis=1) | ~onehot.isin([0, 1]).all(axis=1) | (onehot.sum(axis=1) != 1)

    def detail(row: pd.Series) -> str:
        ones = [c for c in cols if onehot.at[row.name, c] == 1]
        return (
            f"image {row['image']} has {len(ones)} classes marked ({ones or 'none'}); each row "
            "needs exactly one 1 among the class columns (values 1/0 or 1.0/0.0): fix the row"
        )

    problems += _row_problems(df, bad, csv, "onehot", detail)
    winner = onehot.fillna(0).idxmax(axis=1)
    problems += _row_problems(
        df,
        (winner == unknown) & ~bad,
        csv,
        "unknown_label",
        lambda r: f"image {r['image']} is labelled {unknown} (no class); remove the row",
    )
    return winner.map(columns)


def read_isic2019(root: Path, problems: list[Problem], require_images: bool = True) -> pd.DataFrame:
    """ISIC 2019: one-hot ground truth (+ optional metadata), images in ISIC_2019_Training_Input."""
    csv = root / ISIC2019_CSV
    df = _read_csv(csv, ["image", *ISIC2019_ONEHOT], required=["image", *ISIC2019_COLUMNS])
    df = df.assign(image_id=df["image"], label=_onehot_labels(df, csv, problems))
    meta_path = root / ISIC2019_META
    if meta_path.is_file():
        meta = _read_csv(meta_path, ISIC2019_META_COLUMNS)
        vocabularies = {"sex": ISIC2019_SEXES, "anatom_site_general": ISIC2019_SITES}
        problems += _metadata_problems(meta, meta_path, "image", "age_approx", vocabularies)
        meta = meta.drop(columns="_line")
        df = df.merge(meta.drop_duplicates("image"), on="image", how="left")
    for col in ISIC2019_META_COLUMNS[1:]:
        if col not in df.columns:
            df[col] = np.nan
    out = df.assign(
        group=df["lesion_id"].fillna(df["image"]),
        age=pd.to_numeric(df["age_approx"], errors="coerce"),
        sex=_unknown_to_nan(df["sex"]),
        site=_unknown_to_nan(df["anatom_site_general"]),
        source="isic2019",
        path=np.nan,
    )
    if require_images:
        images = root / ISIC2019_IMAGE_DIR
        out = _attach_paths(out, [images, images / ISIC2019_IMAGE_DIR, root], csv, problems)
    return out


def read_isic2020(root: Path, problems: list[Problem], require_images: bool = True) -> pd.DataFrame:
    """ISIC 2020: melanoma (target 1) vs rest, grouped by patient; JPEG or DICOM in train/."""
    csv = root / ISIC2020_CSV
    df = _read_csv(csv, ISIC2020_COLUMNS)
    problems += _row_problems(
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
        sex=_unknown_to_nan(df["sex"]),
        site=_unknown_to_nan(df["anatom_site_general_challenge"]),
        source="isic2020",
        path=np.nan,
    )
    if require_images:
        folders = [
            root / "train",
            root / "jpeg" / "train",
            root / "ISIC_2020_Training_JPEG" / "train",
        ]
        out = _attach_paths(out, folders, csv, problems)
    return out


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
    df = _read_csv(csv, [], required=[])
    if set(HAM10000_COLUMNS) <= set(df.columns):
        out = _ham_rows(df, csv, problems, "isic2018").assign(isic2018_release="archive")
    elif set(ISIC2018_ONEHOT) <= set(df.columns):
        df = df.assign(image_id=df["image"])
        out = df.assign(
            label=_onehot_labels(df, csv, problems, ISIC2018_COLUMNS, unknown=None),
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
        out = _attach_paths(out, _isic2018_image_folders(csv), csv, problems)
    out.attrs["label_file"] = str(csv)
    return out


def ph2_label_file(root: Path) -> Path:
    """``PH2_dataset.xlsx`` (else ``PH2_dataset.txt``) in ``root`` or ``root/PH2Dataset``, or
    ``root`` itself when it is one of them."""
    if root.is_file():
        return root
    for base in (root, root / PH2_FOLDER):
        for name in (PH2_XLSX, PH2_TXT):
            if (base / name).is_file():
                return base / name
    raise DataError(
        f"{root}: neither {PH2_XLSX} nor {PH2_TXT} found (also looked in {root / PH2_FOLDER}); "
        "point at the unpacked PH2Dataset folder"
    )


def _ph2_images(out: pd.DataFrame, folder: Path, labels: Path, problems: list[Problem]):
    """``path`` (and ``mask_path`` where lesion masks exist) from PH2's folder per case."""
    images = [folder / i / f"{i}_Dermoscopic_Image" for i in out["image_id"]]
    out = _attach_paths(
        out, images, labels, problems, where=f"{folder}/<id>/<id>_Dermoscopic_Image/"
    )
    masks = [folder / i / f"{i}_lesion" / f"{i}_lesion.bmp" for i in out["image_id"]]
    if any(m.is_file() for m in masks):
        out["mask_path"] = [str(m.resolve()) if m.is_file() else np.nan for m in masks]
    return out


def read_ph2(root: Path, problems: list[Problem], require_images: bool = True) -> pd.DataFrame:
    """PH2: labels in ``PH2_dataset.xlsx`` or ``.txt``, ``PH2 Dataset images/IMDxxx/...bmp``.

    Common and atypical nevi are ``nv``, melanomas ``mel`` (the original name stays in
    ``diagnosis``; ``histology`` where recorded). Every image is a different lesion of its own
    patient in PH2's description, so each image is its own group. Lesion masks (``IMDxxx_lesion``)
    become ``mask_path``.
    """
    labels = ph2_label_file(root)
    df = read_labels(labels)
    if df.empty:
        raise DataError(f"{labels}: the table has no rows; is it the whole PH2 label file?")
    bad = df["_error"].notna()
    problems += _row_problems(df, bad, labels, "unknown_label", lambda r: r["_error"])
    out = df.drop(columns="_error").assign(
        label=df["diagnosis"].map(PH2_DIAGNOSES),
        group=df["image_id"],
        age=np.nan,
        sex=np.nan,
        site=np.nan,
        source="ph2",
        path=np.nan,
    )
    if require_images:
        out = _ph2_images(out, labels.parent / PH2_IMAGE_DIR, labels, problems)
    out.attrs["label_file"] = str(labels)
    return out


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


READERS: dict[str, Callable[..., pd.DataFrame]] = {
    "ham10000": read_ham10000,
    "isic2018": read_isic2018,
    "isic2019": read_isic2019,
    "isic2020": read_isic2020,
    "ph2": read_ph2,
    "folder": read_folder,
}


def _duplicate_ids(table: pd.DataFrame, where: str) -> list[Problem]:
    """An id twice would put one image in two splits (or twice in one)."""
    dup = table[table["image_id"].duplicated(keep="first")]
    return [
        Problem(
            where if pd.notna(r["_line"]) else str(r["path"]),
            int(r["_line"]) if pd.notna(r["_line"]) else None,
            "duplicate_id",
            f"image id {r['image_id']} appears more than once; keep one row (or rename a file)",
        )
        for _, r in dup.iterrows()
    ]


def read_source(
    root: str | Path, format: str, require_images: bool = True
) -> tuple[pd.DataFrame, list[Problem]]:
    """Read a dataset without stopping at bad rows: the raw table and the list of problems.

    Raises:
        DataError: only when nothing can be read (no folder, no label file, wrong columns).
    """
    if format not in READERS:
        raise DataError(f"unknown dataset format {format!r}; choose one of {list(READERS)}")
    root = Path(root).expanduser()
    if not root.exists():
        raise DataError(f"dataset folder {root} does not exist; check data.root / the path given")
    problems: list[Problem] = []
    table = READERS[format](root, problems, require_images)
    csv = {"ham10000": HAM10000_CSV, "isic2019": ISIC2019_CSV, "isic2020": ISIC2020_CSV}
    label_file = root if root.is_file() else root / csv.get(format, "")
    problems += _duplicate_ids(table, table.attrs.get("label_file", str(label_file)))
    return table, problems


def _finish(table: pd.DataFrame) -> pd.DataFrame:
    """Common columns first, in schema order and types; the source's own columns after."""
    table = table.assign(image_id=table["image_id"].astype(str), group=table["group"].astype(str))
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
        root: the dataset folder, or its label file (HAM10000's metadata CSV, an ISIC 2018
            ground-truth CSV to pick its split, PH2's xlsx or txt).
        format: ham10000 | isic2018 | isic2019 | isic2020 | ph2 | folder.
        skip_missing: drop rows whose image file is missing (logged, counted in
            ``table.attrs["skipped_missing"]``) instead of raising. Other problems still raise.
        require_images: False reads the labels alone (``path`` is NaN), e.g. to audit splits.

    Raises:
        DataError: naming the file and CSV line of the first problem found.
    """
    table, problems = read_source(root, format, require_images)
    missing = [p for p in problems if p.problem == "missing_image"]
    advisory = [p for p in problems if p.problem in ADVISORY]
    if advisory:
        log.warning(
            "%d metadata value(s) or unlisted image file(s) to fix (first: %s); run `skinlib "
            "validate` for the list",
            len(advisory),
            advisory[0].message(),
        )
        problems = [p for p in problems if p.problem not in ADVISORY]
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
            f" (and {len(problems) - 1} more: run `skinlib validate`)" if len(problems) > 1 else ""
        )
        raise DataError(problems[0].message() + more)
    table = _finish(table)
    table.attrs["skipped_missing"] = len(missing) if skip_missing else 0
    return table
