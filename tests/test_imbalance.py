"""Each imbalance strategy does what it says."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from skinlib.config import ImbalanceConfig
from skinlib.imbalance import BinaryFocalLoss, FocalLoss, build_loss, class_weights, sample_weights
from skinlib.training.distributed import EpochSampler
from skinlib.training.selection import SelectionController


def test_inverse_and_effective_weights_follow_the_formula():
    counts = [100, 10, 1]
    w = class_weights(counts, "inverse")
    # 1/n = [0.01, 0.1, 1] -> normalised to sum 3: [0.027, 0.27, 2.70]
    np.testing.assert_allclose(w.numpy(), np.array([0.01, 0.1, 1.0]) / 1.11 * 3, rtol=1e-5)
    beta = 0.9
    eff = (1 - beta) / (1 - beta ** np.array(counts, float))
    np.testing.assert_allclose(
        class_weights(counts, "effective", beta).numpy(), eff / eff.sum() * 3, rtol=1e-5
    )
    assert class_weights(counts, "none").tolist() == [1.0, 1.0, 1.0]


def test_focal_equals_cross_entropy_at_gamma_zero():
    torch.manual_seed(0)
    logits, target = torch.randn(20, 5), torch.randint(0, 5, (20,))
    focal = FocalLoss(gamma=0.0)(logits, target)
    torch.testing.assert_close(focal, F.cross_entropy(logits, target, reduction="none"))
    weights = class_weights([5, 4, 3, 2, 1])
    weighted = FocalLoss(gamma=0.0, weight=weights)(logits, target)
    torch.testing.assert_close(
        weighted, F.cross_entropy(logits, target, weight=weights, reduction="none")
    )
    smooth = FocalLoss(gamma=0.0, label_smoothing=0.1)(logits, target)
    torch.testing.assert_close(
        smooth, F.cross_entropy(logits, target, label_smoothing=0.1, reduction="none")
    )


def test_focal_down_weights_easy_examples():
    logits = torch.tensor([[5.0, 0.0], [0.2, 0.0]])  # first is easy, second hard
    target = torch.tensor([0, 0])
    ce = F.cross_entropy(logits, target, reduction="none")
    focal = FocalLoss(gamma=2.0)(logits, target)
    ratio = focal / ce
    assert ratio[0] < 0.001 and ratio[1] > 0.2  # (1 - p)^2 with p = 0.993 and 0.55


def test_binary_loss_pos_weight_and_gamma_zero():
    z, t = torch.tensor([0.3, -1.0, 2.0]), torch.tensor([1.0, 0.0, 1.0])
    torch.testing.assert_close(
        BinaryFocalLoss(0.0, pos_weight=3.0)(z, t),
        F.binary_cross_entropy_with_logits(z, t, pos_weight=torch.tensor(3.0), reduction="none"),
    )
    loss = build_loss(ImbalanceConfig(class_weights="inverse"), [90, 10], binary=True)
    assert loss.pos_weight == pytest.approx(9.0)


def test_weighted_sampler_draws_classes_equally():
    labels = np.array([0] * 900 + [1] * 90 + [2] * 10)
    sampler = EpochSampler(len(labels), seed=0, weights=sample_weights(labels, 3))
    drawn = []
    for epoch in range(3):
        sampler.set_epoch(epoch)
        drawn.append(labels[list(sampler)])
    drawn = np.concatenate(drawn)
    shares = np.bincount(drawn, minlength=3) / len(drawn)
    np.testing.assert_allclose(shares, [1 / 3] * 3, atol=0.03)


def test_sampler_is_deterministic_per_epoch():
    s = EpochSampler(50, seed=1)
    s.set_epoch(3)
    first = list(s)
    s.set_epoch(4)
    assert list(s) != first
    s.set_epoch(3)
    assert list(s) == first


@pytest.mark.parametrize("target", [0.25, 0.5])
def test_selection_holds_its_activation_rate(target):
    torch.manual_seed(0)
    ctl = SelectionController(target=target)
    for step in range(300):
        # losses drift downwards as training would, with heavy tails
        losses = torch.distributions.Exponential(1.0).sample((64,)) * (2.0 / (1 + step / 50))
        chosen = ctl.select(losses)
        assert len(chosen) >= 2
    ctl.history = ctl.history[50:]  # after the controller settles
    assert abs(ctl.epoch_rate() - target) < 0.04
