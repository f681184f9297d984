"""Unknown-input scores and their detection report."""

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from skinlib.evaluation.ood import (
    KNOWN,
    SCORES,
    VALIDATION,
    Mahalanobis,
    blank_skin,
    detection_report,
    detection_table,
    energy,
    msp,
    selection_half,
    threshold_for_known,
    unknown_rule,
    unknown_scores,
    unseen_class_images,
    unseen_class_rows,
)


def test_separable_scores_give_auroc_one_and_no_false_accepts():
    rng = np.random.default_rng(0)
    known, unknown = rng.uniform(1, 2, 300), rng.uniform(-1, 0, 80)
    groups = np.arange(300) // 3
    rep = detection_report(known, unknown, groups, n_boot=100)
    assert rep["auroc"] == 1.0 and rep["auroc_low"] == 1.0
    assert rep["fpr"] == 0.0 and rep["fpr_high"] == 0.0


def test_detection_report_matches_sklearn_and_equal_scores_are_chance():
    rng = np.random.default_rng(1)
    known, unknown = rng.normal(1, 1, 400), rng.normal(0, 1, 100)
    rep = detection_report(known, unknown, n_boot=200)
    ref = roc_auc_score(np.r_[np.zeros(400), np.ones(100)], -np.r_[known, unknown])
    assert rep["auroc"] == pytest.approx(ref)
    assert rep["auroc_low"] < rep["auroc"] < rep["auroc_high"]
    # accepted unknowns at the threshold keeping 95% of knowns
    t = np.quantile(known, 0.05)
    assert rep["fpr"] == pytest.approx(np.mean(unknown >= t), abs=0.011)
    same = detection_report(np.ones(50), np.ones(20), n_boot=20)
    assert same["auroc"] == 0.5


def test_scores_on_known_logits():
    logits = np.array([[10.0, 0.0], [0.0, 0.0]])
    assert msp(logits)[1] == pytest.approx(0.5)
    assert energy(logits)[1] == pytest.approx(np.log(2))
    assert energy(logits)[0] > energy(logits)[1]
    assert threshold_for_known(np.arange(101), keep=0.95) == pytest.approx(5.0)


def test_mahalanobis_separates_far_features():
    rng = np.random.default_rng(2)
    means = np.array([[0, 0, 0], [5, 0, 0]])
    y = rng.integers(0, 2, 500)
    x = means[y] + rng.normal(0, 1, (500, 3))
    m = Mahalanobis().fit(x, y)
    assert np.allclose(m.means_, means, atol=0.2)
    # the distance is scikit-learn's with the pooled within-class covariance (no shrinkage)
    from sklearn.covariance import EmpiricalCovariance

    centred = x - m.means_[y]
    ref = EmpiricalCovariance(assume_centered=True).fit(centred)
    exact = Mahalanobis(shrinkage=0).fit(x, y)
    queries = rng.normal(0, 3, (20, 3))
    expected = np.stack([ref.mahalanobis(queries - mu) for mu in m.means_], 1).min(1)
    np.testing.assert_allclose(-exact.score(queries), expected, rtol=1e-8)
    far = rng.normal(0, 1, (50, 3)) + [0, 8, 0]
    assert detection_report(m.score(x), m.score(far), n_boot=20)["auroc"] > 0.99


def test_demo_unknown_images_are_images():
    assert blank_skin(0, 48).size == (48, 48)
    plain, noisy = np.asarray(blank_skin(1, 64)), np.asarray(blank_skin(1, 64, artefacts=True))
    assert np.abs(plain.astype(int) - noisy).mean() > 1  # the artefacts are drawn
    assert len(unseen_class_images("scc", 2, size=48)) == 2


SLOW = pytest.mark.slow


@pytest.mark.parametrize(
    "arch",
    [
        "resnet18",
        "vit_tiny",
        pytest.param("efficientnet_b0", marks=SLOW),
        pytest.param("densenet121", marks=SLOW),
        pytest.param("swin_tiny", marks=SLOW),
    ],
)
def test_features_and_logits_come_from_one_forward_pass(arch):
    """The logits beside the features are the model's own output for every architecture."""
    from types import SimpleNamespace

    import torch
    from torchvision.transforms import v2 as T

    from skinlib.config import ModelConfig
    from skinlib.evaluation.ood import logits_and_features
    from skinlib.models.architectures import create_model

    torch.manual_seed(0)
    model = create_model(ModelConfig(arch=arch), 3, 32).eval()
    transform = T.Compose([T.PILToTensor(), T.ToDtype(torch.float32, scale=True)])
    images = [blank_skin(i, 32) for i in range(3)]
    logits, feats = logits_and_features(SimpleNamespace(model=model, transform=transform), images)
    with torch.no_grad():
        expected = model(torch.stack([transform(im) for im in images])).numpy()
    np.testing.assert_allclose(logits, expected, atol=1e-4)
    assert feats.ndim == 2 and feats.shape[0] == 3 and feats.shape[1] > 3


def test_every_score_of_known_logits_and_the_detection_table():
    """Logits [log 3, 0]: MSP 3/4, energy log(3 + 1); features at a class mean: Mahalanobis 0."""
    feats = np.array([[0.0, 0.0], [0.0, 0.0], [4.0, 4.0], [4.0, 4.0]])
    maha = Mahalanobis().fit(
        feats + [[0.1, -0.1], [-0.1, 0.1], [0.1, -0.1], [-0.1, 0.1]], [0, 0, 1, 1]
    )
    scores = unknown_scores(np.array([[np.log(3), 0.0]]), np.array([[0.0, 0.0]]), maha, 1.0)
    assert list(scores) == list(SCORES)
    assert scores["msp"][0] == pytest.approx(0.75)
    assert scores["energy"][0] == pytest.approx(np.log(4))
    assert scores["mahalanobis"][0] == pytest.approx(0.0)
    known = {s: np.linspace(1, 2, 30) for s in SCORES}
    table = detection_table(
        {KNOWN: known, "blank skin": {s: np.linspace(-1, 0, 10) for s in SCORES}},
        np.arange(30),
        n_boot=20,
    )
    assert table[["unknown", "score"]].values.tolist() == [["blank skin", s] for s in SCORES]
    assert (table["auroc"] == 1.0).all() and (table["fpr"] == 0.0).all()


def test_unknown_rule_keeps_95_percent_of_validation_images():
    top = 0.5 + np.arange(101) / 200  # 0.5 ... 1.0; its 5th percentile is 0.525
    rule = unknown_rule(np.c_[top, 1 - top])
    assert rule == {"score": "msp", "threshold": pytest.approx(0.525), "keeps_known": 0.95}


def test_unseen_class_rows_leave_out_the_study_images():
    table = pd.DataFrame(
        {"image_id": ["a", "b", "c", "d", "e"], "label": ["scc", "scc", "mel", "scc", "scc"]}
    )
    rows = unseen_class_rows(table, "scc", exclude=["b"], n=10)
    assert sorted(rows["image_id"]) == ["a", "d", "e"]
    assert len(unseen_class_rows(table, "scc", exclude=["b"], n=2)) == 2


def test_mahalanobis_uses_ledoit_wolf_on_all_features_when_rank_deficient():
    """Fewer training rows than dimensions (as 1,000 images of 1,280-d features): the shared
    covariance is scikit-learn's Ledoit-Wolf estimate of the class-centred features."""
    from sklearn.covariance import LedoitWolf

    rng = np.random.default_rng(3)
    y = np.repeat([0, 1], 10)
    x = rng.normal(0, 1, (20, 40)) + 3 * y[:, None]
    m = Mahalanobis().fit(x, y)
    centred = x - m.means_[y]
    expected = LedoitWolf(assume_centered=True).fit(centred).precision_
    np.testing.assert_allclose(m.precision_, expected, rtol=1e-8)


def test_unknown_images_of_one_lesion_are_resampled_as_one():
    """Every unknown image a view of one lesion (and the knowns one lesion too): each resample
    draws that lesion whole, so the interval is the point estimate; per image it would not be."""
    rng = np.random.default_rng(4)
    known, unknown = rng.normal(1, 1, 40), rng.normal(0, 1, 30)
    one = np.zeros(40, int)
    rep = detection_report(known, unknown, one, n_boot=50, unknown_groups=np.zeros(30, int))
    assert rep["auroc_low"] == pytest.approx(rep["auroc"]) == pytest.approx(rep["auroc_high"])
    per_image = detection_report(known, unknown, one, n_boot=50)
    assert per_image["auroc_low"] < per_image["auroc_high"]


def test_control_row_separates_dataset_shift_from_class_novelty():
    """External knowns and external unknowns share a shift (scores 0..1 vs test 2..3): both are
    told from test perfectly, but the unknowns are not told from their own source (AUROC 0.5)."""
    test, external = np.linspace(2, 3, 20), np.linspace(0, 1, 10)
    scores = {
        KNOWN: {s: test for s in SCORES},
        "known classes (isic2019)": {s: external for s in SCORES},
        "unseen class (scc)": {s: external.copy() for s in SCORES},
    }
    table = detection_table(
        scores, None, n_boot=20, controls={"unseen class (scc)": "known classes (isic2019)"}
    )
    vs_test = table[table["reference"] == "test"]
    assert (vs_test["auroc"] == 1.0).all()
    assert set(vs_test["unknown"]) == {"known classes (isic2019)", "unseen class (scc)"}
    novelty = table[table["reference"] == "known classes (isic2019)"]
    assert novelty["unknown"].unique().tolist() == ["unseen class (scc)"]
    assert (novelty["auroc"] == 0.5).all()


def test_score_is_chosen_on_validation_and_a_held_out_half_of_the_unknowns():
    """selection_auroc: validation vs one half of the unknown lesions; the reported AUROC: test
    vs the other half only. Here the halves disagree, so the two numbers differ."""
    groups = np.arange(40) // 2  # 20 lesions, two views each
    chosen = selection_half(groups, 40)
    assert chosen.sum() == 20 and all(len(set(chosen[groups == g])) == 1 for g in range(20))
    unknown = np.where(chosen, -1.0, 1.5)  # the selection half is easy, the report half is not
    known = np.linspace(1, 2, 30)
    scores = {
        KNOWN: {s: known for s in SCORES},
        VALIDATION: {s: known for s in SCORES},
        "blank skin": {s: unknown for s in SCORES},
    }
    table = detection_table(scores, None, n_boot=20, groups={"blank skin": groups})
    assert (table["selection_auroc"] == 1.0).all()
    expected = detection_report(known, unknown[~chosen], n_boot=0)["auroc"]
    assert table["auroc"].tolist() == pytest.approx([expected] * len(SCORES))
    assert expected < 1.0
