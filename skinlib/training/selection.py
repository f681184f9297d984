"""Adaptive sample selection ("adaptive sparse training"): back-propagate only the samples that
teach the most, at a target rate held by a controller.

Each batch is first scored without gradients; samples whose loss exceeds a threshold are then
forwarded and back-propagated again. A proportional-integral controller moves the threshold (in
log-loss space) so that the share of selected samples (the activation rate) tracks the target.
Backward compute saved is ``1 - activation rate``, but the scoring forward of the whole batch is
paid on top, so a step at rate 0.25 costs about two thirds of a plain one, not a quarter
(ResNet-18, 64 px, batch 64 on a CPU: 35 % less time per step; ``bench/bench_selection.py``).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
from torch import nn


@dataclass
class SelectionController:
    """Threshold controller for adaptive sample selection."""

    target: float = 0.25  # share of each batch to back-propagate
    kp: float = 1.5  # proportional gain (log-loss units per unit of rate error)
    ki: float = 0.3  # integral gain
    min_samples: int = 2  # never fewer (BatchNorm needs two)
    log_threshold: float | None = None
    integral: float = 0.0
    history: list[float] = field(default_factory=list)

    def select(self, losses: torch.Tensor) -> torch.Tensor:
        """Indices of the samples to back-propagate, and update the threshold."""
        log_loss = losses.detach().float().clamp_min(1e-12).log()
        if self.log_threshold is None:  # warm start at the batch quantile
            self.log_threshold = float(torch.quantile(log_loss, 1 - self.target))
        chosen = torch.nonzero(log_loss > self.log_threshold).flatten()
        if len(chosen) < min(self.min_samples, len(losses)):
            chosen = torch.topk(log_loss, min(self.min_samples, len(losses))).indices
        rate = len(chosen) / len(losses)
        error = rate - self.target
        self.integral = max(-5.0, min(5.0, self.integral + error))
        self.log_threshold += self.kp * error + self.ki * self.integral * 0.1
        self.history.append(rate)
        return chosen

    def epoch_rate(self) -> float:
        """Mean activation rate since the last call (resets the history)."""
        rate = sum(self.history) / len(self.history) if self.history else math.nan
        self.history = []
        return rate

    def state_dict(self) -> dict:
        return {"log_threshold": self.log_threshold, "integral": self.integral}

    def load_state_dict(self, state: dict) -> None:
        self.log_threshold = state["log_threshold"]
        self.integral = state["integral"]


@contextlib.contextmanager
def batchnorm_stats_frozen(model: nn.Module) -> Iterator[None]:
    """BatchNorm layers normalise with the batch's own statistics but update no running ones.

    The scoring pass must not move the running mean and variance: they would be updated twice
    per step, the second time from the few hardest samples, and evaluation would normalise
    with statistics of neither the data nor the training batches. Train-mode behaviour is kept
    otherwise (batch statistics, dropout), so a sample's score is the loss its step would see.
    """
    layers = [
        m
        for m in model.modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats
    ]
    for layer in layers:  # train mode without tracking: batch statistics, no buffer update
        layer.track_running_stats = False
    try:
        yield
    finally:
        for layer in layers:
            layer.track_running_stats = True


def selected_loss(
    losses: Callable[..., torch.Tensor],
    model: nn.Module,
    images: torch.Tensor,
    targets: torch.Tensor,
    selector: SelectionController,
    metadata: torch.Tensor | None = None,
) -> tuple[torch.Tensor, float]:
    """Score the batch, keep the samples the controller picks, and return their mean loss.

    Args:
        losses: (images, targets[, metadata]) -> per-sample losses (N,), through ``model``.
        model: the module ``losses`` runs (its BatchNorm statistics are frozen while scoring).
        images: (N, C, H, W); targets: (N,) class indices or (N, C) soft targets.
        selector: the threshold controller.
        metadata: (N, D) a metadata model's inputs, chosen with their images.

    Returns:
        (mean loss of the chosen samples, with gradients; mean score of the whole batch).
    """
    extra = () if metadata is None else (metadata,)
    with torch.no_grad(), batchnorm_stats_frozen(model):
        scores = losses(images, targets, *extra)
    chosen = selector.select(scores)
    kept = [x[chosen] for x in extra]
    return losses(images[chosen], targets[chosen], *kept).mean(), scores.mean().item()
