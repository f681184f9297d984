"""Optimisers and learning-rate schedules (stepped per optimiser step, or per epoch on plateau)."""

from __future__ import annotations

import math

import torch
from torch import nn

from skinlib.config import TrainConfig
from skinlib.errors import ConfigError
from skinlib.models.architectures import param_groups


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    groups = param_groups(model, cfg.lr, cfg.backbone_lr_mult, cfg.weight_decay)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=True)
    raise ConfigError(f"train.optimizer={cfg.optimizer!r}; choose adamw or sgd")


def cosine_factor(
    step: int, total: int, warmup: int, cycles: int = 1, floor: float = 0.01
) -> float:
    """Linear warmup, then cosine decay to ``floor`` (restarting ``cycles`` times)."""
    if step < warmup:
        return (step + 1) / warmup
    span = max(1, total - warmup)
    cycle_len = span / cycles
    t = ((step - warmup) % cycle_len) / cycle_len
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t))


def build_scheduler(optimizer, cfg: TrainConfig, steps_per_epoch: int):
    """(scheduler, per_step) for the configured schedule."""
    total = cfg.epochs * steps_per_epoch
    warmup = int(cfg.warmup_epochs * steps_per_epoch)
    if cfg.scheduler in ("cosine", "cosine_restarts"):
        cycles = 3 if cfg.scheduler == "cosine_restarts" else 1
        fn = lambda step: cosine_factor(step, total, warmup, cycles)  # noqa: E731
        return torch.optim.lr_scheduler.LambdaLR(optimizer, fn), True
    if cfg.scheduler == "onecycle":
        max_lrs = [g["lr"] for g in optimizer.param_groups]
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer,
            max_lr=max_lrs,
            total_steps=max(total, 1),
            pct_start=max(0.05, min(0.5, warmup / max(total, 1))),
        ), True
    if cfg.scheduler == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.3, patience=2), False
    if cfg.scheduler == "none":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0), True
    raise ConfigError(
        f"train.scheduler={cfg.scheduler!r}; choose cosine, cosine_restarts, onecycle, plateau or none"
    )
