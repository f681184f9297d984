"""Training-loop throughput against compute alone: how much of the CPU the data pipeline costs.

The laptop setting: ResNet-18 at 64 px, batch 64, the default augmentation and DataLoader
settings, on the real HAM10000 images (200x150, ``/work/shared/data/HAM10000_200x150`` or
``SKINLIB_BENCH_DATA``) read through the pre-resized cache; SynthDerm when they are absent.

* loop: images/s of ``Trainer.train_epoch`` (loader, augmentation, forward, backward, AdamW), the
  second epoch, worker start-up included as every epoch pays it;
* compute: images/s of the same ``Trainer._train_step`` on one ready batch (no loader);
* ratio: loop / compute (1.0 = the data pipeline costs nothing).

Run: ``python bench/bench_loop.py`` (``--steps N`` steps per epoch, ``--set key=value`` config
overrides, e.g. ``--set data.num_workers=2``).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch

from skinlib.config import Config, apply_overrides
from skinlib.data import load_table

REAL = Path(os.environ.get("SKINLIB_BENCH_DATA", "/work/shared/data/HAM10000_200x150"))
SETTING = [
    "study=bench",
    "model.arch=resnet18",
    "data.image_size=64",
    "train.batch_size=64",
    "train.epochs=2",
    "train.warmup_epochs=0",
]


def images(steps: int, batch: int, folder: Path):
    """A table of ``steps * batch`` training images (+ one batch of validation), and its name."""
    if (REAL / "HAM10000_metadata.csv").is_file():
        table, name = load_table(REAL, "ham10000"), f"real HAM10000 200x150 ({REAL})"
    else:
        from skinlib.data.synthetic import generate

        root = generate(folder / "synth", n=steps * batch + batch, size=200, progress=False)
        table = load_table(root, "ham10000")
        name = f"SynthDerm 200 px (real images not found at {REAL})"
    table = table.sample(n=min(len(table), (steps + 1) * batch), random_state=0)
    table = table.reset_index(drop=True)
    table["split"] = ["val" if i < batch else "train" for i in range(len(table))]
    return table, name


def compute_rate(trainer, steps: int) -> float:
    """Images/s of forward + backward + step on one batch already in memory."""
    batch, labels = next(iter(trainer.train_loader))
    trainer.net.train()
    trainer._train_step(0, steps, batch, labels, 0)  # warm-up
    start = time.perf_counter()
    for step in range(steps):
        trainer._train_step(step, steps, batch, labels, 0)
    return steps * len(batch) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="training steps per epoch")
    parser.add_argument("--set", action="append", default=[], help="config override key=value")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["SKINLIB_EXPERIMENTS"] = str(Path(tmp) / "exp")
        os.environ.setdefault("SKINLIB_CACHE", str(Path(tmp) / "cache"))
        from skinlib.training.engine import Trainer

        cfg = apply_overrides(Config(), [*SETTING, *args.set])
        table, name = images(args.steps, cfg.train.batch_size, Path(tmp))
        trainer = Trainer(cfg, table, progress=False)  # builds the cache first
        trainer.train_epoch(0)  # warm-up: first-touch allocations, page cache
        loop = trainer.train_epoch(1)["images_per_s"]
        compute = compute_rate(trainer, args.steps)
    print(f"{name}: {len(table)} images")
    print(
        f"{cfg.model.arch} {cfg.data.image_size} px, batch {cfg.train.batch_size}, "
        f"{cfg.data.num_workers} workers, {torch.get_num_threads()} torch threads, "
        f"{os.cpu_count()} CPUs, {args.steps} steps"
    )
    print(f"training loop (loader + augmentation + step) : {loop:7.1f} images/s")
    print(f"compute only (step on a ready batch)         : {compute:7.1f} images/s")
    print(f"loop / compute                               : {loop / compute:7.2f}")


if __name__ == "__main__":
    main()
