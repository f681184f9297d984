"""Class imbalance: class weights, focal loss, label smoothing and oversampling, combinable.

Every loss here returns one value per sample (``reduction="none"``): the training loop averages
them, or averages only the samples that adaptive sample selection keeps.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from skinlib.config import ImbalanceConfig
from skinlib.errors import ConfigError
from skinlib.training.distributed import EpochSampler


def class_weights(
    counts: Sequence[int], method: str = "inverse", beta: float = 0.999
) -> torch.Tensor:
    """Per-class loss weights, normalised to sum to the number of classes.

    ``inverse``: w_c proportional to 1 / n_c. ``effective``: the effective number of samples of
    Cui et al. (CVPR 2019), w_c proportional to (1 - beta) / (1 - beta ** n_c).
    """
    n = np.asarray(counts, dtype=np.float64)
    if np.any(n <= 0):
        raise ConfigError(
            f"class counts {list(counts)}: every class needs at least one training image"
        )
    if method == "inverse":
        w = 1.0 / n
    elif method == "effective":
        w = (1.0 - beta) / (1.0 - np.power(beta, n))
    elif method == "none":
        w = np.ones_like(n)
    else:
        raise ConfigError(f"imbalance.class_weights={method!r}; choose none, inverse or effective")
    return torch.tensor(w / w.sum() * len(n), dtype=torch.float32)


def soft_targets(target: torch.Tensor, num_classes: int, smoothing: float = 0.0) -> torch.Tensor:
    """One-hot (or already soft) targets with label smoothing."""
    if target.ndim == 1:
        target = F.one_hot(target.long(), num_classes).float()
    return target * (1 - smoothing) + smoothing / num_classes


class FocalLoss(nn.Module):
    """Multi-class focal loss (Lin et al. 2017) on soft or hard targets, per sample.

    loss = -sum_c alpha_c * w_c * (1 - p_c) ** gamma * t_c * log p_c; with gamma 0, no alpha and
    no weights it is exactly cross-entropy.
    """

    def __init__(
        self,
        gamma: float = 2.0,
        alpha: Sequence[float] | None = None,
        weight: torch.Tensor | None = None,
        label_smoothing: float = 0.0,
    ):
        super().__init__()
        self.gamma = gamma
        self.label_smoothing = label_smoothing
        self.register_buffer(
            "alpha", None if alpha is None else torch.tensor(alpha, dtype=torch.float32)
        )
        self.register_buffer("weight", weight)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logp = F.log_softmax(logits.float(), dim=1)
        t = soft_targets(target, logits.shape[1], self.label_smoothing)
        per_class = -t * logp * (1 - logp.exp()).pow(self.gamma)
        scale = torch.ones(logits.shape[1], device=logits.device)
        if self.weight is not None:
            scale = scale * self.weight
        if self.alpha is not None:
            scale = scale * self.alpha
        return (per_class * scale).sum(dim=1)


class BinaryFocalLoss(nn.Module):
    """Binary equivalent on one logit: BCE with ``pos_weight``, focal when gamma > 0."""

    def __init__(
        self, gamma: float = 0.0, pos_weight: float | None = None, label_smoothing: float = 0.0
    ):
        super().__init__()
        self.gamma = gamma
        self.pos_weight = pos_weight
        self.label_smoothing = label_smoothing

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        z = logits.float().reshape(-1)
        t = target.float().reshape(-1) * (1 - self.label_smoothing) + self.label_smoothing / 2
        pw = None if self.pos_weight is None else torch.tensor(self.pos_weight, device=z.device)
        bce = F.binary_cross_entropy_with_logits(z, t, pos_weight=pw, reduction="none")
        if self.gamma == 0:
            return bce
        p = torch.sigmoid(z)
        p_t = p * t + (1 - p) * (1 - t)
        return bce * (1 - p_t).pow(self.gamma)


def build_loss(
    cfg: ImbalanceConfig, class_counts: Sequence[int], binary: bool = False
) -> nn.Module:
    """The per-sample training loss the config asks for."""
    if cfg.loss not in ("ce", "focal"):
        raise ConfigError(f"imbalance.loss={cfg.loss!r}; choose ce or focal")
    gamma = cfg.gamma if cfg.loss == "focal" else 0.0
    weights = class_weights(class_counts, cfg.class_weights, cfg.beta)
    if binary:
        pos_weight = None if cfg.class_weights == "none" else float(weights[1] / weights[0])
        return BinaryFocalLoss(gamma, pos_weight, cfg.label_smoothing)
    alpha = cfg.alpha if cfg.loss == "focal" else None
    if alpha is not None and len(alpha) != len(class_counts):
        raise ConfigError(
            f"imbalance.alpha has {len(alpha)} values for {len(class_counts)} classes"
        )
    return FocalLoss(
        gamma, alpha, None if cfg.class_weights == "none" else weights, cfg.label_smoothing
    )


SAMPLERS = ("none", "weighted", "sqrt")


def sample_weights(labels: Sequence[int], num_classes: int, power: float = 1.0) -> torch.Tensor:
    """Per-sample draw weights ``n_class ** -power``.

    ``power=1``: every class is drawn equally often. ``power=0.5``: a class is drawn in
    proportion to the square root of its size (Mahajan et al. 2018's square-root sampling), a
    compromise that lifts rare classes without showing a 115-image class as often as a 6,705-image
    one, so overall accuracy suffers less than under full oversampling.
    Double precision, as torch's WeightedRandomSampler uses, so both draw the same indices.
    """
    labels = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    counts = torch.bincount(labels, minlength=num_classes).clamp(min=1).double()
    return counts.pow(-power)[labels]


def build_sampler(cfg: ImbalanceConfig, labels: Sequence[int], num_classes: int, seed: int = 0):
    """The training sampler: shuffled, or oversampling rare classes (``weighted``: equal draws per
    class; ``sqrt``: draws per class proportional to the square root of its size).

    Both are :class:`skinlib.training.distributed.EpochSampler`: one process draws what
    ``torch.utils.data.WeightedRandomSampler`` (or a shuffle) would draw from the same generator,
    and under torchrun each rank takes its share of that one global order.
    """
    if cfg.sampler not in SAMPLERS:
        raise ConfigError(f"imbalance.sampler={cfg.sampler!r}; choose one of {SAMPLERS}")
    power = {"weighted": 1.0, "sqrt": 0.5}.get(cfg.sampler)
    weights = None if power is None else sample_weights(labels, num_classes, power)
    return EpochSampler(len(labels), seed, weights)
