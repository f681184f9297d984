"""What every dataset format shares: the common schema, row problems, the readers' helpers, and
:class:`DatasetFormat`, the description each format module registers.

Readers collect row problems (:class:`Problem`) instead of stopping at the first one, so that
``skinlib validate`` can list them all; :func:`skinlib.data.formats.load_table` raises the first
one as a :class:`~skinlib.errors.DataError` naming the file and CSV line.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from skinlib.data.classes import BINARY_CLASSES, ISIC2019_COLUMNS
from skinlib.data.images import IMAGE_SUFFIXES
from skinlib.errors import DataError

Reader = Callable[[Path, list["Problem"], bool], pd.DataFrame]


@dataclass(frozen=True)
class DatasetFormat:
    """One dataset layout, as its module registers it (``data.format`` / ``--format``)."""

    name: str  # the format's name in profiles and on the command line
    display_name: str  # how tables and sentences name the set ("ISIC 2019")
    read: Reader  # (root, problems, require_images) -> the raw table, problems appended
    layout: str  # what its folder holds, for messages ("X.csv and images/")
    label_file: str = ""  # the label file's fixed name in the folder ("": the reader finds it)
    known_size: int | None = None  # images of the full public dataset (disk estimates)
    classes: tuple[str, ...] | None = None  # its fixed class list; None: from the table
    group_unit: str = "group"  # what ``group`` is in the methods' words: lesion, patient, image
    description: str = ""  # how the methods chapter names a training set of this format
    citations: tuple[str, ...] = ()  # BibTeX keys the methods cite with it
    note: str = ""  # what the set is beyond its classes, said under external results

    @property
    def binary(self) -> bool:
        """Its labels are already melanoma vs the rest."""
        return self.classes == BINARY_CLASSES


SCHEMA = ["image_id", "path", "label", "group", "age", "sex", "site", "source"]


# Ages are approximate, in 5-year steps (HAM10000: 0-85, ISIC 2019: 0-85); beyond 120 is a typo.
AGE_RANGE = (0, 120)


AGE_STEP = 5


# Problems that do not stop loading: training needs neither the metadata nor the unlisted files,
# so they are listed by `skinlib validate` and logged by load_table instead of raised.
ADVISORY = ("bad_metadata", "orphan_image")


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


def unknown_to_nan(series: pd.Series) -> pd.Series:
    """Empty and ``unknown`` become NaN, so "not recorded" has one spelling."""
    s = series.astype("string").str.strip()
    return s.mask(s.isna() | s.str.lower().isin(["unknown", "", "nan"])).astype(object)


def read_csv(path: Path, expected: list[str], required: list[str] | None = None) -> pd.DataFrame:
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


def row_problems(df, mask, file, kind, detail: Callable[[pd.Series], str]) -> list[Problem]:
    """One Problem per row where ``mask`` holds, with the row's CSV line."""
    return [
        Problem(str(file), int(row["_line"]), kind, detail(row))
        for _, row in df[np.asarray(mask, dtype=bool)].iterrows()
    ]


def bad_age(raw: pd.Series) -> pd.Series:
    """True where an age is recorded but is not a number of years in :data:`AGE_RANGE` in steps
    of :data:`AGE_STEP` (empty means not recorded, which is allowed)."""
    age = pd.to_numeric(raw, errors="coerce")
    low, high = AGE_RANGE
    return raw.notna() & (age.isna() | (age < low) | (age > high) | (age % AGE_STEP != 0))


def metadata_problems(
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
    problems = row_problems(
        df,
        bad_age(df[age_column]),
        csv,
        "bad_metadata",
        lambda r: (
            f"image {r[id_column]}: {age_column} {r[age_column]!r} is not an age in years "
            f"{low}-{high} in steps of {AGE_STEP}; correct it, or leave it empty if unknown"
        ),
    )
    for column, allowed in vocabularies.items():
        problems += row_problems(
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


def orphans(folders: list[Path], ids: Iterable[str]) -> list[Problem]:
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


def attach_paths(
    df, folders: list[Path], csv: Path, problems: list[Problem], where: str | None = None
) -> pd.DataFrame:
    """Add ``path`` from an index of ``folders``; a missing image is a problem of its row."""
    index = index_images(folders)
    paths = df["image_id"].map(lambda i: str(index[i]) if i in index else np.nan)
    where = where or ", ".join(str(f) for f in folders if f.is_dir()) or str(folders[0])
    problems += row_problems(
        df,
        paths.isna(),
        csv,
        "missing_image",
        lambda r: (
            f"image {r['image_id']} not found in {where}; restore the file or remove the "
            "row (training can skip it: data.skip_bad=true / load_table(skip_missing=True))"
        ),
    )
    problems += orphans(folders, df["image_id"])
    return df.assign(path=paths)


def onehot_labels(
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

    problems += row_problems(df, bad, csv, "onehot", detail)
    winner = onehot.fillna(0).idxmax(axis=1)
    problems += row_problems(
        df,
        (winner == unknown) & ~bad,
        csv,
        "unknown_label",
        lambda r: f"image {r['image']} is labelled {unknown} (no class); remove the row",
    )
    return winner.map(columns)
