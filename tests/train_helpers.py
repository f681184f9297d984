"""Shared pieces of the training tests: a tiny SynthDerm folder, a tiny config, the command line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from skinlib.config import Config, apply_overrides


def make_synth(folder: Path) -> Path:
    """120 balanced 40 px SynthDerm images (7 classes): enough to learn, quick to train on."""
    from skinlib.data.synthetic import generate

    return generate(folder, n=120, size=40, seed=2, balanced=True, progress=False)


def tiny_config(root: Path, **changes) -> Config:
    """Two epochs of 32 px images in batches of 16, no DataLoader workers, study ``t``."""
    items = [
        f"data.root={root}",
        "data.image_size=32",
        "data.num_workers=0",
        "train.epochs=2",
        "train.batch_size=16",
        "train.lr=0.002",
        "train.warmup_epochs=0",
        "study=t",
    ]
    return apply_overrides(Config(), items + [f"{k}={v}" for k, v in changes.items()])


def cli_env(tmp_path: Path) -> dict:
    """Environment of a ``skinlib`` subprocess: its own experiments and cache, one thread each
    (two processes share the two cores of a small CI machine)."""
    return {
        **os.environ,
        "SKINLIB_EXPERIMENTS": str(tmp_path / "exp"),
        "SKINLIB_CACHE": str(tmp_path / "cache"),
        "OMP_NUM_THREADS": "1",
    }


def skinlib_train(config: Path, env: dict, *args: str, **popen) -> subprocess.Popen:
    """Start ``python -m skinlib train --config CONFIG ARGS`` without a progress bar."""
    cmd = [sys.executable, "-m", "skinlib", "train", "--config", str(config), "--no-progress"]
    return subprocess.Popen([*cmd, *args], env=env, **popen)
