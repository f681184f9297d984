"""Checkpoints that load with ``torch.load(weights_only=True)``: tensors and plain containers."""

from __future__ import annotations

from pathlib import Path

import torch

from skinlib.io import atomic_path


def save_checkpoint(path: str | Path, state: dict) -> None:
    """Write atomically: a kill during saving leaves the previous checkpoint intact."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> dict:
    return torch.load(path, map_location=device, weights_only=True)
