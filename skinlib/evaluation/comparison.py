"""The model comparison (02, 07): one headline row per model and the tables the thesis shows."""

from __future__ import annotations

import numpy as np
import pandas as pd

from skinlib.evaluation.bootstrap import bootstrap_ci
from skinlib.evaluation.calibration import ece
from skinlib.evaluation.predictions import Predictions
from skinlib.formatting import format_ci, format_p

HEADLINE_METRICS = ("balanced_accuracy", "accuracy", "macro_f1", "macro_auc")
# headline metric -> column of the comparison table
METRIC_NAMES = {
    "balanced_accuracy": "bal. acc.",
    "accuracy": "accuracy",
    "macro_f1": "macro F1",
    "macro_auc": "AUC (raw)",
}
# the comparison table's body columns (the others go to ``comparison_details``)
COMPARISON_COLUMNS = ("model", "bal. acc.", "accuracy", "AUC (raw)", "ECE (calibrated)")


def metrics_with_ci(preds: Predictions, n_boot: int = 1000) -> pd.DataFrame:
    """Headline metrics with grouped-bootstrap intervals, from the uncalibrated probabilities.

    Temperature scaling keeps each image's argmax (accuracy, balanced accuracy and F1) but can
    move a multi-class AUC a little; the study reports AUC from the raw softmax everywhere (03,
    07) so that one model has one AUC before and after 04.
    """
    return bootstrap_ci(preds.labels, preds.probabilities(), preds.group, n_boot=n_boot)


def headline_row(
    model: str,
    preds: Predictions,
    temperature: float | None,
    n_boot: int = 1000,
    meta: dict | None = None,
) -> dict:
    """One row of the comparison table: metrics with intervals, ECE, size and speed.

    Args:
        model: the row's name (``resnet18``, ``resnet18 + TTA``, ``ensemble``).
        preds: the model's test predictions.
        temperature: the one fitted on validation, or None where the run is not calibrated
            (``ece_calibrated`` and ``temperature`` are then NaN: the table says so).
        meta: the run's ``meta.json`` (parameters, training time, images per second), if any.
    """
    ci = metrics_with_ci(preds, n_boot).set_index("metric")
    row: dict = {"model": model}
    for m in HEADLINE_METRICS:
        row[m] = ci.loc[m, "value"]
        row[f"{m}_low"], row[f"{m}_high"] = ci.loc[m, "low"], ci.loc[m, "high"]
    row["ece_raw"] = ece(preds.labels, preds.probabilities())
    calibrated = temperature is not None
    row["ece_calibrated"] = (
        ece(preds.labels, preds.probabilities(temperature)) if calibrated else np.nan
    )
    row["temperature"] = temperature if calibrated else np.nan
    if meta is not None:
        row.update(
            params_m=meta["n_params"] / 1e6,
            train_min=meta["train_seconds"] / 60,
            train_img_s=meta["train_images_per_s"],
            eval_img_s=meta["eval_images_per_s"],
        )
    return row


def comparison_table(rows: list[dict]) -> pd.DataFrame:
    """The comparison as the thesis shows it (values with intervals) from :func:`headline_row`
    rows."""
    df = pd.DataFrame(rows)
    out = pd.DataFrame({"model": df["model"]})
    for m, name in METRIC_NAMES.items():
        out[name] = [  # two decimals: intervals about 0.1 wide do not support a third
            format_ci(v, lo, hi, 2)
            for v, lo, hi in zip(df[m], df[f"{m}_low"], df[f"{m}_high"], strict=True)
        ]
    out["ECE (raw)"] = df["ece_raw"].round(3)
    out["ECE (calibrated)"] = [
        "not calibrated" if pd.isna(v) else f"{v:.3f}" for v in df["ece_calibrated"]
    ]
    for col, name, digits in (("params_m", "params (M)", 1), ("train_min", "train (min)", 1)):
        if col in df:
            out[name] = df[col].round(digits)
    if "train_img_s" in df:  # one column for both speeds: the table fits the page
        out["img/s train / eval"] = [
            "--" if pd.isna(t) else f"{t:.0f} / {e:.0f}"
            for t, e in zip(df["train_img_s"], df["eval_img_s"], strict=True)
        ]
    return out


def comparison_tables(rows: list[dict]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The comparison split in two tables that each fit a thesis page: the headline metrics
    (``comparison``) and the rest (``comparison_details``: F1, raw ECE, size, time, speed)."""
    full = comparison_table(rows)
    main = full[[c for c in COMPARISON_COLUMNS if c in full]]
    return main, full.drop(columns=[c for c in main.columns if c != "model"])


def forest_table(rows: list[dict], metric: str = "balanced_accuracy") -> pd.DataFrame:
    """One metric of :func:`headline_row` rows with its interval, as
    :func:`skinlib.thesis.plots.forest` draws it (``name, value, low, high``)."""
    return pd.DataFrame(
        {
            "name": [r["model"] for r in rows],
            "value": [r[metric] for r in rows],
            "low": [r[f"{metric}_low"] for r in rows],
            "high": [r[f"{metric}_high"] for r in rows],
        }
    )


def paired_tests_for_reading(reference: str, table: pd.DataFrame) -> pd.DataFrame:
    """:func:`skinlib.evaluation.paired.paired_tests` as the thesis shows it: one row per comparison, the
    difference with its interval, p-values as ``<0.001`` rather than ``0.000``."""
    return pd.DataFrame(
        {
            "comparison": [f"{reference} - {m}" for m in table["model"]],
            "difference": [
                format_ci(d, lo, hi)
                for d, lo, hi in zip(table["difference"], table["low"], table["high"], strict=True)
            ],
            "p (bootstrap)": table["p_bootstrap"].map(format_p),
            "p (Holm)": table["p_holm"].map(format_p),
            "p (McNemar, images)": table["p_mcnemar_images"].map(format_p),
        }
    )
