"""Predictions beyond a run's own: test-time augmentation, ensembles and external validation.

Each function returns a :class:`~skinlib.predictions.Predictions`, so every later step (metrics,
calibration, thresholds, the app) consumes TTA, ensemble and external results like any run's.
Averaged probabilities are stored as their logarithm (softmax(log p) = p), or as logit(p) for a
binary task, which keeps the predictions file format unchanged.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from skinlib.errors import DataError
from skinlib.predictions import Predictions

log = logging.getLogger(__name__)

# Dermoscopy has no canonical orientation, so flips and right-angle rotations keep the label.
TTA_VIEWS = ("identity", "hflip", "vflip", "rot90", "rot180", "rot270")


def _view(x: torch.Tensor, name: str) -> torch.Tensor:
    if name == "identity":
        return x
    if name == "hflip":
        return x.flip(-1)
    if name == "vflip":
        return x.flip(-2)
    if name.startswith("rot"):
        return torch.rot90(x, int(name[3:]) // 90, dims=(-2, -1))
    raise ValueError(f"unknown TTA view {name!r}; choose from {TTA_VIEWS}")


def probabilities_to_logits(proba: np.ndarray, binary: bool) -> np.ndarray:
    """The logits whose softmax (sigmoid for binary) gives back ``proba``."""
    eps = 1e-7
    p = np.clip(proba, eps, 1 - eps)
    if binary:
        pos = p[:, 1] if p.ndim == 2 and p.shape[1] == 2 else p.reshape(-1)
        return np.log(pos / (1 - pos))[:, None]
    return np.log(p)


def _labels_for(table: pd.DataFrame, classes: Sequence[str]) -> np.ndarray:
    index = {c: i for i, c in enumerate(classes)}
    unknown = sorted(set(table["label"]) - set(index))
    if unknown:
        raise DataError(
            f"labels {unknown} are not among the model's classes {list(classes)}; map them "
            "first (skinlib.data.classes.map_labels) or evaluate on a matching dataset"
        )
    return table["label"].map(index).to_numpy()


@torch.no_grad()
def predict_table(
    loaded,
    table: pd.DataFrame,
    tta: bool | Sequence[str] = False,
    batch_size: int = 64,
    num_workers: int = 0,
    progress: bool = True,
) -> Predictions:
    """Predict every row of ``table`` with a loaded run (``skinlib.runs.load_model``).

    Args:
        loaded: the run (model in eval mode, its classes and evaluation transform).
        table: common-schema table; its labels must be among the run's classes.
        tta: True for all of :data:`TTA_VIEWS`, or a list of view names; probabilities are
            averaged over the views.
    """
    from torch.utils.data import DataLoader
    from tqdm.auto import tqdm

    from skinlib.data.dataset import ImageDataset

    views = list(TTA_VIEWS if tta is True else (tta or ["identity"]))
    classes = list(loaded.classes)
    binary = _is_binary(loaded)
    labels = _labels_for(table, classes)
    dataset = ImageDataset(table.reset_index(drop=True), classes, loaded.transform)
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=num_workers)
    device = next(loaded.model.parameters()).device
    chunks = []
    for images, _ in tqdm(loader, desc="predict", disable=not progress, leave=False):
        images = images.to(device)
        proba = sum(_proba(loaded.model(_view(images, v)), binary) for v in views) / len(views)
        chunks.append(proba.float().cpu().numpy())
    proba = np.concatenate(chunks) if chunks else np.zeros((0, len(classes)))
    logits = probabilities_to_logits(proba, binary) if len(views) > 1 else _logits(proba, binary)
    return Predictions(
        image_id=table["image_id"].to_numpy(),
        group=table["group"].to_numpy(),
        labels=labels,
        logits=logits,
        classes=classes,
    )


def _is_binary(loaded) -> bool:
    return getattr(loaded.config.data, "task", "multiclass") == "binary"


def _proba(logits: torch.Tensor, binary: bool) -> torch.Tensor:
    if binary:
        p = torch.sigmoid(logits.float().reshape(-1))
        return torch.stack([1 - p, p], dim=1)
    return torch.softmax(logits.float(), dim=1)


def _logits(proba: np.ndarray, binary: bool) -> np.ndarray:
    return probabilities_to_logits(proba, binary)


def ensemble(
    predictions: Sequence[Predictions], weights: Sequence[float] | None = None
) -> Predictions:
    """Average the probabilities of several runs on the same images (optionally weighted)."""
    if not predictions:
        raise ValueError("ensemble needs at least one predictions set")
    first = predictions[0]
    for other in predictions[1:]:
        if list(other.classes) != list(first.classes):
            raise DataError(
                f"ensemble members disagree on classes: {first.classes} vs {other.classes}"
            )
        if not np.array_equal(other.image_id, first.image_id):
            raise DataError(
                "ensemble members were predicted on different images (or another order)"
            )
    w = np.ones(len(predictions)) if weights is None else np.asarray(weights, dtype=float)
    if len(w) != len(predictions) or np.any(w < 0) or w.sum() <= 0:
        raise ValueError("weights must be non-negative, one per member, not all zero")
    proba = sum(wi * p.probabilities() for wi, p in zip(w, predictions, strict=True)) / w.sum()
    return Predictions(
        image_id=first.image_id,
        group=first.group,
        labels=first.labels,
        logits=probabilities_to_logits(proba, first.binary),
        classes=list(first.classes),
    )


def split_rows(run_dir: str | Path, split: str) -> pd.DataFrame:
    """The rows of one split of a run, from the split file saved in the run folder."""
    path = Path(run_dir) / "split.csv"
    if not path.is_file():
        raise DataError(f"{path} not found: is {run_dir} a finished skinlib run?")
    table = pd.read_csv(path, dtype={"image_id": str, "group": str})
    rows = table[table["split"] == split]
    if rows.empty:
        raise DataError(f"{path} has no rows with split == {split!r}")
    return rows.reset_index(drop=True)
