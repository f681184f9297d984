"""Class imbalance: class weights, focal loss, logit adjustment, deferred re-weighting, label
smoothing and oversampling, combinable.

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


class LogitAdjusted(nn.Module):
    """A per-sample loss on the logits plus a fixed per-class offset, ``base(z + offset, y)``.

    With ``offset = tau * log prior`` it is the logit-adjusted loss of Menon et al. (ICLR 2021);
    with ``offset = log n_c`` the balanced softmax of Ren et al. (NeurIPS 2020), the same loss at
    tau 1 (a softmax does not change when every logit moves by the same ``log N``). Only the loss
    sees the offset: the model's own logits are what validation, calibration and inference use,
    and they estimate the balanced (class-prior-free) posterior, which is the point of the method.

    Args:
        base: a per-sample loss (:class:`FocalLoss` at gamma 0 is cross-entropy).
        offset: (C,) added to every row of the logits; (1,) for a binary model's one logit.
    """

    def __init__(self, base: nn.Module, offset: torch.Tensor):
        super().__init__()
        self.base = base
        self.register_buffer("offset", offset.float())

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.base(logits.float() + self.offset, target)


LOSSES = ("ce", "focal", "logit_adjusted", "balanced_softmax")


def build_loss(
    cfg: ImbalanceConfig,
    class_counts: Sequence[int],
    binary: bool = False,
    reweight: bool = False,
) -> nn.Module:
    """The per-sample training loss the config asks for.

    Args:
        class_counts: images per class in the training split (never validation or test).
        reweight: the deferred re-weighting phase (:func:`loss_for_epoch`): effective-number
            weights of the counts the sampler presents replace ``imbalance.class_weights``.
    """
    if cfg.loss not in LOSSES:
        raise ConfigError(f"imbalance.loss={cfg.loss!r}; choose one of {LOSSES}")
    if cfg.loss == "balanced_softmax" and cfg.tau != 1.0:
        raise ConfigError(
            f"imbalance.tau={cfg.tau:g} with balanced_softmax, which is logit adjustment at tau "
            "1: use imbalance.loss=logit_adjusted for another strength"
        )
    gamma = cfg.gamma if cfg.loss == "focal" else 0.0
    if reweight:
        weights = class_weights(presented_counts(class_counts, cfg.sampler), "effective", cfg.beta)
    else:
        weights = class_weights(class_counts, cfg.class_weights, cfg.beta)
    weighted = reweight or cfg.class_weights != "none"
    offset = _logit_offset(cfg, class_counts, binary)
    if binary:
        pos_weight = float(weights[1] / weights[0]) if weighted else None
        loss = BinaryFocalLoss(gamma, pos_weight, cfg.label_smoothing)
        return loss if offset is None else LogitAdjusted(loss, offset)
    alpha = cfg.alpha if cfg.loss == "focal" else None
    if alpha is not None and len(alpha) != len(class_counts):
        raise ConfigError(
            f"imbalance.alpha has {len(alpha)} values for {len(class_counts)} classes"
        )
    loss = FocalLoss(gamma, alpha, weights if weighted else None, cfg.label_smoothing)
    return loss if offset is None else LogitAdjusted(loss, offset)


def _logit_offset(
    cfg: ImbalanceConfig, class_counts: Sequence[int], binary: bool
) -> torch.Tensor | None:
    """tau * log prior (logit adjustment) or log n_c (balanced softmax) of the training batches;
    a binary model's one logit is shifted by the log prior odds of the positive class."""
    if cfg.loss not in ("logit_adjusted", "balanced_softmax"):
        return None
    if cfg.loss == "balanced_softmax":
        log_prior = np.log(presented_counts(class_counts, cfg.sampler))
    else:
        log_prior = cfg.tau * np.log(presented_prior(class_counts, cfg.sampler))
    if binary:
        log_prior = log_prior[1:] - log_prior[:1]
    return torch.tensor(log_prior, dtype=torch.float32)


def loss_for_epoch(
    cfg: ImbalanceConfig, class_counts: Sequence[int], epoch: int, epochs: int, binary: bool = False
) -> nn.Module:
    """The loss of one epoch: :func:`build_loss`, re-weighted from
    :meth:`~skinlib.config.ImbalanceConfig.drw_start` on.

    A function of the epoch alone, so a resumed run re-weights from the same epoch.
    """
    start = cfg.drw_start(epochs)
    return build_loss(cfg, class_counts, binary, reweight=start is not None and epoch >= start)


SAMPLERS = ("none", "weighted", "sqrt")
# a sampler draws an image of class c with weight n_c ** -power (sample_weights)
SAMPLER_POWER = {"none": 0.0, "weighted": 1.0, "sqrt": 0.5}


def presented_counts(class_counts: Sequence[int], sampler: str = "none") -> np.ndarray:
    """Expected draws per class in one epoch (as many draws as training images): the counts
    themselves without a sampler, N * n_c ** (1 - power) / sum_j n_j ** (1 - power) with one.

    A sampler that rebalances changes the class prior the loss sees: under equal draws per class
    (``weighted``) every class is 1 / C of the batches, so logit adjustment and balanced softmax
    shift nothing and deferred re-weighting weighs every class alike; under ``sqrt`` the prior is
    proportional to the square root of the counts. Adjusting by the training split's own shares
    instead would correct for an imbalance the sampler has already removed.

    >>> presented_counts([90, 10], "weighted").tolist(), presented_counts([64, 16, 16], "sqrt").tolist()
    ([50.0, 50.0], [48.0, 24.0, 24.0])
    """
    if sampler not in SAMPLERS:
        raise ConfigError(f"imbalance.sampler={sampler!r}; choose one of {SAMPLERS}")
    n = np.asarray(class_counts, dtype=np.float64)
    if np.any(n <= 0):
        raise ConfigError(
            f"class counts {list(class_counts)}: every class needs at least one training image"
        )
    drawn = n ** (1.0 - SAMPLER_POWER[sampler])
    return drawn / drawn.sum() * n.sum()


def presented_prior(class_counts: Sequence[int], sampler: str = "none") -> np.ndarray:
    """The class prior of the training batches (:func:`presented_counts` as shares)."""
    counts = presented_counts(class_counts, sampler)
    return counts / counts.sum()


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
    power = SAMPLER_POWER[cfg.sampler]
    weights = None if cfg.sampler == "none" else sample_weights(labels, num_classes, power)
    return EpochSampler(len(labels), seed, weights)
