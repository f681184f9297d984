"""Scoring images with a trained model: test-time augmentation and predictions of a table.

Each function returns a :class:`~skinlib.evaluation.predictions.Predictions` (or its logits), so
every later step (metrics, calibration, thresholds, the app) consumes TTA results like any run's.
Averaged probabilities are stored as logits (:func:`~skinlib.evaluation.predictions.probabilities_to_logits`),
which keeps the predictions file format unchanged.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

from skinlib.data.dataset import ImageDataset, batch_parts
from skinlib.errors import DataError
from skinlib.evaluation.predictions import Predictions, probabilities_to_logits
from skinlib.models.metadata import logits as model_logits
from skinlib.progress import tqdm

log = logging.getLogger(__name__)

# Dermoscopy has no canonical orientation, so flips and right-angle rotations keep the label.
TTA_VIEWS = ("identity", "hflip", "vflip", "rot90", "rot180", "rot270")


def tta_views(tta: bool | Sequence[str]) -> list[str]:
    """The views to average: all of :data:`TTA_VIEWS` for True, none but the image for False."""
    return list(TTA_VIEWS if tta is True else (tta or ["identity"]))


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
    """Predict every row of ``table`` with a loaded run (:func:`skinlib.models.checkpoint.load_model`).

    Args:
        loaded: the run (model in eval mode, its classes and evaluation transform).
        table: common-schema table; its labels must be among the run's classes. A metadata
            model reads its ``age``, ``sex`` and ``site`` (a column it lacks: missing).
        tta: True for all of :data:`TTA_VIEWS`, or a list of view names; probabilities are
            averaged over the views.
    """
    views = tta_views(tta)
    classes = list(loaded.classes)
    binary = _is_binary(loaded)
    labels = _labels_for(table, classes)
    rows = table.reset_index(drop=True)
    metadata = None if loaded.metadata is None else loaded.metadata.transform(rows)
    dataset = ImageDataset(rows, classes, loaded.transform, metadata=metadata)
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=num_workers)
    device = next(loaded.model.parameters()).device
    chunks = []
    for batch in tqdm(loader, desc="predict", disable=not progress, leave=False):
        images, _, meta = batch_parts(batch)
        chunks.append(tta_logits(loaded.model, images.to(device), views, binary, meta))
    width = 1 if binary else len(classes)
    logits = np.concatenate(chunks) if chunks else np.zeros((0, width))
    return Predictions(
        image_id=table["image_id"].to_numpy(),
        group=table["group"].to_numpy(),
        labels=labels,
        logits=logits,
        classes=classes,
    )


@torch.no_grad()
def tta_logits(
    model: torch.nn.Module,
    images: torch.Tensor,
    views: Sequence[str] = TTA_VIEWS,
    binary: bool = False,
    metadata: torch.Tensor | None = None,
) -> np.ndarray:
    """Test-time augmentation of one batch: the model's probabilities averaged over ``views``,
    returned as logits (:func:`probabilities_to_logits`), so they fit a predictions file.

    Args:
        images: (N, 3, H, W) preprocessed, on the model's device.
        views: names from :data:`TTA_VIEWS`; a single view returns the raw logits unchanged.
        metadata: (N, D) a metadata model's inputs: the same for every view of an image.

    Returns:
        (N, C) logits; (N, 1) for a binary model.
    """
    views = list(views)
    if len(views) == 1:  # keep the raw logits (what training wrote)
        return model_logits(model, _view(images, views[0]), metadata).float().cpu().numpy()
    outputs = (model_logits(model, _view(images, v), metadata) for v in views)
    proba = sum(_proba(out, binary) for out in outputs) / len(views)
    return probabilities_to_logits(proba.float().cpu().numpy(), binary)


def _is_binary(loaded) -> bool:
    return getattr(loaded.config.data, "task", "multiclass") == "binary"


def _proba(logits: torch.Tensor, binary: bool) -> torch.Tensor:
    """Probabilities of a batch on its device (float32): TTA averages views there before one copy
    to the CPU; files and later steps use :func:`skinlib.evaluation.calibration.logits_to_proba`."""
    if binary:
        p = torch.sigmoid(logits.float().reshape(-1))
        return torch.stack([1 - p, p], dim=1)
    return torch.softmax(logits.float(), dim=1)
