"""Loader throughput: decoding full-size 600x450 JPEGs every time vs the pre-resized cache (224 px)."""

import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from skinlib.data.cache import build_cache
from skinlib.data.dataset import ImageDataset
from skinlib.data.transforms import build_transforms

N = 200
DATA_CFG = {"mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225), "interpolation": "bicubic"}


def rate(table: pd.DataFrame) -> float:
    dataset = ImageDataset(table, ["a"], build_transforms(DATA_CFG, train=True, size=224))
    start = time.perf_counter()
    for i in range(len(dataset)):
        dataset[i]
    return len(dataset) / (time.perf_counter() - start)


with tempfile.TemporaryDirectory() as tmp:
    rng = np.random.default_rng(0)
    paths = []
    for i in range(N):
        # smooth content like a photograph (noise would not compress like a real JPEG)
        small = rng.integers(0, 255, (12, 16, 3), dtype=np.uint8)
        image = Image.fromarray(small).resize((600, 450), Image.BICUBIC)
        paths.append(Path(tmp) / f"ISIC_{i:07d}.jpg")
        image.save(paths[-1], quality=90)
    table = pd.DataFrame({"path": [str(p) for p in paths], "label": "a"})
    raw = rate(table)
    start = time.perf_counter()
    cached = build_cache(table, 256, cache_root=Path(tmp) / "cache", workers=2, progress=False)
    build = time.perf_counter() - start
    fast = rate(cached)
print(f"raw 600x450 JPEG -> 224 px : {raw:7.1f} images/s (one process)")
print(f"cached (256 px JPEG)       : {fast:7.1f} images/s (one process), {fast / raw:.1f}x faster")
print(f"cache build, 2 workers     : {N / build:7.1f} images/s, once")
