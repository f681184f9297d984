"""``skinlib validate``: scan a dataset and report every problem before training meets it."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd
from PIL import Image, UnidentifiedImageError

from skinlib.data.formats import read_source
from skinlib.data.formats.base import Problem
from skinlib.data.images import MAX_PIXELS, is_dicom, load_image
from skinlib.data.overlap import (
    PHASH_MAX_DISTANCE,
    close_pairs,
    content_hash,
    lesion_groups,
    perceptual_hash,
)
from skinlib.data.splits import load_split
from skinlib.errors import DataError
from skinlib.progress import tqdm

MIN_SIDE = 64  # px: smaller images carry no dermoscopic detail (or are thumbnails)
MAX_SIDE = 10_000  # px: larger ones are scans or stitched photos, and slow every epoch
MAX_ASPECT = 4.0  # long/short side: beyond this a centre crop loses most of the image
REPORT_COLUMNS = ["file", "row", "problem", "detail"]


@dataclass
class ImageCheck:
    """The outcome of reading one file: a problem kind (or None), its size and hashes."""

    path: str
    problem: str | None = None  # unreadable | empty_file | not_image | corrupt_image
    detail: str = ""
    size: tuple[int, int] | None = None  # (width, height) in px, upright when decoded
    digest: str | None = None  # sha256 of the file bytes
    phash: str | None = None  # perceptual hash of the picture (None when not decoded)


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


def _header_size(path: str) -> tuple[int, int] | None:
    """(width, height) from the file's header, without decoding; None when Pillow cannot tell."""
    if is_dicom(Path(path)):
        return None
    try:
        with Image.open(path) as image:
            return image.size
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return None  # the full decode below says what is wrong


def check_image(path: str) -> ImageCheck:
    """Read and fully decode one file, as training would, and hash its bytes and picture.

    Files over :data:`MAX_PIXELS` are measured from their header only (see :func:`pixel_problem`).
    """
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        return ImageCheck(path, "unreadable", f"cannot read the file ({err}); check permissions")
    digest = content_hash(data)
    if not data:
        return ImageCheck(
            path,
            "empty_file",
            "empty file (0 bytes); re-download it or remove its row",
            digest=digest,
        )
    header = _header_size(path)
    if header and header[0] * header[1] > MAX_PIXELS:
        return ImageCheck(path, size=header, digest=digest)
    try:
        image = load_image(path)
    except DataError as err:
        kind = "not_image" if _not_an_image(path) else "corrupt_image"
        return ImageCheck(path, kind, str(err).removeprefix(f"{path}: "), digest=digest)
    return ImageCheck(path, size=image.size, digest=digest, phash=perceptual_hash(image))


def size_problem(size: tuple[int, int]) -> str | None:
    """A message when an image's size is implausible for dermoscopy, else None."""
    w, h = size
    if min(w, h) < MIN_SIDE or max(w, h) > MAX_SIDE or max(w, h) / max(1, min(w, h)) > MAX_ASPECT:
        return (
            f"extreme size {w}x{h} px (expected sides {MIN_SIDE}-{MAX_SIDE} px, aspect ratio <= "
            f"{MAX_ASPECT:g}); check that it is a dermoscopic image"
        )
    return None


def pixel_problem(size: tuple[int, int]) -> str | None:
    """A message when an image has more pixels than :data:`MAX_PIXELS`, else None."""
    w, h = size
    if w * h <= MAX_PIXELS:
        return None
    return (
        f"{w}x{h} px = {w * h / 1e6:.0f} megapixels (limit {MAX_PIXELS / 1e6:.0f}): "
        f"{w * h * 3 / 2**20:.0f} MiB per decoded copy, and a decompression-bomb risk, so it "
        "was not decoded; downscale it (dermoscopy needs no more than a few megapixels) or "
        "remove its row, and delete it if you do not know where such a large image came from"
    )


def _image_problems(
    checks: list[ImageCheck], rows: pd.DataFrame, split: pd.Series | None = None
) -> list[Problem]:
    """Per-file problems, then the images that repeat another one (see :func:`_repeats`)."""
    problems: list[Problem] = []
    for c in checks:
        if c.problem:
            problems.append(Problem(c.path, None, c.problem, c.detail))
            continue
        if msg := pixel_problem(c.size):
            problems.append(Problem(c.path, None, "too_many_pixels", msg))
        if msg := size_problem(c.size):
            problems.append(Problem(c.path, None, "extreme_size", msg))
    return problems + _repeats([c for c in checks if not c.problem], rows, split)


def _repeats(checks: list[ImageCheck], rows: pd.DataFrame, split: pd.Series | None):
    """One problem per image that repeats an earlier one under another id.

    Repeats are the same bytes, or the same picture (perceptual hash within
    :data:`~skinlib.data.overlap.PHASH_MAX_DISTANCE` bits) under another lesion: several views of
    one lesion look alike by nature, and a grouped split keeps them together. With a split
    file, a repeat across two splits (or folds) is a ``split_leak``.
    """
    rows = rows.drop_duplicates("path")  # an id listed twice is reported as duplicate_id
    info = rows.set_index("path")
    groups = lesion_groups(rows).fillna(rows["image_id"]).set_axis(rows["path"])
    earlier: dict[str, tuple[str, str]] = {}  # later path -> (earlier path, how they match)
    first_with: dict[str, str] = {}  # byte hash -> first file with it
    for c in checks:
        if c.digest in first_with:
            earlier[c.path] = (first_with[c.digest], "identical bytes")
        else:
            first_with[c.digest] = c.path
    hashed = [c for c in checks if c.phash]
    pairs = close_pairs([c.phash for c in hashed])
    a = pd.Series([hashed[i].path for i in pairs["i"]], dtype=object)
    b = pd.Series([hashed[j].path for j in pairs["j"]], dtype=object)
    pairs = pairs.assign(a=a, b=b)[(groups[a].to_numpy() != groups[b].to_numpy())]
    for _, pair in pairs.sort_values(["j", "distance"]).drop_duplicates("j").iterrows():
        if pair["b"] not in earlier:
            earlier[pair["b"]] = (
                pair["a"],
                f"perceptual hashes {pair['distance']} of 256 bits apart",
            )
    problems = []
    for path, (other, how) in earlier.items():
        ids = info.loc[path, "image_id"], info.loc[other, "image_id"]
        where = [split.get(i) for i in ids] if split is not None else [None, None]
        if None not in where and where[0] != where[1]:
            problems.append(
                Problem(
                    path,
                    None,
                    "split_leak",
                    f"image {ids[0]} ({where[0]}) and {ids[1]} ({where[1]}, {other}) are the same "
                    f"picture ({how}): the model would be selected or tested on an image it "
                    "trained on; drop one, or give both one group and split again",
                )
            )
        elif how == "identical bytes":
            problems.append(
                Problem(
                    path,
                    None,
                    "duplicate_image",
                    f"image {ids[0]} is byte-identical to {ids[1]} ({other}); one image under "
                    "two ids can land in two splits: drop one or give both one group",
                )
            )
        else:
            problems.append(
                Problem(
                    path,
                    None,
                    "near_duplicate",
                    f"image {ids[0]} looks like {ids[1]} ({other}) of another lesion ({how}, "
                    f"limit {PHASH_MAX_DISTANCE}): probably one picture resized or re-encoded, "
                    "which can land in two splits; drop one or give both one group",
                )
            )
    return problems


def validate_dataset(
    root: str | Path,
    format: str = "ham10000",
    workers: int = 2,
    progress: bool = True,
    split_file: str | Path | None = None,
) -> pd.DataFrame:
    """Every problem of a dataset, one row each: ``file, row, problem, detail``.

    Checks the label file (columns, labels, one-hot rows, duplicate ids, metadata values outside
    the format's vocabulary or age range: ``bad_metadata``), image files no row names
    (``orphan_image``), each image (missing,
    empty, truncated or corrupt, not an image, extreme size or pixel count), byte-identical
    images under different ids and near-duplicates (one picture resized or re-encoded) of
    different lesions. Given ``split_file`` (``skinlib split``'s CSV), a repeated image in two
    splits or folds is a ``split_leak``. Images are decoded on ``workers`` threads (Pillow
    releases the GIL). An empty frame means the dataset is clean.
    """
    try:
        table, problems = read_source(root, format)
    except DataError as err:  # nothing else can be checked without the label file
        return pd.DataFrame([[str(root), None, "label_file", str(err)]], columns=REPORT_COLUMNS)
    try:
        split = _split_of(split_file) if split_file else None
    except DataError as err:
        return pd.DataFrame(
            [[str(split_file), None, "split_file", str(err)]], columns=REPORT_COLUMNS
        )
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
    problems += _image_problems(checks, listed[["path", "image_id", "group"]], split)
    report = pd.DataFrame([asdict(p) for p in problems], columns=REPORT_COLUMNS)
    report["row"] = report["row"].astype("Int64")
    return report


def _split_of(path: str | Path) -> pd.Series:
    """Image id -> split (or fold) from a split file, checked by :func:`load_split`."""
    df = load_split(path)
    column = "split" if "split" in df else "fold"
    return df.set_index("image_id")[column].astype(str)
