"""Each imbalance strategy does what it says."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from skinlib.config import ImbalanceConfig
from skinlib.errors import ConfigError
from skinlib.training.distributed import EpochSampler
from skinlib.training.imbalance import (
    BinaryFocalLoss,
    FocalLoss,
    LogitAdjusted,
    build_loss,
    build_sampler,
    class_weights,
    loss_for_epoch,
    presented_counts,
    presented_prior,
    sample_weights,
)
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


def test_focal_alpha_scales_each_class():
    torch.manual_seed(1)
    logits, target = torch.randn(12, 3), torch.randint(0, 3, (12,))
    alpha = [0.25, 1.0, 2.0]
    ce = F.cross_entropy(logits, target, reduction="none")
    torch.testing.assert_close(
        FocalLoss(gamma=0.0, alpha=alpha)(logits, target), ce * torch.tensor(alpha)[target]
    )
    with pytest.raises(ConfigError, match="alpha has 2 values for 3 classes"):
        build_loss(ImbalanceConfig(loss="focal", alpha=[1.0, 2.0]), [5, 5, 5])


def test_soft_targets_as_mixup_gives_them():
    logits = torch.randn(4, 3)
    hard = torch.tensor([0, 1, 2, 1])
    mixed = 0.7 * F.one_hot(hard, 3).float() + 0.3 * F.one_hot(hard.flip(0), 3).float()
    expected = 0.7 * F.cross_entropy(logits, hard, reduction="none") + 0.3 * F.cross_entropy(
        logits, hard.flip(0), reduction="none"
    )
    torch.testing.assert_close(FocalLoss(gamma=0.0)(logits, mixed), expected)


def test_build_loss_combines_strategies():
    counts = [80, 15, 5]
    cfg = ImbalanceConfig(
        loss="focal", gamma=1.5, class_weights="effective", beta=0.99, label_smoothing=0.1
    )
    loss = build_loss(cfg, counts)
    assert isinstance(loss, FocalLoss) and loss.gamma == 1.5 and loss.label_smoothing == 0.1
    torch.testing.assert_close(loss.weight, class_weights(counts, "effective", 0.99))
    plain = build_loss(ImbalanceConfig(), counts)
    assert plain.gamma == 0.0 and plain.weight is None and plain.alpha is None
    with pytest.raises(ConfigError, match="imbalance.loss"):
        build_loss(ImbalanceConfig(loss="dice"), counts)
    with pytest.raises(ConfigError, match="imbalance.class_weights"):
        build_loss(ImbalanceConfig(class_weights="sqrt"), counts)


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
    # binary focal: BCE times (1 - p_t) ** gamma, p_t the probability of the true label
    p_t = torch.where(t == 1, torch.sigmoid(z), 1 - torch.sigmoid(z))
    torch.testing.assert_close(
        BinaryFocalLoss(2.0)(z, t),
        F.binary_cross_entropy_with_logits(z, t, reduction="none") * (1 - p_t) ** 2,
    )
    smooth = BinaryFocalLoss(0.0, label_smoothing=0.2)(z, t)
    torch.testing.assert_close(
        smooth, F.binary_cross_entropy_with_logits(z, t * 0.8 + 0.1, reduction="none")
    )


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


def test_sqrt_sampler_draws_classes_in_proportion_to_the_root_of_their_size():
    labels = np.array([0] * 900 + [1] * 100 + [2] * 25)
    sampler = build_sampler(ImbalanceConfig(sampler="sqrt"), labels, 3, seed=1)
    drawn = []
    for epoch in range(4):
        sampler.set_epoch(epoch)
        drawn.append(labels[list(sampler)])
    shares = np.bincount(np.concatenate(drawn), minlength=3) / sum(map(len, drawn))
    root = np.sqrt([900, 100, 25])
    np.testing.assert_allclose(shares, root / root.sum(), atol=0.03)  # 30:10:5, not 1:1:1


def test_weighted_sampler_draws_what_torch_draws():
    labels = np.array([0] * 30 + [1] * 6 + [2] * 2)
    sampler = build_sampler(ImbalanceConfig(sampler="weighted"), labels, 3, seed=4)
    sampler.set_epoch(2)
    reference = torch.utils.data.WeightedRandomSampler(
        1.0 / np.bincount(labels)[labels], len(labels), generator=sampler.generator()
    )
    assert list(sampler) == list(reference)
    plain = build_sampler(ImbalanceConfig(), labels, 3, seed=4)
    assert sorted(plain) == list(range(len(labels)))  # a shuffle: each image once
    with pytest.raises(ConfigError, match="imbalance.sampler"):
        build_sampler(ImbalanceConfig(sampler="smote"), labels, 3)


def test_two_ranks_share_out_the_single_process_draw():
    labels = np.array([0] * 40 + [1] * 8)
    single = build_sampler(ImbalanceConfig(sampler="weighted"), labels, 2, seed=1)
    ranks = [build_sampler(ImbalanceConfig(sampler="weighted"), labels, 2, seed=1) for _ in "ab"]
    for rank, sampler in enumerate(ranks):
        sampler.rank, sampler.size = rank, 2  # as torchrun would set them
    order = list(single)
    assert list(ranks[0]) == order[0::2] and list(ranks[1]) == order[1::2]
    assert len(ranks[0]) == len(labels) // 2


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


def test_logit_adjusted_loss_is_cross_entropy_on_logits_plus_tau_log_prior():
    counts = [80, 20]  # prior 0.8 / 0.2
    logits, target = torch.zeros(2, 2), torch.tensor([0, 1])
    # tau 1: the adjusted logits are log(0.8), log(0.2), so the softmax is the prior itself
    loss = build_loss(ImbalanceConfig(loss="logit_adjusted"), counts)
    torch.testing.assert_close(loss(logits, target), -torch.log(torch.tensor([0.8, 0.2])))
    # tau 2: the softmax is proportional to 0.64 : 0.04, so the rare class costs log(17)
    loss = build_loss(ImbalanceConfig(loss="logit_adjusted", tau=2.0), counts)
    torch.testing.assert_close(loss(logits, target)[1], torch.tensor(np.log(17.0)).float())
    # any logits: CE of z + tau * log prior, with the class weights and smoothing of a plain loss
    torch.manual_seed(0)
    counts = [50, 30, 15, 5]
    z, y = torch.randn(16, 4), torch.randint(0, 4, (16,))
    prior = torch.tensor(counts, dtype=torch.float32) / 100
    cfg = ImbalanceConfig(loss="logit_adjusted", tau=0.5, label_smoothing=0.1)
    expected = F.cross_entropy(z + 0.5 * prior.log(), y, label_smoothing=0.1, reduction="none")
    torch.testing.assert_close(build_loss(cfg, counts)(z, y), expected)
    assert not torch.equal(build_loss(cfg, counts)(z, y), F.cross_entropy(z, y, reduction="none"))


def test_balanced_softmax_is_its_formula_and_logit_adjustment_at_tau_one():
    torch.manual_seed(1)
    counts = torch.tensor([60.0, 25.0, 10.0, 5.0])
    z, y = torch.randn(20, 4), torch.randint(0, 4, (20,))
    loss = build_loss(ImbalanceConfig(loss="balanced_softmax"), counts.int().tolist())
    # Ren et al. 2020: -log( n_y exp(z_y) / sum_j n_j exp(z_j) )
    weighted = counts * z.exp()
    formula = -torch.log(weighted[torch.arange(20), y] / weighted.sum(1))
    torch.testing.assert_close(loss(z, y), formula)
    adjusted = build_loss(ImbalanceConfig(loss="logit_adjusted", tau=1.0), counts.int().tolist())
    torch.testing.assert_close(loss(z, y), adjusted(z, y))
    with pytest.raises(ConfigError, match="tau=0.5 with balanced_softmax"):
        build_loss(ImbalanceConfig(loss="balanced_softmax", tau=0.5), [5, 5])


def test_binary_logit_adjustment_shifts_by_the_log_prior_odds():
    z, t = torch.tensor([[0.3], [-1.0], [2.0]]), torch.tensor([1, 0, 1])
    loss = build_loss(ImbalanceConfig(loss="logit_adjusted"), [90, 10], binary=True)
    shifted = z.reshape(-1) + np.log(10 / 90)
    expected = F.binary_cross_entropy_with_logits(shifted, t.float(), reduction="none")
    torch.testing.assert_close(loss(z, t), expected)


def test_the_prior_is_the_one_the_sampler_presents():
    counts = [900, 100, 25]
    np.testing.assert_allclose(presented_prior(counts), np.array(counts) / 1025)
    np.testing.assert_allclose(presented_prior(counts, "weighted"), [1 / 3] * 3)
    np.testing.assert_allclose(presented_prior(counts, "sqrt"), np.array([30, 10, 5]) / 45)
    np.testing.assert_allclose(presented_counts(counts, "sqrt").sum(), 1025)
    # what the sampler really draws, over a few epochs, is that prior
    labels = np.repeat([0, 1, 2], counts)
    for sampler in ("sqrt", "weighted"):
        drawn = build_sampler(ImbalanceConfig(sampler=sampler), labels, 3, seed=2)
        shares = []
        for epoch in range(4):
            drawn.set_epoch(epoch)
            shares.append(np.bincount(labels[list(drawn)], minlength=3))
        share = np.sum(shares, 0) / np.sum(shares)
        np.testing.assert_allclose(share, presented_prior(counts, sampler), atol=0.03)
    # under equal draws per class the batches are balanced already: the adjustment shifts nothing
    torch.manual_seed(2)
    z, y = torch.randn(10, 3), torch.randint(0, 3, (10,))
    cfg = ImbalanceConfig(loss="logit_adjusted", sampler="weighted")
    torch.testing.assert_close(
        build_loss(cfg, counts)(z, y), F.cross_entropy(z, y, reduction="none")
    )
    sqrt = build_loss(ImbalanceConfig(loss="logit_adjusted", sampler="sqrt"), counts)
    assert isinstance(sqrt, LogitAdjusted)
    torch.testing.assert_close(sqrt.offset, torch.log(torch.tensor([30.0, 10.0, 5.0]) / 45))


def test_deferred_reweighting_switches_the_weights_at_its_epoch():
    counts = [70, 20, 10]
    cfg = ImbalanceConfig(drw_epoch=2, beta=0.99)
    effective = class_weights(counts, "effective", 0.99)
    weights = [loss_for_epoch(cfg, counts, epoch, 4).weight for epoch in range(4)]
    assert weights[0] is None and weights[1] is None
    for w in weights[2:]:
        torch.testing.assert_close(w, effective)
    # a fraction of the epochs: 0.75 of 8 is 6 plain epochs
    assert ImbalanceConfig(drw_epoch=0.75).drw_start(8) == 6
    assert ImbalanceConfig().drw_start(8) is None
    # with a sampler, the weights of the counts it presents (equal draws: equal weights)
    sampled = ImbalanceConfig(drw_epoch=1, sampler="weighted")
    torch.testing.assert_close(loss_for_epoch(sampled, counts, 1, 2).weight, torch.ones(3))
    # combined with logit adjustment, the weights go to its cross-entropy
    adjusted = loss_for_epoch(ImbalanceConfig(drw_epoch=1, loss="logit_adjusted"), counts, 1, 2)
    torch.testing.assert_close(adjusted.base.weight, class_weights(counts, "effective"))
    for bad, match in [
        (ImbalanceConfig(drw_epoch=1, class_weights="inverse"), "class_weights=none"),
        (ImbalanceConfig(drw_epoch=4), "would never start"),
        (ImbalanceConfig(drw_epoch=1.5), "whole number"),
    ]:
        with pytest.raises(ConfigError, match=match):
            loss_for_epoch(bad, counts, 0, 4)
