"""SynthDerm generation speed: images/s at 224 px on this machine (2 workers)."""

import tempfile
import time

from skinlib.data.synthetic import generate

N = 400
for workers in (1, 2):
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        generate(tmp, n=N, size=224, workers=workers, progress=False)
        seconds = time.perf_counter() - start
    print(
        f"SynthDerm 224px, {workers} worker(s): {N / seconds:7.1f} images/s "
        f"(2,000 images in ~{2000 / (N / seconds):.0f} s)"
    )
