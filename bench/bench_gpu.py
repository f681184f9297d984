"""GPU training throughput: end-to-end images/s from the pre-resized cache against compute alone.

For ResNet-50 at 224 px and EfficientNet-B3 at 300 px, through the project's own path: the run
config of params/ham10000.yaml (AMP bf16 where the GPU supports it, else fp16 with the grad scaler;
channels-last; EMA; strong augmentation), skinlib's pre-resized cache, ImageDataset and DataLoader
with N workers, and the Trainer's own training step. End-to-end: steps fed by that loader.
Compute-only: the same steps on one synthetic batch already on the GPU. Their ratio says how much
of the GPU's time the input pipeline wastes (target >= 0.9).

Needs CUDA: elsewhere it prints why it skipped and exits 0, so ``make bench`` goes on.
Data: SynthDerm generated at 450 px (the shorter side of HAM10000's originals) unless ``--data``.

    python bench/bench_gpu.py                                   # SynthDerm, 8 workers
    python bench/bench_gpu.py --data /data/HAM10000 --workers 12
    python bench/bench_gpu.py --set train.deterministic=false   # any run-config override
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import time
from collections.abc import Iterator

import torch

DEFAULT_ARCHS = "resnet50:224,efficientnet_b3:300"
TARGET_RATIO = 0.9  # end-to-end / compute-only: below it the loader starves the GPU


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--profile", default="params/ham10000.yaml", help="run config to measure")
    p.add_argument("--data", default="", help="dataset folder (default: SynthDerm in the cache)")
    p.add_argument("--format", default="ham10000", help="dataset format of --data")
    p.add_argument("--workers", type=int, default=8, help="DataLoader worker processes")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--warmup", type=int, default=10, help="untimed steps (cuDNN autotune, workers)")
    p.add_argument("--steps", type=int, default=50, help="timed steps")
    p.add_argument("--archs", default=DEFAULT_ARCHS, help="arch:size pairs, comma-separated")
    p.add_argument("--synth-n", type=int, default=4000, help="SynthDerm images without --data")
    p.add_argument("--synth-size", type=int, default=450, help="SynthDerm side in px")
    p.add_argument("--device", default="cuda", help="cuda[:N]; cpu only to smoke-test the script")
    p.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a run-config value (repeatable)",
    )  # fmt: skip
    args = p.parse_args(argv)
    args.arch_sizes = [_arch_size(item) for item in args.archs.split(",") if item.strip()]
    if args.steps < 1 or args.warmup < 0:
        p.error("--steps must be >= 1 and --warmup >= 0")
    return args


def _arch_size(item: str) -> tuple[str, int]:
    arch, _, size = item.strip().partition(":")
    if not size.isdigit():
        raise SystemExit(f"--archs: write each as arch:size (e.g. resnet50:224), got {item!r}")
    return arch, int(size)


def skip_reason(device: str) -> str | None:
    """Why this machine cannot run the benchmark, or None when it can."""
    if device.startswith("cuda") and not torch.cuda.is_available():
        build = f"CUDA {torch.version.cuda} build" if torch.version.cuda else "CPU-only build"
        return (
            f"skipped: no CUDA GPU visible (torch {torch.__version__}, {build}); this benchmark "
            "measures GPU training throughput: run it on a machine with an NVIDIA GPU"
        )
    return None


def bench_config(args: argparse.Namespace, arch: str, size: int):
    """The profile's run config of ``arch`` at ``size`` px, fed from the cache by N workers."""
    from skinlib.profile import load_study_profile

    overrides = [
        f"data.root={args.data}",
        f"data.format={args.format}",
        f"data.image_size={size}",
        "data.cache=true",
        f"data.num_workers={args.workers}",
        f"data.synth.n={args.synth_n}",
        f"data.synth.size={args.synth_size}",
        f"train.batch_size={args.batch_size}",
        f"train.device={args.device}",
        "model.pretrained=false",  # the weights' values do not change the speed
        *args.overrides,
    ]
    # as `--set` on the command line: after the profile's config and the architecture's recipe
    return load_study_profile(args.profile, overrides).run_config(arch, run=f"bench_{arch}")


def build_trainer(cfg):
    """The engine's Trainer: model, AMP, optimiser and the cached training loader of ``cfg``."""
    from skinlib.data.prepare import prepare_table
    from skinlib.data.synthetic import ensure_synthderm
    from skinlib.training.engine import Trainer

    if not cfg.data.root:  # generate once on every core (prepare_table would use two)
        ensure_synthderm(cfg.data.synth, workers=os.cpu_count() or 2)
    return Trainer(cfg, prepare_table(cfg), progress=True)


def _sync(trainer) -> None:
    if trainer.device.type == "cuda":
        torch.cuda.synchronize(trainer.device)


def _loader_batches(trainer) -> Iterator:
    """Training batches as the engine draws them, epoch after epoch."""
    if len(trainer.train_loader) == 0:
        raise SystemExit("the training split holds less than one batch: lower --batch-size")
    for epoch in itertools.count():
        trainer._begin_epoch(epoch)
        yield from trainer.train_loader


def _synthetic_batches(trainer) -> Iterator:
    """One random batch on the device, channels-last as the engine lays images out."""
    n, size = trainer.train_loader.batch_size, trainer.size
    fmt = torch.channels_last if trainer.cfg.train.channels_last else torch.contiguous_format
    images = torch.randn(n, 3, size, size, device=trainer.device).to(memory_format=fmt)
    labels = torch.randint(0, len(trainer.classes), (n,), device=trainer.device)
    trainer._begin_epoch(0)
    return itertools.repeat((images, labels))


def images_per_s(trainer, batches: Iterator, warmup: int, steps: int) -> float:
    """Rate of ``steps`` Trainer steps (forward, backward, optimiser) after ``warmup`` untimed."""
    trainer.net.train()
    trainer.optimizer.zero_grad(set_to_none=True)
    total = warmup + steps
    count = 0
    for step, (images, labels) in enumerate(itertools.islice(batches, total)):
        if step == warmup:
            _sync(trainer)
            start, count = time.perf_counter(), 0
        trainer._train_step(step, total, images, labels, epoch=0)
        count += len(images)
    _sync(trainer)
    return count / (time.perf_counter() - start)


def measure(trainer, warmup: int, steps: int) -> dict:
    """End-to-end and compute-only rates of one trainer, and their ratio."""
    e2e = images_per_s(trainer, _loader_batches(trainer), warmup, steps)
    compute = images_per_s(trainer, _synthetic_batches(trainer), warmup, steps)
    return {"end_to_end": e2e, "compute": compute, "ratio": e2e / compute}


def describe(trainer, args: argparse.Namespace) -> str:
    device = trainer.device
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    amp = {torch.bfloat16: "bf16", torch.float16: "fp16 + grad scaler"}.get(trainer.dtype, "off")
    data = args.data or f"SynthDerm ({args.synth_n} images at {args.synth_size} px)"
    return (
        f"{name}, torch {torch.__version__}, AMP {amp}, batch {args.batch_size}, "
        f"{args.workers} workers, {args.warmup} warm-up + {args.steps} timed steps; data: {data}"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if reason := skip_reason(args.device):
        print(f"bench_gpu: {reason}")
        return 0
    for i, (arch, size) in enumerate(args.arch_sizes):
        trainer = build_trainer(bench_config(args, arch, size))
        if i == 0:
            print(describe(trainer, args), flush=True)
        r = measure(trainer, args.warmup, args.steps)
        met = "met" if r["ratio"] >= TARGET_RATIO else "NOT met: the loader limits training"
        print(
            f"{arch:16s} {size:4d} px  end-to-end {r['end_to_end']:8.1f} images/s  "
            f"compute-only {r['compute']:8.1f} images/s  ratio {r['ratio']:.2f} "
            f"(target >= {TARGET_RATIO}: {met})",
            flush=True,
        )
        del trainer
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    sys.exit(main())
