"""External validation, test-time augmentation and ensembles work from any run."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_app import build_tiny_run

from skinlib.cli import main
from skinlib.data.synthetic import generate
from skinlib.errors import DataError
from skinlib.evaluation import ensemble, predict_table, split_rows
from skinlib.predictions import Predictions
from skinlib.runs import load_model


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return build_tiny_run(tmp_path_factory.mktemp("evalrun"))


def test_tta_identity_equals_plain_prediction(run):
    loaded = load_model(run)
    rows = split_rows(run, "test")
    plain = predict_table(loaded, rows, progress=False)
    same = predict_table(loaded, rows, tta=["identity"], progress=False)
    np.testing.assert_allclose(plain.probabilities(), same.probabilities(), atol=1e-5)
    saved = Predictions.load(run / "predictions_test.csv")
    np.testing.assert_allclose(plain.logits, saved.logits, atol=1e-4)
    tta = predict_table(loaded, rows, tta=True, progress=False)
    np.testing.assert_allclose(tta.probabilities().sum(1), 1.0, atol=1e-6)
    assert not np.allclose(tta.probabilities(), plain.probabilities())


def test_ensemble_averages_probabilities():
    rng = np.random.default_rng(0)
    ids, groups, labels = np.arange(5).astype(str), np.arange(5).astype(str), rng.integers(0, 3, 5)
    a = Predictions(ids, groups, labels, rng.normal(size=(5, 3)), list("abc"))
    b = Predictions(ids, groups, labels, rng.normal(size=(5, 3)), list("abc"))
    mixed = ensemble([a, b], weights=[3, 1])
    expected = (3 * a.probabilities() + b.probabilities()) / 4
    np.testing.assert_allclose(mixed.probabilities(), expected, atol=1e-6)
    with pytest.raises(DataError, match="different images"):
        ensemble([a, Predictions(ids[::-1], groups, labels, a.logits, list("abc"))])


def test_external_validation_maps_classes(run, tmp_path):
    other = generate(
        tmp_path / "isic",
        n=40,
        size=64,
        seed=9,
        classes="isic2019",
        layout="isic2019",
        balanced=True,
        progress=False,
    )
    from skinlib.evaluation import evaluate_external

    with pytest.raises(DataError, match=r"scc \(\d+ images\)"):
        evaluate_external(run, other, "isic2019", tmp_path / "bad")
    assert (
        main(
            [
                "evaluate",
                "--run",
                str(run),
                "--data",
                str(other),
                "--format",
                "isic2019",
                "--out",
                str(tmp_path / "bad"),
            ]
        )
        == 2
    )  # the CLI prints it as one line
    code = main(
        [
            "evaluate",
            "--run",
            str(run),
            "--data",
            str(other),
            "--format",
            "isic2019",
            "--out",
            str(tmp_path / "out"),
            "--drop-unmapped",
            "--n-boot",
            "50",
            "--tta",
        ]
    )
    assert code == 0
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["tta"] and 0 <= report["balanced_accuracy"] <= 1
    assert "operating_point" in report and report["temperature"] > 0
    preds = Predictions.load(tmp_path / "out" / "predictions.csv")
    assert len(preds.labels) == report["images"] < 40  # scc rows dropped
