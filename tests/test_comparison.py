"""The comparison's rows and tables on tiny hand-made predictions with known answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from skinlib.evaluation.comparison import (
    comparison_table,
    comparison_tables,
    forest_table,
    headline_row,
    paired_tests_for_reading,
)
from skinlib.evaluation.predictions import Predictions

# four images, three classes, every confidence 6/8 = 3/4: three right (one per class), image 3
# (an nv) called bcc. Accuracy 3/4; recalls 1, 1, 1/2: balanced accuracy 5/6; ECE 0 (one bin at
# confidence 3/4 with accuracy 3/4). At T = log 6 / log 2 every confidence is 1/2: ECE 1/4.
LOG6 = np.log(6)
LOGITS = np.array([[LOG6, 0, 0], [0, LOG6, 0], [0, 0, LOG6], [LOG6, 0, 0]])
PREDS = Predictions(list("abcd"), list("abcd"), [0, 1, 2, 2], LOGITS, ["bcc", "mel", "nv"])
META = {
    "n_params": 11_200_000,
    "train_seconds": 90,
    "train_images_per_s": 120.4,
    "eval_images_per_s": 480.0,
}


def test_headline_row_known_answers():
    row = headline_row("resnet18", PREDS, LOG6 / np.log(2), n_boot=20, meta=META)
    assert row["model"] == "resnet18"
    assert row["accuracy"] == pytest.approx(0.75)
    assert row["balanced_accuracy"] == pytest.approx(5 / 6)
    assert row["accuracy_low"] <= 0.75 <= row["accuracy_high"]
    assert row["ece_raw"] == pytest.approx(0.0, abs=1e-12)
    assert row["ece_calibrated"] == pytest.approx(0.25)
    assert row["temperature"] == pytest.approx(LOG6 / np.log(2))
    assert (row["params_m"], row["train_min"]) == pytest.approx((11.2, 1.5))


def test_an_uncalibrated_model_says_so_and_has_no_speed_without_meta():
    row = headline_row("vit_tiny", PREDS, None, n_boot=20)
    assert np.isnan(row["ece_calibrated"]) and np.isnan(row["temperature"])
    assert "params_m" not in row
    table = comparison_table([row])
    assert table["ECE (calibrated)"].item() == "not calibrated"
    assert "img/s train / eval" not in table


def test_comparison_tables_as_the_thesis_shows_them():
    row = {"model": "a", "ece_raw": 0.12345, "ece_calibrated": 0.0456, **META}
    for m, (v, lo, hi) in {
        "balanced_accuracy": (0.8333, 0.7, 0.9),
        "accuracy": (0.75, 0.6, 0.85),
        "macro_f1": (0.7, 0.55, 0.8),
        "macro_auc": (0.9, 0.85, 0.95),
    }.items():
        row |= {m: v, f"{m}_low": lo, f"{m}_high": hi}
    row |= {"params_m": 11.24, "train_min": 1.5, "train_img_s": 120.4, "eval_img_s": 480.0}
    main, details = comparison_tables([row])
    assert main.iloc[0].tolist() == [
        "a",
        "0.83 [0.70, 0.90]",
        "0.75 [0.60, 0.85]",
        "0.90 [0.85, 0.95]",
        "0.046",
    ]
    assert list(details.columns) == [
        "model",
        "macro F1",
        "ECE (raw)",
        "params (M)",
        "train (min)",
        "img/s train / eval",
    ]
    assert details.iloc[0].tolist() == ["a", "0.70 [0.55, 0.80]", 0.123, 11.2, 1.5, "120 / 480"]


def test_paired_tests_as_the_thesis_shows_them():
    table = pd.DataFrame(
        {
            "model": ["b"],
            "difference": [0.05],
            "low": [-0.01],
            "high": [0.11],
            "p_bootstrap": [0.0004],
            "p_holm": [0.0008],
            "p_mcnemar_images": [0.2],
        }
    )
    out = paired_tests_for_reading("a", table)
    assert out.iloc[0].tolist() == ["a - b", "0.050 [-0.010, 0.110]", "<0.001", "<0.001", "0.200"]


def test_forest_table_takes_one_metric_with_its_interval():
    rows = [
        {"model": "a", "accuracy": 0.8, "accuracy_low": 0.7, "accuracy_high": 0.9},
        {"model": "b", "accuracy": 0.6, "accuracy_low": 0.5, "accuracy_high": 0.75},
    ]
    table = forest_table(rows, "accuracy")
    assert table.values.tolist() == [["a", 0.8, 0.7, 0.9], ["b", 0.6, 0.5, 0.75]]
    assert list(table.columns) == ["name", "value", "low", "high"]
