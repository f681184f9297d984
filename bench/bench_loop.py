"""Training-loop throughput against compute alone: how much of the CPU the data pipeline costs.

The laptop setting: the first architecture of ``params/ham10000_cpu.yaml`` with that profile's
resolution, batch, augmentation and DataLoader settings, on the real HAM10000 images (200x150,
``/work/shared/data/HAM10000_200x150`` or ``SKINLIB_BENCH_DATA``) read through the pre-resized
cache; SynthDerm when they are absent.

* loop: images/s of ``Trainer.train_epoch`` (loader, augmentation, forward, backward, AdamW),
  worker start-up included as every epoch pays it;
* compute: images/s of the same ``Trainer._train_step`` on one ready batch (no loader);
* ratio: loop / compute (1.0 = the data pipeline costs nothing).

Loop and compute are measured in turns (``--repeats``, after a warm-up epoch) and the median
ratio is reported: on a laptop one measurement swings by 10-20 % with whatever else runs.

Run: ``python bench/bench_loop.py`` (``--steps N`` steps per epoch, ``--set key=value`` config
overrides, e.g. ``--set data.num_workers=2``, ``--profile`` another profile).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

from skinlib.config import apply_overrides
from skinlib.data import load_table
from skinlib.profile import load_study_profile

ROOT = Path(__file__).resolve().parents[1]
REAL = Path(os.environ.get("SKINLIB_BENCH_DATA", "/work/shared/data/HAM10000_200x150"))
PROFILE = ROOT / "params" / "ham10000_cpu.yaml"
SETTING = ["train.warmup_epochs=0", "train.patience=0"]


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
    parser.add_argument("--repeats", type=int, default=3, help="loop/compute measurements")
    parser.add_argument("--profile", default=str(PROFILE), help="profile whose setting to time")
    parser.add_argument("--set", action="append", default=[], help="config override key=value")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["SKINLIB_EXPERIMENTS"] = str(Path(tmp) / "exp")
        os.environ.setdefault("SKINLIB_CACHE", str(Path(tmp) / "cache"))
        from skinlib.training.engine import Trainer

        profile = load_study_profile(args.profile)
        cfg = profile.run_config(profile.architectures[0])
        epochs = f"train.epochs={args.repeats + 1}"
        cfg = apply_overrides(cfg, ["study=bench", epochs, *SETTING, *args.set])
        table, name = images(args.steps, cfg.train.batch_size, Path(tmp))
        trainer = Trainer(cfg, table, progress=False)  # builds the cache first
        trainer.train_epoch(0)  # warm-up: first-touch allocations, page cache
        loops, computes = [], []
        for epoch in range(1, args.repeats + 1):
            loops.append(trainer.train_epoch(epoch)["images_per_s"])
            computes.append(compute_rate(trainer, args.steps))
    ratios = [a / b for a, b in zip(loops, computes, strict=True)]
    print(f"{name}: {len(table)} images; setting of {Path(args.profile).name}")
    print(
        f"{cfg.model.arch} {cfg.data.image_size} px, batch {cfg.train.batch_size}, "
        f"augment {cfg.train.augment}, {cfg.data.num_workers} workers, "
        f"{torch.get_num_threads()} torch threads, {os.cpu_count()} CPUs, "
        f"{args.steps} steps x {args.repeats} repeats (medians)"
    )
    print(
        f"training loop (loader + augmentation + step) : {statistics.median(loops):7.1f} images/s"
    )
    print(
        f"compute only (step on a ready batch)         : {statistics.median(computes):7.1f} images/s"
    )
    print(
        f"loop / compute                               : {statistics.median(ratios):7.2f} "
        f"(each repeat: {', '.join(f'{r:.2f}' for r in ratios)})"
    )


if __name__ == "__main__":
    main()
