"""Conformal sets: the finite-sample guarantee, lesion-grouped calibration, MAPIE agreement."""

import math

import numpy as np
import pytest

from skinlib.evaluation.conformal import (
    ConformalClassifier,
    StoredConformal,
    class_group_weights,
    class_scores,
    conformal_grid,
    conformal_quantile,
    coverage_table,
    describe_set,
    group_weights,
    load_conformal,
    min_lesions,
    one_image_per_lesion,
    save_conformal,
    set_size_counts,
    stored_conformal,
)
from skinlib.evaluation.predictions import Predictions


def _exchangeable(rng, n, c=4):
    """Probabilities and labels drawn from them: calibration and test are exchangeable."""
    proba = rng.dirichlet(np.ones(c) * 0.7, size=n)
    labels = (proba.cumsum(1) > rng.random((n, 1))).argmax(1)
    return proba, labels


@pytest.mark.parametrize("method", ["lac", "aps", "raps"])
def test_coverage_within_the_finite_sample_bound(method):
    # 1 - alpha <= E[coverage] <= 1 - alpha + 1 / (n + 1) for exchangeable data (continuous
    # scores); n = 24, alpha = 0.1: E[coverage] = ceil(25 * 0.9) / 25 = 0.92 exactly.
    rng = np.random.default_rng(0)
    n, alpha, trials = 24, 0.1, 1500
    covered = []
    for _ in range(trials):
        cal_p, cal_y = _exchangeable(rng, n)
        test_p, test_y = _exchangeable(rng, 200)
        sets = ConformalClassifier(method, 1 - alpha).fit(cal_p, cal_y).predict_sets(test_p)
        covered.append(sets[np.arange(200), test_y].mean())
    mean = float(np.mean(covered))  # Monte Carlo standard error about 0.0015
    assert 1 - alpha - 0.005 <= mean <= 1 - alpha + 1 / (n + 1) + 0.005
    assert mean == pytest.approx(0.92, abs=0.006)


def test_quantile_is_the_ceil_order_statistic_and_inf_when_n_is_too_small():
    s = np.array([0.5, 0.1, 0.9, 0.3])
    assert conformal_quantile(s, 0.4) == 0.5  # ceil(5 * 0.6) = 3rd smallest of 4
    assert conformal_quantile(np.arange(1, 10) / 10, 0.2) == 0.8
    assert conformal_quantile(s, 0.1) == math.inf  # ceil(5 * 0.9) = 5 > 4


def test_ungrouped_cross_check_against_mapie():
    mapie = pytest.importorskip("mapie.classification")
    from sklearn.base import BaseEstimator, ClassifierMixin

    class Passthrough(ClassifierMixin, BaseEstimator):
        """The "features" are the probabilities themselves."""

        def fit(self, x, y):
            self.classes_ = np.arange(x.shape[1])
            return self

        def predict_proba(self, x):
            return np.asarray(x)

        def predict(self, x):
            return np.asarray(x).argmax(1)

    rng = np.random.default_rng(1)
    cal_p, cal_y = _exchangeable(rng, 300)
    test_p, _ = _exchangeable(rng, 500)
    est = Passthrough().fit(cal_p, cal_y)
    ref = mapie.SplitConformalClassifier(est, confidence_level=0.9, conformity_score="lac")
    ref.conformalize(cal_p, cal_y)
    ref_sets = ref.predict_set(test_p)[1][:, :, 0]
    ours = ConformalClassifier("lac", 0.9).fit(cal_p, cal_y).predict_sets(test_p)
    assert (ours == ref_sets).mean() > 0.999  # MAPIE adds a 1e-8 tolerance at the threshold


def test_aps_scores_match_a_direct_reference():
    p = np.array([[0.5, 0.3, 0.2], [0.1, 0.6, 0.3]])
    assert np.allclose(class_scores(p, "aps"), [[0.5, 0.8, 1.0], [1.0, 0.6, 0.9]])
    raps = class_scores(p, "raps", lam=0.1, k_reg=1)
    assert np.allclose(raps, [[0.5, 0.9, 1.2], [1.2, 0.6, 1.0]])


def _repeated_lesions(rng, n_lesions):
    """Half the lesions are photographed 20 times and easy (true-class score small), half once
    and hard: image-level calibration is dominated by the easy, over-photographed lesions."""
    scores, groups = [], []
    for g in range(n_lesions):
        if g % 2:
            scores.append(rng.uniform(0, 0.2, 20))
            groups += [g] * 20
        else:
            scores.append(rng.uniform(0, 1, 1))
            groups.append(g)
    s = np.concatenate(scores)
    proba = np.stack([1 - s, s], axis=1)  # LAC score of class 0 is s
    return proba, np.zeros(len(s), int), np.array(groups)


def _lesion_coverage(sets, labels, groups):
    hit = sets[np.arange(len(labels)), labels]
    return float((hit * group_weights(groups, len(labels))).sum() / len(np.unique(groups)))


def test_grouped_calibration_keeps_lesion_coverage_where_ungrouped_undercovers():
    rng = np.random.default_rng(2)
    grouped, ungrouped = [], []
    for _ in range(40):
        cal = _repeated_lesions(rng, 100)
        test_p, test_y, test_g = _repeated_lesions(rng, 400)
        for store, g in ((grouped, cal[2]), (ungrouped, None)):
            cp = ConformalClassifier("lac", 0.9).fit(cal[0], cal[1], g)
            store.append(_lesion_coverage(cp.predict_sets(test_p), test_y, test_g))
    assert np.mean(grouped) >= 0.89  # near the target for a new lesion
    assert np.mean(ungrouped) < 0.7  # the easy lesions' twenty copies set the threshold


def test_mondrian_gives_each_class_its_own_coverage():
    rng = np.random.default_rng(3)
    n = 4000
    y = (rng.random(n) < 0.1).astype(int)  # class 1 is rare and the model is bad at it
    p1 = np.where(y == 1, rng.uniform(0, 0.6, n), rng.uniform(0, 0.1, n))
    proba = np.stack([1 - p1, p1], 1)
    cal, test = slice(0, 2000), slice(2000, None)
    marginal = ConformalClassifier("lac", 0.9).fit(proba[cal], y[cal]).predict_sets(proba[test])
    mondrian = ConformalClassifier("lac", 0.9, mondrian=True).fit(proba[cal], y[cal])
    m_sets = mondrian.predict_sets(proba[test])
    rare = y[test] == 1
    assert marginal[rare, 1].mean() < 0.8  # the common class carries the marginal coverage
    assert m_sets[rare, 1].mean() >= 0.85
    with pytest.raises(AttributeError, match="quantiles_"):
        _ = mondrian.quantile_


def test_coverage_table_sizes_and_intervals():
    sets = np.array([[1, 0], [1, 1], [0, 1], [0, 0]], bool)
    labels = np.array([0, 0, 0, 1])
    table = coverage_table(sets, labels, ["a", "b"], groups=["g1", "g1", "g2", "g3"], n_boot=50)
    # lesions g1 (covered twice), g2 and g3 (missed): 1/3 per lesion, 2/4 per image
    assert table.loc["all", "coverage"] == pytest.approx(1 / 3)
    assert table.loc["all", "image_coverage"] == 0.5
    assert table.loc["a", "coverage"] == pytest.approx(1 / 2)
    assert table.loc["all", "mean_size"] == pytest.approx((1.5 + 1 + 0) / 3)
    assert table.loc["all", "image_mean_size"] == 1.0
    assert (table.loc["all", "images"], table.loc["all", "lesions"]) == (4, 3)
    low, high = table.loc["all", ["coverage_low", "coverage_high"]]
    assert low <= 1 / 3 <= high
    assert set_size_counts(sets).tolist() == [1, 2, 1]


def test_describe_and_store_roundtrip(tmp_path):
    assert describe_set(np.array([False, False]), ["a", "b"], 0.95) == "no class at 95%"
    stored = StoredConformal("lac", 0.9, True, [0.7, math.inf], ["a", "b"], 1.3, "lesion weights")
    save_conformal(tmp_path / "conformal.json", stored)
    back = load_conformal(tmp_path / "conformal.json")
    assert back == stored
    sets = back.predictor().predict_sets(np.array([[0.8, 0.2]]))
    assert sets.tolist() == [[True, True]]  # inf: class b always in its set
    assert load_conformal(tmp_path / "missing.json") is None


# nine validation images of three classes, each its own lesion, true-class probability 0.9, 0.8,
# ..., 0.1: LAC scores 0.1 ... 0.9; at 80% the threshold is the ceil(10 x 0.8) = 8th score, 0.8,
# so a class enters the set when its probability is at least 0.2
VAL_P = np.arange(9, 0, -1) / 10
VAL_Y = np.arange(9) % 3
CLASSES3 = ["bcc", "mel", "nv"]


def _val_predictions():
    proba = np.tile(((1 - VAL_P) / 2)[:, None], (1, 3))
    proba[np.arange(9), VAL_Y] = VAL_P
    return Predictions(
        [f"v{i}" for i in range(9)], [f"L{i}" for i in range(9)], VAL_Y, np.log(proba), CLASSES3
    )


def test_conformal_grid_known_sets_and_coverage():
    # test image 0 (bcc): {bcc, mel}, covered; image 1 (bcc): {nv}, missed
    test_proba = np.array([[0.7, 0.25, 0.05], [0.1, 0.15, 0.75]])
    test = Predictions(["t0", "t1"], ["T0", "T1"], [0, 0], np.log(test_proba), CLASSES3)
    table, sets = conformal_grid(_val_predictions(), test, 1.0, [0.8], "lac", n_boot=10)
    assert list(sets) == [
        "lac 80%",
        "lac Mondrian 80%",
        "aps 80%",
        "aps Mondrian 80%",
        "raps 80%",
        "raps Mondrian 80%",
        "lac 80% image-level",
    ]
    np.testing.assert_array_equal(sets["lac 80%"], [[True, True, False], [False, False, True]])
    overall = table[(table["setting"] == "lac 80%") & (table["class"] == "all")].iloc[0]
    assert (overall["coverage"], overall["mean_size"]) == (0.5, 1.5)
    assert (overall["method"], overall["target"], overall["mondrian"]) == ("lac", 0.8, False)
    # one image per lesion: the lesion-weighted and the image-level sets coincide
    np.testing.assert_array_equal(sets["lac 80% image-level"], sets["lac 80%"])
    assert not table[table["setting"] == "lac 80% image-level"]["grouped"].any()


def test_stored_conformal_is_the_lesion_weighted_marginal_set():
    stored = stored_conformal(_val_predictions(), 1.0, "lac", 0.8, unknown={"threshold": 0.4})
    np.testing.assert_allclose(stored.quantiles, [0.8] * 3)
    assert (stored.method, stored.coverage, stored.mondrian) == ("lac", 0.8, False)
    assert stored.classes == CLASSES3 and stored.temperature == 1.0
    assert stored.unknown == {"threshold": 0.4} and "lesion" in stored.grouping


def test_coverage_is_reported_per_lesion_where_hard_lesions_have_more_images():
    # 9 easy lesions of one image, all covered; 1 hard lesion of 6 images, all missed:
    # per lesion 0.9 (the calibrated unit), per image 9 / 15 = 0.6
    sets = np.array([[True]] * 9 + [[False]] * 6)
    groups = [f"e{i}" for i in range(9)] + ["hard"] * 6
    table = coverage_table(sets, np.zeros(15, int), ["a"], groups, n_boot=200)
    assert table.loc["all", "coverage"] == pytest.approx(0.9)
    assert table.loc["all", "image_coverage"] == pytest.approx(0.6)
    assert table.loc["all", "coverage_low"] < 0.9 < table.loc["all", "coverage_high"] + 1e-12


def test_mondrian_counts_each_patient_once_per_class():
    # 10 patients, each with one melanoma (score 0.5) and nine naevi: with per-patient weights
    # melanoma would weigh 10 x 1/10 = 1 lesion and get an infinite 90% threshold
    n = 10
    labels = np.tile([0] + [1] * 9, n)
    groups = np.repeat([f"p{i}" for i in range(n)], 10)
    proba = np.full((10 * n, 2), 0.5)
    cp = ConformalClassifier("lac", 0.9, mondrian=True).fit(proba, labels, groups)
    assert np.isfinite(cp.quantiles_[0]) and cp.quantiles_[0] == pytest.approx(0.5)
    np.testing.assert_allclose(class_group_weights(groups, labels)[labels == 0], 1.0)
    assert cp.threshold_table(["mel", "nv"])["calibration_lesions"].tolist() == [10, 10]


def test_threshold_table_flags_classes_too_rare_to_calibrate():
    # class 1 has 5 lesions: fewer than the 19 a 95% threshold needs, so it is in every set
    rng = np.random.default_rng(3)
    labels = np.r_[np.zeros(40, int), np.ones(5, int)]
    proba = rng.dirichlet([1, 1], size=45)
    cp = ConformalClassifier("lac", 0.95, mondrian=True).fit(proba, labels, np.arange(45))
    table = cp.threshold_table(["nv", "df"])
    assert table["calibration_lesions"].tolist() == [40, 5]
    assert table["in_every_set"].tolist() == [False, True]
    assert min_lesions(0.95) == 19 and min_lesions(0.9) == 9
    assert cp.predict_sets(proba)[:, 1].all()


def test_one_image_per_lesion_calibration_draws_one_seeded_image_each():
    groups = np.array(["a", "a", "a", "b", "c", "c"])
    keep = one_image_per_lesion(groups, seed=1)
    assert sorted(groups[keep]) == ["a", "b", "c"]
    np.testing.assert_array_equal(keep, one_image_per_lesion(groups, seed=1))
    proba = np.tile([0.6, 0.4], (6, 1))
    cp = ConformalClassifier("lac", 0.5, calibration="one-image", seed=1)
    cp.fit(proba, np.zeros(6, int), groups)
    assert (cp.n_calibration_, cp.calibration_) == (3, "one-image")
    assert ConformalClassifier().fit(proba, np.zeros(6, int), groups).calibration_ == (
        "lesion-weighted"
    )


def test_one_image_mondrian_sets_agree_with_crepes():
    # lesions of several images: the one-image calibration keeps one per lesion, where
    # crepes' Mondrian classifier (LAC = its hinge score, unsmoothed p-values) must agree.
    # crepes keeps a class at p-value == alpha, one more order statistic than ceil((n + 1)(1 - a))
    # where (n + 1) * alpha is a whole number, so no class may have n + 1 a multiple of 10
    crepes = pytest.importorskip("crepes")
    rng = np.random.default_rng(5)
    cal_p, cal_y = _exchangeable(rng, 600)
    groups = rng.integers(0, 250, size=600)  # about 2.4 images per lesion
    test_p, _ = _exchangeable(rng, 300)
    cp = ConformalClassifier("lac", 0.9, mondrian=True, calibration="one-image", seed=1)
    cp.fit(cal_p, cal_y, groups)
    keep = one_image_per_lesion(groups, seed=1)
    kp, ky = cal_p[keep], cal_y[keep]
    assert ((np.bincount(ky) + 1) % 10 != 0).all()
    ref = crepes.ConformalClassifier().fit(1 - kp[np.arange(len(ky)), ky], bins=ky)
    ref_sets = np.column_stack(
        [
            ref.predict_set(
                1 - test_p[:, [k]], bins=np.full(len(test_p), k), confidence=0.9, smoothing=False
            )[:, 0]
            for k in range(test_p.shape[1])
        ]
    ).astype(bool)
    assert cp.n_calibration_ == len(np.unique(groups)) < len(cal_y)
    np.testing.assert_array_equal(cp.predict_sets(test_p), ref_sets)


def test_stored_conformal_records_which_calibration_ran():
    stored = stored_conformal(_val_predictions(), 1.0, "lac", 0.8, calibration="one-image")
    assert "one image per validation lesion" in stored.grouping
    assert "asymptotically" in stored_conformal(_val_predictions(), 1.0, "lac", 0.8).grouping
