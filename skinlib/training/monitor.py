"""What each epoch is judged by: validation loss, balanced accuracy, macro-F1 and AUC (sklearn).

The full evaluation with confidence intervals lives in :mod:`skinlib.evaluation.metrics`; these few numbers
only pick the best epoch and stop early.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import balanced_accuracy_score, f1_score, roc_auc_score

from skinlib.evaluation.predictions import Predictions

MONITORS = {"balanced_accuracy": 1, "macro_f1": 1, "auc": 1, "loss": -1}  # sign: higher is better


def nll(preds: Predictions) -> float:
    """Mean cross-entropy of the true class, from the logits (one logit: binary cross-entropy)."""
    logits = torch.as_tensor(preds.logits, dtype=torch.float64)
    labels = torch.as_tensor(preds.labels)
    if preds.binary:
        return float(F.binary_cross_entropy_with_logits(logits[:, 0], labels.double()))
    return float(F.cross_entropy(logits, labels))


def auc(labels: np.ndarray, proba: np.ndarray) -> float:
    """ROC AUC (one-vs-rest macro over the classes present); NaN with fewer than two classes."""
    present = np.unique(labels)
    if len(present) < 2:
        return math.nan
    if proba.shape[1] == 2:
        return float(roc_auc_score(labels, proba[:, 1]))
    if len(present) == 2:  # one-vs-rest needs three or more classes; compare the two present
        return float(roc_auc_score(labels == present[1], proba[:, present[1]]))
    scores = proba[:, present] / proba[:, present].sum(1, keepdims=True)
    return float(roc_auc_score(labels, scores, multi_class="ovr", labels=present))


def epoch_metrics(preds: Predictions) -> dict:
    """The monitored numbers of one validation pass."""
    proba = preds.probabilities()
    pred = proba.argmax(1)
    return {
        "loss": nll(preds),
        "balanced_accuracy": float(balanced_accuracy_score(preds.labels, pred)),
        "macro_f1": float(f1_score(preds.labels, pred, average="macro", zero_division=0)),
        "auc": auc(preds.labels, proba),
    }


def window_mean(history: list[dict], monitor: str, window: int) -> float:
    """The monitored validation number averaged over the last ``window`` epochs of ``history``
    (fewer at the start; NaN epochs, an AUC of one class, left out)."""
    values = np.array([row[f"val_{monitor}"] for row in history[-max(window, 1) :]], float)
    values = values[np.isfinite(values)]
    return float(values.mean()) if len(values) else math.nan
