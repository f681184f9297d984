"""Adaptive sample selection ("adaptive sparse training"): back-propagate only the samples that
teach the most, at a target rate held by a controller.

Each batch is first scored without gradients; samples whose loss exceeds a threshold are then
forwarded and back-propagated again. A proportional-integral controller moves the threshold (in
log-loss space) so that the share of selected samples (the activation rate) tracks the target.
Backward compute saved is ``1 - activation rate``; the extra scoring forward costs about a third
of that back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch


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
