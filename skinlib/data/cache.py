"""Pre-resized image cache: decode and resize full-size images once, not every epoch.

Decoding a 600x450 (or 6000x4000) JPEG and resizing it for every sample of every epoch is what
leaves GPUs idle. The cache stores each image with its shorter side resized to ``size`` (aspect
kept, so random crops still see the whole lesion) as a JPEG of quality 95, named by a hash of the
source path, its modification time and the size: a changed source gets a new entry.
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pandas as pd
from PIL import Image
from tqdm.auto import tqdm

from skinlib import paths
from skinlib.data.images import load_image
from skinlib.errors import DataError
from skinlib.io import atomic_path


def cache_key(source: str | Path, size: int) -> str:
    stat = os.stat(source)
    text = f"{Path(source).resolve()}|{stat.st_mtime_ns}|{stat.st_size}|{size}"
    return hashlib.sha1(text.encode()).hexdigest()


def resize_shorter(image: Image.Image, size: int) -> Image.Image:
    """Resize so the shorter side is ``size`` (never upsamples beyond the source)."""
    w, h = image.size
    scale = size / min(w, h)
    if scale >= 1:
        return image
    return image.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.BICUBIC)


def _build_one(job: tuple[str, str, int]) -> str | None:
    """Build one entry; None when the source is unreadable (the Dataset reports or skips it)."""
    source, target, size = job
    if not os.path.exists(target):
        try:
            image = resize_shorter(load_image(source), size)
        except DataError:
            return None
        with atomic_path(target) as tmp:
            image.save(tmp, format="JPEG", quality=95)
    return target


def build_cache(
    table: pd.DataFrame,
    size: int,
    cache_root: str | Path | None = None,
    workers: int = 2,
    progress: bool = True,
) -> pd.DataFrame:
    """Resize every image of ``table`` once; return a copy whose ``path`` points at the cache.

    The original path moves to ``source_path``. Entries already built are reused.
    """
    root = Path(cache_root) if cache_root else paths.cache_dir() / "images"
    folder = root / str(size)
    folder.mkdir(parents=True, exist_ok=True)
    sources = table["path"].tolist()
    targets = [
        str(folder / f"{cache_key(s, size)}.jpg") if os.path.isfile(s) else s for s in sources
    ]
    jobs = [(s, t, size) for s, t in zip(sources, targets, strict=True) if not os.path.exists(t)]
    failed: set[str] = set()
    if jobs:
        bar = tqdm(total=len(jobs), desc=f"cache {size}px", disable=not progress)
        if workers > 1 and len(jobs) > 8:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                for job, done in zip(jobs, pool.map(_build_one, jobs, chunksize=16), strict=True):
                    failed.update([] if done else [job[1]])
                    bar.update()
        else:
            for job in jobs:
                failed.update([] if _build_one(job) else [job[1]])
                bar.update()
        bar.close()
    out = table.copy()
    out["source_path"] = sources
    # Unreadable sources keep their own path, so the Dataset names (or skips) the bad file.
    out["path"] = [s if t in failed else t for s, t in zip(sources, targets, strict=True)]
    return out
