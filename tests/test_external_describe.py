"""What an external set can and cannot say: present classes, melanoma vs rest, the caveat (external/describe.py)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score, roc_auc_score

from skinlib.data.classes import HAM10000_CLASSES
from skinlib.evaluation.thresholds import sens_spec
from skinlib.external.describe import (
    caveat,
    class_counts,
    positive_vs_rest,
    present_class_metrics,
)

CLASSES = list(HAM10000_CLASSES)  # akiec bcc bkl df mel nv vasc
MEL, NV = CLASSES.index("mel"), CLASSES.index("nv")


def _ph2_like(n=40, seed=0):
    """Labels nv/mel only; probabilities over 7 classes, melanoma scored higher on melanomas."""
    rng = np.random.default_rng(seed)
    labels = np.where(rng.random(n) < 0.3, MEL, NV)
    logits = rng.normal(size=(n, 7))
    logits[:, MEL] += 2.0 * (labels == MEL)
    proba = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return labels, proba


# --- skinlib evaluate on the native layouts ------------------------------------------------


def test_present_class_metrics_on_a_two_class_set():
    labels, proba = _ph2_like()
    assert class_counts(labels, CLASSES) == {
        **dict.fromkeys(CLASSES, 0),
        "mel": int((labels == MEL).sum()),
        "nv": int((labels == NV).sum()),
    }
    out = present_class_metrics(labels, proba, CLASSES)
    assert out["present_classes"] == ["mel", "nv"]
    assert out["missing_classes"] == ["akiec", "bcc", "bkl", "df", "vasc"]
    pred = proba.argmax(1)
    expected = f1_score(labels, pred, labels=[MEL, NV], average="macro", zero_division=0)
    assert out["macro_f1_present"] == pytest.approx(expected)
    assert out["macro_f1_present"] > f1_score(labels, pred, average="macro", zero_division=0)
    assert out["predicted_absent"] == pytest.approx(np.mean(~np.isin(pred, [MEL, NV])))


def test_positive_vs_rest_matches_sklearn_and_the_threshold():
    labels, proba = _ph2_like(60, seed=1)
    out = positive_vs_rest(labels, proba, CLASSES, None, ["mel"], threshold=0.2, n_boot=200)
    truth = labels == MEL
    assert out["auc"] == pytest.approx(roc_auc_score(truth, proba[:, MEL]))
    assert out["auc_low"] < out["auc"] < out["auc_high"]
    sens, spec = sens_spec(truth, proba[:, MEL], 0.2)
    assert (out["sensitivity"], out["specificity"]) == pytest.approx((sens, spec))
    assert out["sensitivity_low"] <= sens <= out["sensitivity_high"]
    assert out["positives"] == truth.sum() and out["images"] == 60
    only_nevi = positive_vs_rest(np.full(5, NV), proba[:5], CLASSES, None, ["mel"], n_boot=10)
    assert np.isnan(only_nevi["auc"]) and only_nevi["positives"] == 0


def test_caveat_says_what_is_comparable():
    two = caveat("ph2", {c: (5 if c in ("mel", "nv") else 0) for c in CLASSES}, ["mel"], False)
    assert two.startswith("PH2 has only mel, nv (2 of the model's 7 classes)")
    assert "not comparable with the internal test" in two and "mel-vs-rest AUC" in two
    assert "resample images" in two and "atypical nevi" in two
    no_threshold = caveat("ph2", {"mel": 2, "nv": 3, "bkl": 0}, ["mel"], True, threshold=False)
    assert "the mel-vs-rest AUC is." in no_threshold and "stored threshold" not in no_threshold
    no_mel = caveat("folder", {"mel": 0, "nv": 3, "bkl": 4}, ["mel"], True)
    assert "it has no mel images, so only the specificity at the stored threshold is" in no_mel
    full = caveat("isic2018", dict.fromkeys(CLASSES, 3), ["mel"], True)
    assert full.startswith("ISIC 2018 Task 3 has all 7 of the model's classes")
    assert "resample images" not in full and "official test set" in full
