"""PH2 (Hospital Pedro Hispano): its two label files read into one table, and its image folders.

PH2 (Mendonça et al., EMBC 2013; Hospital Pedro Hispano, Matosinhos) has 200 dermoscopic images:
80 common nevi, 80 atypical nevi and 40 melanomas. Its archive ships the same table twice:

- ``PH2_dataset.xlsx``: a legend block, then a header row (``Image Name``, ``Histological
  Diagnosis``, ``Common Nevus``, ``Atypical Nevus``, ``Melanoma``, ``Asymmetry (0/1/2)``, ... the
  six colours) under a row of merged group titles (``Clinical Diagnosis``, ``Colors``); the
  clinical diagnosis is an ``X`` in one of its three columns. Public readers use ``header=12``.
- ``PH2_dataset.txt``: a ``||``-separated table (``|`` between the dermoscopic criteria) whose
  ``Clinical Diagnosis`` is a code: 0 common nevus, 1 atypical nevus, 2 melanoma; the 159 empty
  ``Histological Diagnosis`` cells are blanks between separators, so cells are split, not
  whitespace-tokenised. Lines that do not start with ``||`` (the legend) are not table rows.

Both readers return ``image_id, diagnosis, histology, _line, _error``: ``diagnosis`` is one of
:data:`DIAGNOSES` (None where the row is bad), ``_line`` the row in
the sheet or the line in the text file, ``_error`` what is wrong with the row (None when fine).
A file that cannot be read at all raises :class:`~skinlib.errors.DataError`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from skinlib.data.classes import PH2_CLASSES, PH2_DIAGNOSES
from skinlib.data.formats.base import DatasetFormat, Problem, attach_paths, row_problems
from skinlib.errors import DataError

DIAGNOSES = ("Common Nevus", "Atypical Nevus", "Melanoma")
CODES = {"0": "Common Nevus", "1": "Atypical Nevus", "2": "Melanoma"}  # the txt's encoding
COLUMNS = ["image_id", "diagnosis", "histology", "_line", "_error"]


def _text(cell) -> str:
    """A cell as stripped text ('' for empty); Excel may hand back numbers."""
    return "" if cell is None else str(cell).strip()


def read_xlsx(path: Path) -> pd.DataFrame:
    """The table of ``PH2_dataset.xlsx``: the first sheet, from the row that says ``Image Name``."""
    try:
        # openpyxl only for PH2's sheet (the txt needs none)
        import openpyxl
    except ImportError:
        raise DataError(
            f"{path}: reading .xlsx needs openpyxl (pip install openpyxl), or point at "
            "PH2_dataset.txt instead"
        ) from None
    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
        rows = [tuple(_text(c) for c in r) for r in book.worksheets[0].iter_rows(values_only=True)]
        book.close()
    except Exception as err:  # openpyxl raises zip, XML and key errors for non-workbooks
        raise DataError(f"{path}: cannot be read as an Excel workbook ({err})") from None
    start = next((i for i, r in enumerate(rows) if "Image Name" in r), None)
    if start is None:
        raise DataError(
            f"{path}: no header row with an 'Image Name' cell (PH2's table starts at row 13, "
            "under the legend); is this PH2_dataset.xlsx?"
        )
    header = list(rows[start])
    needed = ["Image Name", *DIAGNOSES]
    missing = [c for c in needed if c not in header]
    if missing:
        raise DataError(
            f"{path}, row {start + 1}: missing column(s) {missing}; expected {needed} (plus "
            f"Histological Diagnosis), found {[c for c in header if c]}"
        )
    at = {c: header.index(c) for c in [*needed, "Histological Diagnosis"] if c in header}
    out = []
    for number, row in enumerate(rows[start + 1 :], start=start + 2):
        row = row + ("",) * (len(header) - len(row))
        name = row[at["Image Name"]]
        if not name:  # blank rows (and notes below the table) are not cases
            continue
        marks = {d: row[at[d]] for d in DIAGNOSES if row[at[d]]}
        marked = [d for d, v in marks.items() if v.upper() == "X"]
        error = None
        if len(marked) != 1 or len(marks) != len(marked):
            error = (
                f"image {name} has {len(marked)} clinical diagnoses marked "
                f"({marks or 'none'}); mark exactly one of {list(DIAGNOSES)} with X: fix the row"
            )
        histology = row[at["Histological Diagnosis"]] if "Histological Diagnosis" in at else ""
        diagnosis = marked[0] if error is None else None
        out.append((name, diagnosis, histology or None, number, error))
    return pd.DataFrame(out, columns=COLUMNS)


def _cells(line: str) -> list[str]:
    """``|| a ||  || b | c ||`` -> ['', 'a', '', 'b | c', '']: empty cells are kept."""
    return [c.strip() for c in line.strip().split("||")]


def read_txt(path: Path) -> pd.DataFrame:
    """The table of ``PH2_dataset.txt``: rows after the ``|| Name || ...`` header line."""
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as err:
        raise DataError(f"{path}: cannot be read ({err})") from None
    start = next(
        (i for i, ln in enumerate(lines) if ln.lstrip().startswith("||") and "Name" in _cells(ln)),
        None,
    )
    if start is None:
        raise DataError(
            f"{path}: no header line '|| Name || Histological Diagnosis || Clinical Diagnosis "
            "|| ...'; is this PH2_dataset.txt?"
        )
    header = _cells(lines[start])
    if "Clinical Diagnosis" not in header:
        raise DataError(
            f"{path}, line {start + 1}: missing column 'Clinical Diagnosis'; found "
            f"{[c for c in header if c]}"
        )
    names = ("Name", "Clinical Diagnosis", "Histological Diagnosis")
    at = {c: header.index(c) for c in names if c in header}
    out = []
    for number, line in enumerate(lines[start + 1 :], start=start + 2):
        if not line.lstrip().startswith("||"):
            continue
        cells = _cells(line)
        if len(cells) != len(header):
            name = cells[at["Name"]] if len(cells) > at["Name"] else "?"
            error = (
                f"image {name}: {len(cells) - 2} cells where the header has {len(header) - 2} "
                "(cells are separated by '||'); fix the row"
            )
            out.append((name, None, None, number, error))
            continue
        name, code = cells[at["Name"]], cells[at["Clinical Diagnosis"]]
        diagnosis = CODES.get(code)
        error = None
        if diagnosis is None:
            error = (
                f"image {name}: Clinical Diagnosis {code!r} is not 0 (common nevus), 1 (atypical "
                "nevus) or 2 (melanoma); fix the row"
            )
        histology = cells[at["Histological Diagnosis"]] if "Histological Diagnosis" in at else ""
        out.append((name, diagnosis, histology or None, number, error))
    return pd.DataFrame(out, columns=COLUMNS)


def read_labels(path: Path) -> pd.DataFrame:
    """Either label file, chosen by its suffix."""
    return read_xlsx(path) if path.suffix.lower() in (".xlsx", ".xlsm") else read_txt(path)


PH2_XLSX = "PH2_dataset.xlsx"


PH2_TXT = "PH2_dataset.txt"


PH2_FOLDER = "PH2Dataset"  # the unpacked archive: labels and "PH2 Dataset images/" inside


PH2_IMAGE_DIR = "PH2 Dataset images"  # IMDxxx/IMDxxx_Dermoscopic_Image/IMDxxx.bmp


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
    out = attach_paths(
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
    problems += row_problems(df, bad, labels, "unknown_label", lambda r: r["_error"])
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


FORMAT = DatasetFormat(
    name="ph2",
    display_name="PH2",
    read=read_ph2,
    layout=f"{PH2_FOLDER}/ with {PH2_XLSX} (or {PH2_TXT}) and {PH2_IMAGE_DIR}/",
    classes=PH2_CLASSES,
    note=(
        "PH2's nevi include 80 atypical nevi, harder negatives than most of HAM10000's, and all "
        "200 images come from one hospital and one device."
    ),
)
