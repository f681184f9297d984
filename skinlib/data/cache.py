"""Pre-resized image cache: decode and resize full-size images once, not every epoch.

Decoding a 600x450 (or 6000x4000) JPEG and resizing it for every sample of every epoch is what
leaves GPUs idle. The cache stores each image upright and RGB with its shorter side resized to
``size``, aspect ratio kept, as a JPEG of quality 95.

Why not a centre-cropped square: the training transforms take random crops of the whole image
(RandomResizedCrop), and the evaluation transform resizes the shorter side and centre-crops
itself, so keeping the full field of view makes the cache a pure speed-up that changes no result
beyond JPEG rounding. Images already smaller than ``size`` are stored as they are (upsampling
adds nothing the transforms would not do).

Entries live in ``cache_root/<size>/<hash>.jpg``, the hash taken over the source's resolved path,
modification time and byte size: a changed source gets a new entry, unchanged ones are reused.
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pandas as pd
from PIL import Image

from skinlib import paths
from skinlib.data.images import load_image
from skinlib.errors import DataError
from skinlib.io import atomic_path
from skinlib.progress import tqdm

JPEG_QUALITY = 95  # visually lossless; 4:2:0 chroma as in the source JPEGs


def cache_key(source: str | Path, size: int) -> str:
    """Hash of what makes an entry valid: source path, mtime, byte size and target size."""
    stat = os.stat(source)
    text = f"{Path(source).resolve()}|{stat.st_mtime_ns}|{stat.st_size}|{size}"
    return hashlib.sha1(text.encode()).hexdigest()


def resize_shorter(image: Image.Image, size: int) -> Image.Image:
    """Resize so the shorter side is ``size`` px, aspect kept (never upsamples).

    Uses Pillow's antialiased bicubic filter, as timm and torchvision do with antialias=True.
    """
    w, h = image.size
    scale = size / min(w, h)
    if scale >= 1:
        return image
    return image.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.BICUBIC)


def _build_one(job: tuple[str, str, int]) -> bool:
    """Build one entry; False when the source is unreadable (the Dataset reports or skips it)."""
    source, target, size = job
    if os.path.exists(target):
        return True
    try:
        image = resize_shorter(load_image(source), size)
    except DataError:
        return False
    with atomic_path(target) as tmp:  # parallel builders never see half a file
        image.save(tmp, format="JPEG", quality=JPEG_QUALITY)
    return True


def _run(jobs: list[tuple[str, str, int]], workers: int, progress: bool, size: int) -> set[str]:
    """Build ``jobs`` on ``workers`` processes; the targets that failed."""
    failed: set[str] = set()
    with tqdm(total=len(jobs), desc=f"cache {size}px", unit="img", disable=not progress) as bar:
        if workers > 1 and len(jobs) > 8:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                for job, ok in zip(jobs, pool.map(_build_one, jobs, chunksize=16), strict=True):
                    failed.update(() if ok else (job[1],))
                    bar.update()
        else:
            for job in jobs:
                failed.update(() if _build_one(job) else (job[1],))
                bar.update()
    return failed


def build_cache(
    table: pd.DataFrame,
    size: int,
    cache_root: str | Path | None = None,
    workers: int = 2,
    progress: bool = True,
) -> pd.DataFrame:
    """Resize every image of ``table`` once; return a copy whose ``path`` points at the cache.

    Args:
        table: common-schema table with image paths.
        size: shorter side of the cached images, in px (e.g. 256 for 224 px training crops).
        cache_root: default ``skinlib.paths.cache_dir() / "images"``.
        workers: processes that decode and resize in parallel.

    Returns:
        A copy with ``path`` at the cached file and the original in ``source_path``. Sources that
        are missing or unreadable keep their own path, so the Dataset names (or skips) them.
    """
    if table["path"].isna().any():
        raise DataError(
            "the table has rows without an image path (loaded with require_images=False?); "
            "load it with its images before caching"
        )
    root = Path(cache_root) if cache_root else paths.cache_dir() / "images"
    folder = root / str(int(size))
    folder.mkdir(parents=True, exist_ok=True)
    sources = table["path"].astype(str).tolist()
    targets = [
        str(folder / f"{cache_key(s, size)}.jpg") if os.path.isfile(s) else s for s in sources
    ]
    jobs = [(s, t, size) for s, t in zip(sources, targets, strict=True) if s != t]
    jobs = [j for j in jobs if not os.path.exists(j[1])]
    failed = _run(jobs, workers, progress, size) if jobs else set()
    out = table.copy()
    out["source_path"] = sources
    out["path"] = [s if t in failed else t for s, t in zip(sources, targets, strict=True)]
    return out
