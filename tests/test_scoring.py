"""Test-time augmentation and predictions of a table with a trained run (inference/scoring.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from fixtures.runs import copy_run

from skinlib.evaluation.calibration import logits_to_proba
from skinlib.evaluation.predictions import Predictions
from skinlib.inference.scoring import predict_table, tta_logits
from skinlib.models.checkpoint import load_model
from skinlib.runs.folder import RunFolder


@pytest.fixture(scope="module")
def run(trained_run, tmp_path_factory):
    return copy_run(trained_run, tmp_path_factory.mktemp("evalrun"))


def test_tta_identity_equals_plain_prediction(run):
    loaded = load_model(run)
    rows = RunFolder(run).split_rows("test")
    plain = predict_table(loaded, rows, progress=False)
    same = predict_table(loaded, rows, tta=["identity"], progress=False)
    np.testing.assert_allclose(plain.probabilities(), same.probabilities(), atol=1e-5)
    saved = Predictions.load(run / "predictions_test.csv")
    np.testing.assert_allclose(plain.logits, saved.logits, atol=1e-4)
    tta = predict_table(loaded, rows, tta=True, progress=False)
    np.testing.assert_allclose(tta.probabilities().sum(1), 1.0, atol=1e-6)
    assert not np.allclose(tta.probabilities(), plain.probabilities())


class TopLeft(torch.nn.Module):
    """Logits ``[x[0, 0], 0]``: the top-left pixel of channel 0 decides, so each view's answer
    is known (identity a, hflip b, vflip c, rot90 b, rot180 d, rot270 c for [[a, b], [c, d]])."""

    def forward(self, x):
        return torch.stack([x[:, 0, 0, 0], torch.zeros(len(x))], dim=1)


def test_tta_averages_the_probabilities_of_known_views():
    image = torch.zeros(1, 3, 2, 2)
    image[0, 0, 0, 0] = np.log(3)  # identity: softmax [3/4, 1/4]; the five others see 0: [1/2, 1/2]
    np.testing.assert_allclose(tta_logits(TopLeft(), image, ["identity"]), [[np.log(3), 0]])
    two = tta_logits(TopLeft(), image, ["identity", "hflip"])
    np.testing.assert_allclose(logits_to_proba(two), [[0.625, 0.375]], rtol=1e-6)
    every = tta_logits(TopLeft(), image)
    p = (0.75 + 5 * 0.5) / 6
    np.testing.assert_allclose(logits_to_proba(every), [[p, 1 - p]], rtol=1e-6)
