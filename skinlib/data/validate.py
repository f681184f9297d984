"""``skinlib validate``: scan a dataset and report every problem before training meets it."""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd
from PIL import Image, UnidentifiedImageError

from skinlib.data.adapters import Problem, read_source
from skinlib.data.images import is_dicom, load_image
from skinlib.errors import DataError
from skinlib.progress import tqdm

MIN_SIDE = 64  # px: smaller images carry no dermoscopic detail (or are thumbnails)
MAX_SIDE = 10_000  # px: larger ones are scans or stitched photos, and slow every epoch
MAX_ASPECT = 4.0  # long/short side: beyond this a centre crop loses most of the image
REPORT_COLUMNS = ["file", "row", "problem", "detail"]


@dataclass
class ImageCheck:
    """The outcome of reading one file: a problem kind (or None), its size and byte hash."""

    path: str
    problem: str | None = None  # unreadable | empty_file | not_image | corrupt_image
    detail: str = ""
    size: tuple[int, int] | None = None  # (width, height) in px, upright
    digest: str | None = None  # blake2b of the file bytes


def _not_an_image(path: str) -> bool:
    """True when no reader recognises the file at all (as opposed to a damaged image)."""
    if is_dicom(Path(path)):
        return False
    try:
        with Image.open(path):
            return False
    except UnidentifiedImageError:
        return True
    except OSError:
        return False


def check_image(path: str) -> ImageCheck:
    """Read and fully decode one file, as training would, and hash its bytes."""
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        return ImageCheck(path, "unreadable", f"cannot read the file ({err}); check permissions")
    digest = hashlib.blake2b(data, digest_size=16).hexdigest()
    if not data:
        return ImageCheck(
            path,
            "empty_file",
            "empty file (0 bytes); re-download it or remove its row",
            digest=digest,
        )
    try:
        size = load_image(path).size
    except DataError as err:
        kind = "not_image" if _not_an_image(path) else "corrupt_image"
        return ImageCheck(path, kind, str(err).removeprefix(f"{path}: "), digest=digest)
    return ImageCheck(path, size=size, digest=digest)


def size_problem(size: tuple[int, int]) -> str | None:
    """A message when an image's size is implausible for dermoscopy, else None."""
    w, h = size
    if min(w, h) < MIN_SIDE or max(w, h) > MAX_SIDE or max(w, h) / max(1, min(w, h)) > MAX_ASPECT:
        return (
            f"extreme size {w}x{h} px (expected sides {MIN_SIDE}-{MAX_SIDE} px, aspect ratio <= "
            f"{MAX_ASPECT:g}); check that it is a dermoscopic image"
        )
    return None


def _image_problems(checks: list[ImageCheck], ids: dict[str, str]) -> list[Problem]:
    """Per-file problems, plus byte-identical files under two ids (they leak across splits)."""
    problems: list[Problem] = []
    first_with: dict[str, str] = {}  # byte hash -> first file with it
    for c in checks:
        if c.problem:
            problems.append(Problem(c.path, None, c.problem, c.detail))
            continue
        if msg := size_problem(c.size):
            problems.append(Problem(c.path, None, "extreme_size", msg))
        if c.digest in first_with:
            other = first_with[c.digest]
            problems.append(
                Problem(
                    c.path,
                    None,
                    "duplicate_image",
                    f"image {ids[c.path]} is byte-identical to {ids[other]} ({other}); one "
                    "image under two ids can land in two splits: drop one or give both one group",
                )
            )
        else:
            first_with[c.digest] = c.path
    return problems


def validate_dataset(
    root: str | Path, format: str = "ham10000", workers: int = 2, progress: bool = True
) -> pd.DataFrame:
    """Every problem of a dataset, one row each: ``file, row, problem, detail``.

    Checks the label file (columns, labels, one-hot rows, duplicate ids), each image (missing,
    empty, truncated or corrupt, not an image, extreme size) and byte-identical images under
    different ids. Images are decoded on ``workers`` threads (Pillow releases the GIL).
    An empty frame means the dataset is clean.
    """
    try:
        table, problems = read_source(root, format)
    except DataError as err:  # nothing else can be checked without the label file
        return pd.DataFrame([[str(root), None, "label_file", str(err)]], columns=REPORT_COLUMNS)
    listed = table.dropna(subset=["path"])
    ids = dict(zip(listed["path"], listed["image_id"], strict=True))
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        checks = list(
            tqdm(
                pool.map(check_image, list(ids)),
                total=len(ids),
                desc="validate",
                unit="img",
                disable=not progress,
            )
        )
    problems += _image_problems(checks, ids)
    report = pd.DataFrame([asdict(p) for p in problems], columns=REPORT_COLUMNS)
    report["row"] = report["row"].astype("Int64")
    return report
