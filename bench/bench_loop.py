"""Training-loop throughput against compute alone, and where the time of one step goes.

The laptop setting: the first architecture of ``params/ham10000_cpu.yaml`` with that profile's
resolution, batch, augmentation, EMA, memory format and DataLoader settings (ResNet-18, 64 px,
batch 64, channels-last, no loader workers, this machine's torch threads), on the real HAM10000
images (200x150, ``/work/shared/data/HAM10000_200x150`` or ``SKINLIB_BENCH_DATA``) read through
the pre-resized cache; generated SynthDerm images (96 px) when they are absent.

* loop: images/s of ``Trainer.train_epoch`` (loader, augmentation, forward, backward, AdamW,
  EMA), worker start-up included as every epoch pays it;
* compute: images/s of the same ``Trainer._train_step`` on one ready batch (no loader);
* ratio: loop / compute (1.0 = the data pipeline costs nothing);
* where the time goes: the steps of the loop taken apart (the loader's wait, the batch moved and
  colour-jittered, forward with the loss, backward, the optimiser step with its schedule, the
  EMA update, the loss bookkeeping), each the median over the profiled steps.

Loop and compute are measured in turns (``--repeats``, after a warm-up epoch) and the median
ratio is reported: on a laptop one measurement swings by 10-20 % with whatever else runs. Two
machines compare by these lines: the compute figure is the machine's (cores, clock, threads),
the ratio the data pipeline's.

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
# the setting's steps without the schedule's warm-up, early stopping or a time budget
SETTING = ["train.warmup_epochs=0", "train.patience=0", "train.budget_min=0"]


def images(steps: int, batch: int, folder: Path):
    """A table of ``steps * batch`` training images (+ one batch of validation), and its name."""
    if (REAL / "HAM10000_metadata.csv").is_file():
        table, name = load_table(REAL, "ham10000"), f"real HAM10000 200x150 ({REAL})"
    else:
        from skinlib.data.synthetic import generate

        root = generate(folder / "synth", n=(steps + 1) * batch, size=96, progress=False)
        table = load_table(root, "ham10000")
        name = f"SynthDerm 96 px (real images not found at {REAL})"
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


PARTS = {
    "data": "data wait (loader: read, decode, crop, flip, tensor)",
    "batch": "batch to the device, colour jitter, mixup",
    "forward": "forward and loss",
    "backward": "backward",
    "optimiser": "optimiser step (AdamW, schedule)",
    "ema": "EMA update",
    "bookkeeping": "loss bookkeeping",
}


def step_parts(trainer, steps: int) -> dict[str, float]:
    """Seconds per step of each part of the loop's step, medians over ``steps`` steps.

    The parts are the engine's own calls in the engine's order (``Trainer.train_epoch`` and
    ``_train_step``), each timed alone; the EMA update is taken out of the optimiser step.
    """
    trainer._begin_epoch(1)
    trainer.net.train()
    trainer.optimizer.zero_grad(set_to_none=True)
    ema, times = trainer.ema, {part: [] for part in PARTS}
    batches = iter(trainer.train_loader)
    total, count = 0.0, 0
    for _ in range(steps):
        clock = time.perf_counter()

        def lap(part: str) -> None:
            nonlocal clock
            now = time.perf_counter()
            times[part].append(now - clock)
            clock = now

        images, labels = next(batches)
        lap("data")
        images, targets = trainer._to_device(trainer._augment_batch(images), labels)
        lap("batch")
        loss, batch_loss = trainer._step_loss(images, targets)  # .item(): the forward has ended
        lap("forward")
        trainer.scaler.scale(loss / trainer.cfg.train.accum_steps).backward()
        lap("backward")
        trainer.ema = None  # the optimiser step alone
        trainer._optimizer_step()
        trainer.ema = ema
        lap("optimiser")
        if ema is not None:
            ema.update(trainer.model)
        lap("ema")
        total += batch_loss * len(images)
        count += len(images)
        lap("bookkeeping")
    return {part: statistics.median(seconds) for part, seconds in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10, help="training steps per epoch")
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
        epochs = f"train.epochs={args.repeats + 2}"
        cfg = apply_overrides(cfg, ["study=bench", epochs, *SETTING, *args.set])
        table, name = images(args.steps, cfg.train.batch_size, Path(tmp))
        trainer = Trainer(cfg, table, progress=False)  # builds the cache first
        trainer.train_epoch(0)  # warm-up: first-touch allocations, page cache
        loops, computes = [], []
        for epoch in range(1, args.repeats + 1):
            loops.append(trainer.train_epoch(epoch)["images_per_s"])
            computes.append(compute_rate(trainer, args.steps))
        parts = step_parts(trainer, args.steps)
    ratios = [a / b for a, b in zip(loops, computes, strict=True)]
    batch = cfg.train.batch_size
    loop, compute = statistics.median(loops), statistics.median(computes)
    print(f"{name}: {len(table)} images; setting of {Path(args.profile).name}")
    print(
        f"{cfg.model.arch} {cfg.data.image_size} px, batch {batch}, "
        f"augment {cfg.train.augment}, EMA {'on' if cfg.train.ema else 'off'}, "
        f"{'channels-last' if cfg.train.channels_last else 'contiguous'}, "
        f"{cfg.data.num_workers} loader workers, {torch.get_num_threads()} torch threads, "
        f"{os.cpu_count()} CPUs, {args.steps} steps x {args.repeats} repeats (medians)"
    )
    print(f"training loop (loader + augmentation + step) : {loop:7.1f} images/s")
    print(f"compute only (step on a ready batch)         : {compute:7.1f} images/s")
    print(
        f"loop / compute                               : {statistics.median(ratios):7.2f} "
        f"(each repeat: {', '.join(f'{r:.2f}' for r in ratios)})"
    )
    profiled = sum(parts.values())
    print(f"where the time of one step goes ({args.steps} steps taken apart, medians):")
    for part, seconds in parts.items():
        print(f"  {PARTS[part]:52s} {seconds * 1000:7.1f} ms  {seconds / profiled:4.0%}")
    print(
        f"  {'the parts together':52s} {profiled * 1000:7.1f} ms  ({batch / profiled:.1f} images/s)"
    )
    print(f"  {'a step of the loop above, whole':52s} {batch / loop * 1000:7.1f} ms")


if __name__ == "__main__":
    main()
