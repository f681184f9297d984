"""``skinlib validate``: scan a dataset and report every problem before training meets it."""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
from PIL import Image
from tqdm.auto import tqdm

from skinlib.data.adapters import Problem, read_source
from skinlib.data.images import load_image
from skinlib.errors import DataError

MIN_SIDE = 64  # px: smaller images carry no dermoscopic detail
MAX_SIDE = 10_000  # px: larger ones are probably scans or stitched photos
MAX_ASPECT = 4.0


def _check_image(path: str) -> tuple[str, str | None, tuple[int, int] | None, str | None]:
    """(path, problem kind, size, detail) for one file; also hashes its bytes."""
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        return path, "unreadable", None, str(err)
    digest = hashlib.blake2b(data, digest_size=16).hexdigest()
    if not data:
        return path, "empty_file", None, f"{path}: empty file (0 bytes)|{digest}"
    try:
        with Image.open(path) as im:
            size = im.size
        load_image(path)
    except DataError as err:
        return path, "unreadable_image", None, f"{err}|{digest}"
    except Exception as err:  # Pillow/pydicom on hostile files
        return path, "unreadable_image", None, f"{err}|{digest}"
    return path, None, size, digest


def _size_problem(size: tuple[int, int]) -> str | None:
    w, h = size
    if min(w, h) < MIN_SIDE or max(w, h) > MAX_SIDE or max(w, h) / max(1, min(w, h)) > MAX_ASPECT:
        return f"extreme size {w}x{h} px (expected sides {MIN_SIDE}-{MAX_SIDE}, aspect <= {MAX_ASPECT})"
    return None


def validate_dataset(
    root: str | Path, format: str = "ham10000", workers: int = 2, progress: bool = True
) -> pd.DataFrame:
    """Every problem of a dataset, one row each: ``file, row, problem, detail``.

    Checks the label file (columns, labels, one-hot rows, duplicate ids), the images (missing,
    empty, truncated, not an image, extreme sizes) and byte-identical images under two ids.
    """
    table, problems = read_source(root, format)
    paths = table["path"].dropna().tolist()
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        results = list(
            tqdm(
                pool.map(_check_image, paths),
                total=len(paths),
                desc="validate",
                disable=not progress,
            )
        )
    by_hash: dict[str, str] = {}
    for path, kind, size, detail in results:
        if kind:
            problems.append(Problem(path, None, kind, detail.rsplit("|", 1)[0]))
            continue
        if (msg := _size_problem(size)) is not None:
            problems.append(Problem(path, None, "extreme_size", msg))
        if detail in by_hash:
            problems.append(
                Problem(
                    path,
                    None,
                    "duplicate_image",
                    f"byte-identical to {by_hash[detail]}; "
                    "two ids for one image can leak across splits: drop one",
                )
            )
        else:
            by_hash[detail] = path
    return pd.DataFrame(
        [p.__dict__ for p in problems], columns=["file", "row", "problem", "detail"]
    )
