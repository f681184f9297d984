"""Checkpoints that load with ``torch.load(weights_only=True)``: tensors and plain containers."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch

from skinlib.io import atomic_path


def save_checkpoint(path: str | Path, state: dict) -> None:
    """Write atomically: a kill during saving leaves the previous checkpoint intact."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


# What only resuming needs: ``best.pt`` is for evaluation and inference and leaves these out,
# which makes it a third of ``last.pt``'s size under AdamW.
RESUME_ONLY = ("optimizer", "scheduler", "scaler", "selector", "rng")


def for_inference(state: dict) -> dict:
    """``state`` without what only resuming reads (optimiser moments, schedules, RNG states)."""
    return {k: v for k, v in state.items() if k not in RESUME_ONLY}


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> dict:
    return torch.load(path, map_location=device, weights_only=True)


def rng_state() -> dict:
    """torch, numpy and Python generator states as tensors and lists (no numpy objects, which
    ``weights_only`` loading refuses)."""
    name, keys, pos, has_gauss, gauss = np.random.get_state()  # noqa: NPY002 (global RNG)
    version, internal, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "numpy": [name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss],
        "python": [version, list(internal), gauss_next],
    }


def set_rng_state(state: dict) -> None:
    """Restore what :func:`rng_state` recorded."""
    torch.set_rng_state(state["torch"].cpu())
    name, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))  # noqa: NPY002
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
