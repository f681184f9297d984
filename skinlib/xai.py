"""Explanations: class activation maps through pytorch-grad-cam, and scores for them.

A heat map is evidence only if it can be checked. Where ground-truth lesion masks exist
(SynthDerm), maps are scored by the pointing game (is the hottest pixel on the lesion?) and by the
share of map energy inside the lesion; elsewhere by ROAD faithfulness (how much the prediction
drops when the most relevant pixels are removed).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from PIL import Image
from pytorch_grad_cam import EigenCAM, GradCAM, GradCAMPlusPlus, ScoreCAM
from pytorch_grad_cam.utils.image import show_cam_on_image
from pytorch_grad_cam.utils.model_targets import (
    BinaryClassifierOutputTarget,
    ClassifierOutputTarget,
)
from torch import nn

from skinlib.models import CamSpec, cam_spec

METHODS = {
    "gradcam": GradCAM,
    "gradcam++": GradCAMPlusPlus,
    "scorecam": ScoreCAM,
    "eigencam": EigenCAM,
}


def _targets(model: nn.Module, images: torch.Tensor, targets: Sequence[int] | None) -> list:
    """Explain the given classes, or each image's predicted class."""
    with torch.no_grad():
        logits = model(images)
    binary = logits.shape[1] == 1
    if targets is None:
        targets = (logits[:, 0] > 0).long().tolist() if binary else logits.argmax(1).tolist()
    make = BinaryClassifierOutputTarget if binary else ClassifierOutputTarget
    return [make(int(t)) for t in targets]


def compute_cams(
    model: nn.Module,
    images: torch.Tensor,
    targets: Sequence[int] | None = None,
    method: str = "gradcam",
    spec: CamSpec | None = None,
    batch_size: int = 16,
) -> np.ndarray:
    """Maps (N, H, W) in [0, 1] for a batch of preprocessed images (N, 3, H, W).

    Args:
        targets: class index per image (binary models: 1 = positive); default the prediction.
        method: gradcam | gradcam++ | scorecam | eigencam.
    """
    if method not in METHODS:
        raise ValueError(f"unknown CAM method {method!r}; choose one of {list(METHODS)}")
    spec = spec or cam_spec(model)
    model.eval()
    out = []
    with METHODS[method](
        model=model, target_layers=spec.target_layers, reshape_transform=spec.reshape_transform
    ) as cam:
        if method == "scorecam":
            cam.batch_size = batch_size
        for start in range(0, len(images), batch_size):
            chunk = images[start : start + batch_size]
            chunk_targets = None if targets is None else list(targets)[start : start + batch_size]
            out.append(cam(input_tensor=chunk, targets=_targets(model, chunk, chunk_targets)))
    return np.concatenate(out).astype(np.float32)


def overlay(image_rgb: np.ndarray, cam: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """The map over the image (uint8 RGB); ``image_rgb`` float in [0, 1] or uint8, any size."""
    image = np.asarray(image_rgb)
    if image.dtype == np.uint8:
        image = image.astype(np.float32) / 255.0
    if cam.shape != image.shape[:2]:
        cam = (
            np.asarray(
                Image.fromarray((cam * 255).astype(np.uint8)).resize(
                    (image.shape[1], image.shape[0]), Image.BILINEAR
                ),
                dtype=np.float32,
            )
            / 255.0
        )
    return show_cam_on_image(image, cam, use_rgb=True, image_weight=1 - alpha)


def _resize_mask(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    img = Image.fromarray((np.asarray(mask) > 0).astype(np.uint8) * 255)
    return np.asarray(img.resize((shape[1], shape[0]), Image.NEAREST)) > 0


def mask_scores(cams: np.ndarray, masks: Sequence[np.ndarray]) -> pd.DataFrame:
    """Pointing game hit and share of map energy inside the lesion mask, per image."""
    rows = []
    for cam, mask in zip(cams, masks, strict=True):
        m = _resize_mask(mask, cam.shape)
        peak = np.unravel_index(np.argmax(cam), cam.shape)
        total = float(cam.sum())
        rows.append(
            {
                "pointing": float(m[peak]),
                "energy_inside": float(cam[m].sum() / total) if total > 0 else np.nan,
                "mask_share": float(m.mean()),
            }
        )
    return pd.DataFrame(rows)


def faithfulness_scores(
    model: nn.Module, images: torch.Tensor, cams: np.ndarray, targets: Sequence[int] | None = None
) -> np.ndarray:
    """ROAD combined score per image (higher = the map points at what the model uses)."""
    from pytorch_grad_cam.metrics.road import ROADCombined

    return np.asarray(
        ROADCombined(percentiles=[20, 40, 60, 80])(
            images, cams, _targets(model, images, targets), model
        )
    ).reshape(-1)


def gallery_indices(
    labels: np.ndarray, proba: np.ndarray, cls: int, k: int = 3
) -> dict[str, list[int]]:
    """Indices of the most confident true positives, false negatives and false positives of a class."""
    pred = proba.argmax(1)
    p = proba[:, cls]
    kinds = {
        "true positive": (labels == cls) & (pred == cls),
        "false negative": (labels == cls) & (pred != cls),
        "false positive": (labels != cls) & (pred == cls),
    }
    out = {}
    for name, m in kinds.items():
        idx = np.flatnonzero(m)
        order = np.argsort(p[idx] if name == "false negative" else -p[idx])
        out[name] = idx[order][:k].tolist()
    return out
