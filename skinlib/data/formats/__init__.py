"""Dataset formats: every public dataset layout becomes one table with a common schema.

Columns: ``image_id, path, label, group, age, sex, site, source`` (+ the source's own columns and
``mask_path`` where ground-truth lesion masks exist). ``group`` is the id that must never cross
splits: the lesion where the source records it, else the patient, else the image itself.

One module per format (its layout, label file, known size, reader and display name in a
:class:`~skinlib.data.formats.base.DatasetFormat`), registered in :data:`FORMATS` below, as
timm's ``data/readers/``: ``ham10000``, ``isic2018`` (the official HAM10000 test protocol: ISIC
2018 Task 3 test or validation set, in either published release), ``isic2019``, ``isic2020``,
``ph2`` (PH2, Hospital Pedro Hispano) and ``folder``. A new format is one module here and one
line in :data:`FORMATS`.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from skinlib.data.formats import folder, ham10000, isic2018, isic2019, isic2020, ph2
from skinlib.data.formats.base import ADVISORY, SCHEMA, DatasetFormat, Problem
from skinlib.errors import DataError

# The registry: format name -> its description, in the order the CLI offers them.
FORMATS: dict[str, DatasetFormat] = {
    m.FORMAT.name: m.FORMAT for m in (ham10000, isic2018, isic2019, isic2020, ph2, folder)
}


def get_format(name: str) -> DatasetFormat:
    """The registered format ``name``; a :class:`DataError` naming the others if there is none."""
    if name not in FORMATS:
        raise DataError(f"unknown dataset format {name!r}; choose one of {list(FORMATS)}")
    return FORMATS[name]


log = logging.getLogger(__name__)


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
    spec = get_format(format)
    root = Path(root).expanduser()
    if not root.exists():
        raise DataError(f"dataset folder {root} does not exist; check data.root / the path given")
    problems: list[Problem] = []
    table = spec.read(root, problems, require_images)
    label_file = root if root.is_file() else root / spec.label_file
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
