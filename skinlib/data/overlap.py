"""Image identity across datasets: one picture under another id, file, encoding or lesion.

External validation is external only when the model never saw the images. Public dermoscopy sets
overlap: ISIC 2019 holds all of HAM10000 under the same ``ISIC_*`` ids (some with a
``_downsampled`` suffix), and later ISIC releases reuse archive images, re-encoded or resized.
Two rows are the same image, in this order of evidence, when they share

* ``id``: the image id, ignoring case, file extension and ``_downsampled``;
* ``content``: the file's bytes (sha256);
* ``perceptual``: the picture, by a 256-bit perceptual hash (pHash) at most
  :data:`PHASH_MAX_DISTANCE` bits apart, which survives resizing and re-compression; or
* ``group``: the lesion (or patient) id, where both rows record one (HAM10000's ``HAM_*`` lesion
  ids reappear in ISIC 2019's metadata): another image of a lesion the model trained on is not
  external either.

:func:`flag_run_images` applies these to an external table and a run's split file; the
evaluation module drops what it flags, and ``skinlib validate`` reuses the hashes to find
duplicates inside one dataset.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import sqlite3
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import imagehash
import numpy as np
import pandas as pd
from PIL import Image, ImageOps

from skinlib import paths
from skinlib.data.images import IMAGE_SUFFIXES, is_dicom, load_image, to_rgb
from skinlib.errors import DataError
from skinlib.progress import tqdm

log = logging.getLogger(__name__)

REASONS = ("id", "content", "perceptual", "group")  # strongest evidence first
# 16x16 = 256 bits. The usual 8x8 pHash is too coarse for dermoscopy (a dark blob centred in a
# vignette): on the 10,015 HAM10000 images, 40 pairs of *different* lesions are within 2 of its
# 64 bits, one pair at 0.
PHASH_SIZE = 16
# Measured on the HAM10000 images at 200x150 (``/work/shared`` copy): a copy resized to half and
# re-saved at JPEG quality 70 moves by at most 26 bits (99.9th percentile 24; n = 2,003), one
# upscaled 3x and re-saved at quality 90 by at most 10. Among the 50 million pairs of different
# lesions, the closest are 16 bits apart (a genuine duplicate filed under two lesion ids), then 32
# (different lesions). 28 sits between the two.
PHASH_MAX_DISTANCE = 28
DRAFT_SIZE = (128, 128)  # JPEGs decode at 1/2..1/8 scale, still 2x the 64 px the hash reads
HASH_RECIPE = f"sha256+phash{PHASH_SIZE}"  # part of each cache key: a new recipe, new entries
_CHUNK_BYTES = 64 * 2**20  # memory for one block of pairwise distances


def normalise_ids(ids: pd.Series) -> pd.Series:
    """Ids with case, image extension and ISIC 2019's ``_downsampled`` suffix removed."""
    suffix = "|".join(s.removeprefix(".") for s in IMAGE_SUFFIXES)
    text = ids.astype(str).str.strip().str.lower()
    return text.str.replace(rf"\.(?:{suffix})$", "", regex=True).str.removesuffix("_downsampled")


def normalise_id(image_id: object) -> str:
    """One id as :func:`normalise_ids` compares it.

    >>> normalise_id("ISIC_0000017_downsampled.JPG")
    'isic_0000017'
    """
    return normalise_ids(pd.Series([image_id])).iloc[0]


def lesion_groups(table: pd.DataFrame) -> pd.Series:
    """Each row's normalised group, or NaN where the group is only the image's own id.

    Adapters fall back to the image id when a source records no lesion or patient; such a
    "group" says nothing beyond the id.
    """
    groups = normalise_ids(table["group"]).where(table["group"].notna())
    return groups.where(groups != normalise_ids(table["image_id"]))


def perceptual_hash(image: Image.Image) -> str:
    """The 256-bit pHash of a picture, as 64 hex digits (grey levels, DCT of a 64x64 copy)."""
    return str(imagehash.phash(image, hash_size=PHASH_SIZE))


def content_hash(data: bytes) -> str:
    """sha256 of a file's bytes, hex: the same bytes are the same image, whatever the name."""
    return hashlib.sha256(data).hexdigest()


def _picture(path: Path, data: bytes) -> Image.Image:
    """The picture, upright and RGB; JPEGs decoded at reduced scale (the hash needs 64 px)."""
    if is_dicom(path):
        return load_image(path)
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.format == "JPEG":
                image.draft("RGB", DRAFT_SIZE)
            image.load()
            return to_rgb(ImageOps.exif_transpose(image))
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise DataError(f"{path}: cannot be decoded for hashing ({err})") from None


def file_hashes(path: str | Path) -> tuple[str, str]:
    """``(sha256, phash)`` of one image file.

    Raises:
        DataError: the file is missing or cannot be decoded.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise DataError(f"{path}: cannot be read ({err})") from None
    return content_hash(data), perceptual_hash(_picture(path, data))


class _HashCache:
    """Hashes already computed, keyed by resolved path, mtime, size and :data:`HASH_RECIPE`.

    A SQLite file in the cache folder; when it cannot be opened (read-only disk), hashing still
    works, uncached.
    """

    def __init__(self) -> None:
        self.db = None
        try:
            folder = paths.cache_dir()
            folder.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(folder / "image_hashes.sqlite", timeout=30)
            self.db.execute(
                "CREATE TABLE IF NOT EXISTS hashes (key TEXT PRIMARY KEY, sha256 TEXT, phash TEXT)"
            )
        except (OSError, sqlite3.Error) as err:
            log.debug("image hash cache unavailable (%s); hashing without it", err)
            self.db = None

    @staticmethod
    def key(path: str) -> str | None:
        try:
            stat = os.stat(path)
        except OSError:
            return None
        return f"{Path(path).resolve()}|{stat.st_mtime_ns}|{stat.st_size}|{HASH_RECIPE}"

    def get(self, keys: list[str]) -> dict[str, tuple[str, str]]:
        if self.db is None:
            return {}
        found = {}
        for start in range(0, len(keys), 500):  # SQLite caps the parameters of one query
            chunk = keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self.db.execute(f"SELECT * FROM hashes WHERE key IN ({marks})", chunk)
            found.update({k: (s, p) for k, s, p in rows})
        return found

    def put(self, entries: dict[str, tuple[str, str]]) -> None:
        if self.db is None or not entries:
            return
        try:
            with self.db:
                self.db.executemany(
                    "INSERT OR REPLACE INTO hashes VALUES (?, ?, ?)",
                    [(k, s, p) for k, (s, p) in entries.items()],
                )
        except sqlite3.Error as err:
            log.debug("cannot write the image hash cache (%s)", err)

    def close(self) -> None:
        if self.db is not None:
            self.db.close()


def _try_hash(path: str) -> tuple[str, str] | None:
    try:
        return file_hashes(path)
    except DataError as err:
        log.debug("not hashed: %s", err)
        return None


def hash_files(files: Iterable[object], workers: int = 2, progress: bool = True) -> pd.DataFrame:
    """``sha256`` and ``phash`` of each file, indexed by path; NaN where unreadable.

    Hashes are cached per file (path, modification time, size), so a run's own images are
    hashed once for all its evaluations. Files are read on ``workers`` threads.
    """
    unique = list(dict.fromkeys(str(f) for f in files if isinstance(f, str | Path)))
    cache = _HashCache()
    try:
        keys = {f: cache.key(f) for f in unique}
        found = cache.get([k for k in keys.values() if k])
        todo = [f for f in unique if keys[f] and keys[f] not in found]
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            results = list(
                tqdm(
                    pool.map(_try_hash, todo),
                    total=len(todo),
                    desc="hash images",
                    unit="img",
                    disable=not progress or not todo,
                )
            )
        new = {keys[f]: r for f, r in zip(todo, results, strict=True) if r is not None}
        cache.put(new)
    finally:
        cache.close()
    found.update(new)
    rows = [found.get(keys[f], (np.nan, np.nan)) if keys[f] else (np.nan, np.nan) for f in unique]
    return pd.DataFrame(rows, index=pd.Index(unique, name="path"), columns=["sha256", "phash"])


def _bits(hexes: Sequence[str]) -> np.ndarray:
    """Hex hashes as rows of uint64 words: (n, bits / 64)."""
    words = np.frombuffer(b"".join(bytes.fromhex(h) for h in hexes), dtype=np.uint64)
    return words.reshape(len(hexes), -1) if len(hexes) else words.reshape(0, 0)


def _popcount(x: np.ndarray) -> np.ndarray:
    if hasattr(np, "bitwise_count"):  # numpy >= 2.0
        return np.bitwise_count(x)
    table = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)
    return table[x.view(np.uint8)].reshape(*x.shape, 8).sum(-1)


def close_pairs(
    a: Sequence[str], b: Sequence[str] | None = None, max_distance: int = PHASH_MAX_DISTANCE
) -> pd.DataFrame:
    """Pairs of hashes at most ``max_distance`` bits apart: columns ``i, j, distance``.

    ``i`` indexes ``a`` and ``j`` indexes ``b``; without ``b``, pairs within ``a`` with ``i < j``.
    All pairs are compared, in blocks that bound memory (25,000 x 10,000 takes seconds).
    """
    x = _bits(list(a))
    y = x if b is None else _bits(list(b))
    found = []
    if len(x) and len(y):
        step = max(1, _CHUNK_BYTES // (y.size * 8))
        for start in range(0, len(x), step):
            block = x[start : start + step]
            dist = _popcount(block[:, None, :] ^ y[None, :, :]).sum(-1, dtype=np.int64)
            i, j = np.nonzero(dist <= max_distance)
            if b is None:
                keep = start + i < j
                i, j = i[keep], j[keep]
            found.append(np.stack([start + i, j, dist[i, j]], axis=1))
    pairs = np.concatenate(found) if found else np.zeros((0, 3), dtype=np.int64)
    return pd.DataFrame(pairs, columns=["i", "j", "distance"])


def match_images(
    table: pd.DataFrame, reference: pd.DataFrame, max_distance: int = PHASH_MAX_DISTANCE
) -> pd.DataFrame:
    """For each row of ``table``, the strongest way it is an image of ``reference``.

    Args:
        table, reference: ``image_id`` and ``group`` columns; ``sha256`` and ``phash`` (from
            :func:`hash_files`, NaN where unknown) enable the content and perceptual checks.
        max_distance: pHash bits two copies of one picture may differ by.

    Returns:
        ``reason`` (one of :data:`REASONS`, NaN for no match), ``match`` (the reference image
        id) and ``distance`` (pHash bits, for perceptual matches), on ``table``'s index.
    """
    out = pd.DataFrame({"reason": np.nan, "match": np.nan, "distance": np.nan}, index=table.index)
    out = out.astype({"reason": object, "match": object})

    def mark(reason: str, hits: pd.Series, distance: pd.Series | None = None) -> None:
        new = hits.notna() & out["reason"].isna()
        out.loc[new, "reason"] = reason
        out.loc[new, "match"] = hits[new]
        if distance is not None:
            out.loc[new, "distance"] = distance[new]

    ref_ids = reference["image_id"].astype(str)
    by_id = dict(zip(normalise_ids(ref_ids), ref_ids, strict=True))
    mark("id", normalise_ids(table["image_id"]).map(by_id))
    if "sha256" in table and "sha256" in reference:
        known = reference.dropna(subset=["sha256"])
        by_bytes = dict(zip(known["sha256"], known["image_id"].astype(str), strict=True))
        mark("content", table["sha256"].map(by_bytes, na_action="ignore"))
    if "phash" in table and "phash" in reference:  # only rows not matched yet: all-pairs cost
        hits, distance = _nearest(table[out["reason"].isna()], reference, max_distance)
        mark("perceptual", hits.reindex(table.index), distance.reindex(table.index))
    groups = lesion_groups(reference)
    by_group = dict(zip(groups[groups.notna()], ref_ids[groups.notna()], strict=True))
    mark("group", lesion_groups(table).map(by_group, na_action="ignore"))
    return out


def _nearest(table, reference, max_distance) -> tuple[pd.Series, pd.Series]:
    """The closest reference image within ``max_distance`` pHash bits of each row, and how far."""
    q = table["phash"].dropna()
    r = reference.dropna(subset=["phash"])
    pairs = close_pairs(q.tolist(), r["phash"].tolist(), max_distance)
    pairs = pairs.sort_values(["i", "distance"]).drop_duplicates("i")
    index = q.index[pairs["i"].to_numpy()]
    hits = pd.Series(r["image_id"].astype(str).to_numpy()[pairs["j"].to_numpy()], index=index)
    distance = pd.Series(pairs["distance"].to_numpy(), index=index)
    return hits.reindex(table.index), distance.reindex(table.index)


@dataclass
class OverlapReport:
    """What an external table shared with a run, one reason per dropped image."""

    checked: int  # external images examined
    seen: dict[str, int]  # dropped as train/val images, per reason in REASONS
    run_test: int  # dropped as the run's own test images (internal, not external)
    unhashed_external: int  # external images that could not be hashed (ids, groups only)
    unhashed_run: int  # run images that could not be hashed (moved or deleted since training;
    # 0 when no external image could be hashed either: then nothing is compared by content)
    max_distance: int = PHASH_MAX_DISTANCE
    excluded: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)  # the rows dropped

    @property
    def dropped(self) -> int:
        return sum(self.seen.values()) + self.run_test

    @property
    def kept(self) -> int:
        return self.checked - self.dropped

    def summary(self) -> dict:
        """JSON-ready counts, for ``report.json``."""
        return {
            "checked": self.checked,
            "dropped": self.dropped,
            "kept": self.kept,
            "train_val_by_reason": dict(self.seen),
            "run_test": self.run_test,
            "unhashed_external": self.unhashed_external,
            "unhashed_run": self.unhashed_run,
            "phash_max_distance": self.max_distance,
        }

    def message(self) -> str:
        """One line: how many were dropped and why."""
        reasons = ", ".join(f"{k} {v}" for k, v in self.seen.items())
        return (
            f"{self.checked} images checked against the run's split: dropped "
            f"{sum(self.seen.values())} the run trained or was selected on ({reasons}) and "
            f"{self.run_test} of its own test split; {self.kept} external images remain"
        )


def flag_run_images(
    table: pd.DataFrame,
    run_split: pd.DataFrame,
    workers: int = 2,
    progress: bool = True,
    max_distance: int = PHASH_MAX_DISTANCE,
) -> tuple[pd.DataFrame, OverlapReport]:
    """Mark the rows of an external ``table`` that a run trained, was selected or tested on.

    Train and val images (and their copies and lesions) are never external; images matching
    the run's test split are its internal test set, not an external one. Both are flagged.

    Args:
        table: external table in the common schema (``image_id, group, path``, ...).
        run_split: the run's ``split.csv`` (``image_id, group, split``, ``path``).

    Returns:
        ``table`` (index reset) plus ``overlap_reason`` (NaN for a truly external image),
        ``overlap_split`` (``train``, ``val`` or ``test``) and ``overlap_image`` (the run's
        image id); and the counts as an :class:`OverlapReport`.
    """
    if "split" not in run_split:
        raise DataError(
            f"the run's split file has no split column (columns: {list(run_split.columns)})"
        )
    table = table.reset_index(drop=True)
    ext = _with_hashes(table, None, workers, progress)
    run = _with_hashes(run_split, ext, workers, progress)
    seen_rows = run[run["split"] != "test"]
    test_rows = run[run["split"] == "test"]
    seen = match_images(ext, seen_rows, max_distance)
    test = match_images(ext, test_rows, max_distance)
    test.loc[seen["reason"].notna()] = np.nan  # a train/val match outranks a test match
    split_of = dict(zip(run["image_id"].astype(str), run["split"], strict=True))
    first = seen.combine_first(test)
    flagged = table.assign(
        overlap_reason=first["reason"],
        overlap_split=first["match"].map(split_of, na_action="ignore"),
        overlap_image=first["match"],
    )
    counts = seen["reason"].value_counts()
    report = OverlapReport(
        checked=len(table),
        seen={r: int(counts.get(r, 0)) for r in REASONS},
        run_test=int(test["reason"].notna().sum()),
        unhashed_external=int(ext["phash"].isna().sum()),
        unhashed_run=int(run["phash"].isna().sum()) if ext["phash"].notna().any() else 0,
        max_distance=max_distance,
        excluded=flagged[flagged["overlap_reason"].notna()],
    )
    return flagged, report


def _with_hashes(rows: pd.DataFrame, other: pd.DataFrame | None, workers, progress):
    """``rows`` plus their hashes; the run's side is skipped when no external image has one."""
    if other is not None and other["phash"].isna().all():
        return rows.assign(sha256=np.nan, phash=np.nan)
    path = rows["path"] if "path" in rows else pd.Series(np.nan, index=rows.index)
    path = path.map(str, na_action="ignore")
    hashes = hash_files(path.dropna(), workers, progress)
    return rows.assign(
        sha256=path.map(hashes["sha256"], na_action="ignore"),
        phash=path.map(hashes["phash"], na_action="ignore"),
    )
