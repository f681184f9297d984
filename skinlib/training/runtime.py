"""Where and how a run computes: its device, its seeds, its mixed precision."""

from __future__ import annotations

import random

import numpy as np
import torch

from skinlib.errors import ConfigError

AMP_MODES = ("auto", "bf16", "fp16", "off")


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto``: this process's GPU under torchrun (or the only one), else the CPU."""
    if name == "auto":
        return torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"train.device={name} but no CUDA GPU is visible; use train.device=cpu")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (DataLoader workers are seeded from the loader's generator)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 (timm's Mixup draws from the global RNG)
    torch.manual_seed(seed)


def amp_dtype(mode: str, device: torch.device) -> torch.dtype | None:
    """Mixed precision on CUDA only: bf16 where supported, else fp16 (with a grad scaler)."""
    if mode not in AMP_MODES:
        raise ConfigError(f"train.amp={mode!r}; choose one of {AMP_MODES}")
    if device.type != "cuda" or mode == "off":
        return None
    if mode == "bf16" or (mode == "auto" and torch.cuda.is_bf16_supported()):
        return torch.bfloat16
    return torch.float16
