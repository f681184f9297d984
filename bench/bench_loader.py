"""Loader throughput: decode + resize full-size 600x450 JPEGs every time vs read the pre-resized cache.

Raw path: ``load_image`` and a 224 px shorter-side resize per sample (what every epoch does
without a cache). Cached path: ``load_image`` of the file ``build_cache(size=224)`` wrote. Both in
one process, as one DataLoader worker sees them. Run: ``python bench/bench_loader.py``.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from skinlib.data.cache import build_cache, resize_shorter
from skinlib.data.images import load_image

N = 200  # images
SIZE = 224  # shorter side in px
REPEATS = 3  # best of, to damp noise from other processes


def make_jpegs(folder: Path, n: int) -> list[Path]:
    """600x450 JPEGs with smooth, photograph-like content (noise would not compress like one)."""
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        small = rng.integers(0, 255, (12, 16, 3), dtype=np.uint8)
        paths.append(folder / f"ISIC_{i:07d}.jpg")
        Image.fromarray(small).resize((600, 450), Image.BICUBIC).save(paths[-1], quality=90)
    return paths


def rate(read, paths: list[str]) -> float:
    """Images per second of ``read`` over ``paths`` (best of REPEATS)."""
    best = float("inf")
    for _ in range(REPEATS):
        start = time.perf_counter()
        for p in paths:
            read(p)
        best = min(best, time.perf_counter() - start)
    return len(paths) / best


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        sources = [str(p) for p in make_jpegs(Path(tmp), N)]
        start = time.perf_counter()
        cached = build_cache(
            pd.DataFrame({"path": sources}), SIZE, Path(tmp) / "cache", workers=2, progress=False
        )
        build = N / (time.perf_counter() - start)
        raw = rate(lambda p: resize_shorter(load_image(p), SIZE), sources)
        fast = rate(load_image, cached["path"].tolist())
    print(f"raw 600x450 JPEG, load_image + resize to {SIZE} px : {raw:7.1f} images/s")
    print(f"cached {SIZE} px JPEG, load_image                  : {fast:7.1f} images/s")
    print(f"speedup                                          : {fast / raw:7.1f}x")
    print(f"cache build (once, 2 processes)                  : {build:7.1f} images/s")


if __name__ == "__main__":
    main()
