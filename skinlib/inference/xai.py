"""Explanations: class activation maps through pytorch-grad-cam, and scores for them.

A heat map is evidence only if it can be checked. Where ground-truth lesion masks exist
(SynthDerm), maps are scored by the pointing game (is the hottest pixel on the lesion?) and by the
share of map energy inside the lesion; elsewhere by ROAD faithfulness (how much the prediction
changes when the most / least relevant pixels are removed). The target layer and the token
reshape of each architecture come from :func:`skinlib.models.architectures.cam_spec`, so nothing here names one.
A metadata model is explained with each image's own metadata bound
(:class:`skinlib.models.metadata.BoundMetadata`): pytorch-grad-cam calls ``model(images)``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import torch
from PIL import Image
from pytorch_grad_cam import EigenCAM, GradCAM, GradCAMPlusPlus, ScoreCAM
from pytorch_grad_cam.metrics.cam_mult_image import CamMultImageConfidenceChange
from pytorch_grad_cam.metrics.road import ROADCombined
from pytorch_grad_cam.utils.image import show_cam_on_image
from pytorch_grad_cam.utils.model_targets import (
    BinaryClassifierOutputTarget,
    ClassifierOutputTarget,
)
from torch import nn
from torchvision.transforms import InterpolationMode

from skinlib.data.images import load_image
from skinlib.data.transforms import centre_square
from skinlib.evaluation.predictions import Predictions
from skinlib.models.architectures import CamSpec, cam_spec
from skinlib.models.metadata import BoundMetadata, bind

METHODS = {
    "gradcam": GradCAM,
    "gradcam++": GradCAMPlusPlus,
    "scorecam": ScoreCAM,
    "eigencam": EigenCAM,
}
GALLERY_KINDS = ("true positive", "false negative", "false positive")


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def _targets(model: nn.Module, images: torch.Tensor, targets: Sequence[int] | None) -> list:
    """pytorch-grad-cam targets: the given classes, or each image's predicted class.

    Binary models (one logit) explain the positive class with target 1 and the negative with 0.
    """
    with torch.no_grad():
        logits = model(images.to(_device(model)))
    n_out = logits.shape[1]
    if targets is None:
        targets = (logits[:, 0] > 0).long().tolist() if n_out == 1 else logits.argmax(1).tolist()
    targets = [int(t) for t in targets]
    if len(targets) != len(images):
        raise ValueError(f"{len(targets)} targets for {len(images)} images")
    top = 1 if n_out == 1 else n_out - 1
    if any(not 0 <= t <= top for t in targets):
        raise ValueError(f"targets must be class indices 0..{top}, got {targets}")
    make = BinaryClassifierOutputTarget if n_out == 1 else ClassifierOutputTarget
    return [make(t) for t in targets]


def compute_cams(
    model: nn.Module,
    images: torch.Tensor,
    targets: Sequence[int] | None = None,
    method: str = "gradcam",
    spec: CamSpec | None = None,
    batch_size: int = 16,
    metadata: torch.Tensor | None = None,
) -> np.ndarray:
    """Maps (N, H, W) in [0, 1] at input resolution for preprocessed images (N, 3, H, W).

    Args:
        model: any skinlib model (CNN, ViT or Swin); put in eval mode while explaining and
            returned to its previous mode.
        targets: class index per image (binary models: 1 = positive, 0 = negative); default the
            predicted class.
        method: gradcam | gradcam++ | scorecam | eigencam (EigenCAM ignores ``targets``).
        spec: target layers and token reshape; default :func:`skinlib.models.architectures.cam_spec` for the
            images' size (small images are explained at an earlier, finer stage).
        metadata: (N, D) a metadata model's inputs for these images, bound to each chunk.
    """
    if method not in METHODS:
        raise ValueError(f"unknown CAM method {method!r}; choose one of {list(METHODS)}")
    spec = spec or cam_spec(model, images.shape[-1])
    was_training = model.training
    model.eval()
    net = bind(model, None if metadata is None else metadata[:1])  # rebound per chunk below
    # ScoreCAM forwards masked copies of one image at a time: one image per chunk, so that the
    # bound metadata row is that image's
    step = 1 if metadata is not None and method == "scorecam" else batch_size
    out = []
    try:
        with (
            torch.enable_grad(),
            METHODS[method](
                model=net,
                target_layers=spec.target_layers,
                reshape_transform=spec.reshape_transform,
            ) as cam,
        ):
            cam.batch_size = batch_size  # ScoreCAM's forward passes per batch
            for start in range(0, len(images), step):
                chunk = images[start : start + step].to(_device(model))
                if isinstance(net, BoundMetadata):
                    net.metadata = metadata[start : start + step]
                wanted = None if targets is None else list(targets)[start : start + step]
                out.append(cam(input_tensor=chunk, targets=_targets(net, chunk, wanted)))
    finally:
        model.train(was_training)
    # BaseCAM.__exit__ swallows IndexError: make sure every image got its map
    if sum(len(o) for o in out) != len(images):
        raise RuntimeError(f"{method} failed inside pytorch-grad-cam (see the message above)")
    return np.concatenate(out).astype(np.float32)


def _resize(array: np.ndarray, shape: tuple[int, int], resample) -> np.ndarray:
    """A 2-D float array in [0, 1] or a bool mask resized to ``shape`` (H, W) with PIL."""
    img = Image.fromarray((np.asarray(array, dtype=float) * 255).round().astype(np.uint8))
    return np.asarray(img.resize((shape[1], shape[0]), resample), dtype=np.float32) / 255.0


def overlay(image_rgb: np.ndarray, cam: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """The map over the image as uint8 RGB (H, W, 3).

    Args:
        image_rgb: (H, W, 3) float in [0, 1] or uint8; the map is resized to it.
        cam: (h, w) map in [0, 1].
        alpha: weight of the heat map (``show_cam_on_image``'s ``1 - image_weight``).
    """
    image = np.asarray(image_rgb)
    image = image.astype(np.float32) / 255.0 if image.dtype == np.uint8 else image
    image = image.astype(np.float32)
    if cam.shape != image.shape[:2]:
        cam = _resize(cam, image.shape[:2], Image.Resampling.BILINEAR)
    return show_cam_on_image(image, cam, use_rgb=True, image_weight=1 - alpha)


def mask_scores(cams: np.ndarray, masks: Sequence[np.ndarray]) -> pd.DataFrame:
    """Score maps against ground-truth lesion masks, one row per image (``.mean()`` averages).

    Columns: ``pointing`` (1 if the map's maximum lies inside the mask, else 0; NaN for a flat
    map, which points nowhere), ``energy_inside`` (share of the map's total value inside the
    mask) and ``mask_share`` (share of the image that is lesion: what ``energy_inside`` would be
    for a uniform map, the chance level). Masks are resized to the maps (nearest neighbour).

    Args:
        cams: (N, H, W) maps.
        masks: N lesion masks (any size; non-zero = lesion).
    """
    rows = []
    for cam, mask in zip(cams, masks, strict=True):
        cam = np.asarray(cam, dtype=np.float64)
        m = np.asarray(mask) > 0
        if m.shape != cam.shape:
            m = _resize(m, cam.shape, Image.Resampling.NEAREST) > 0.5
        peak = np.unravel_index(np.argmax(cam), cam.shape)
        total = cam.sum()
        rows.append(
            {
                "pointing": float(m[peak]) if cam.max() > cam.min() else np.nan,
                "energy_inside": float(cam[m].sum() / total) if total > 0 else np.nan,
                "mask_share": float(m.mean()),
            }
        )
    return pd.DataFrame(rows, columns=["pointing", "energy_inside", "mask_share"])


def load_mask(path: str, shape: tuple[int, int] | None = None) -> np.ndarray:
    """A lesion mask PNG as bool (H, W), optionally resized (nearest) to ``shape``."""
    with Image.open(path) as img:
        mask = np.asarray(img.convert("L")) > 0
    return mask if shape is None else _resize(mask, shape, Image.Resampling.NEAREST) > 0.5


def mask_as_seen(path: str, size: int) -> np.ndarray:
    """A lesion mask PNG as bool (size, size) through the evaluation geometry (nearest
    neighbour): the lesion pixels of the image the model saw and the map covers."""
    with Image.open(path) as img:
        return np.asarray(centre_square(img.convert("L"), size, InterpolationMode.NEAREST)) > 0


def faithfulness_scores(
    model: nn.Module,
    images: torch.Tensor,
    cams: np.ndarray,
    targets: Sequence[int] | None = None,
    metric: str = "road",
    percentiles: Sequence[int] = (20, 40, 60, 80),
    seed: int = 0,
    metadata: torch.Tensor | None = None,
) -> np.ndarray:
    """Faithfulness of each map where no masks exist (higher = the map shows what the model uses).

    Args:
        metric: ``road`` (ROAD combined, Rong et al. 2022: the target score's drop when the least
            relevant pixels are imputed minus its drop when the most relevant are, halved and
            averaged over ``percentiles``) or ``cam_mult`` (the change of the target score when
            the image is multiplied by the map; near 0 = the map keeps what matters).
        seed: ROAD's imputation adds noise; it is drawn under this seed without touching the
            global random state.
        metadata: (N, D) a metadata model's inputs for these images.

    Returns:
        (N,) scores.
    """
    if metric not in ("road", "cam_mult"):
        raise ValueError(f"metric must be 'road' or 'cam_mult', got {metric!r}")
    model = bind(model, metadata)
    images = images.to(_device(model))
    wanted = _targets(model, images, targets)
    if metric == "road":
        score = ROADCombined(percentiles=list(percentiles))
    else:
        score = CamMultImageConfidenceChange()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return np.asarray(score(images, np.asarray(cams), wanted, model), float).reshape(-1)


def score_cams(
    model: nn.Module,
    images: torch.Tensor,
    cams: np.ndarray,
    masks: Sequence[np.ndarray] | None = None,
    metadata: torch.Tensor | None = None,
) -> pd.DataFrame:
    """Each map's scores: against its lesion mask (:func:`mask_scores`) where every image has
    one, else its ROAD faithfulness (column ``road``), since a map with neither is unchecked."""
    if masks is not None:
        return mask_scores(cams, masks)
    return pd.DataFrame({"road": faithfulness_scores(model, images, cams, metadata=metadata)})


def summarise_cam_scores(scores: pd.DataFrame) -> pd.DataFrame:
    """Mean score per model (the index), with the layer explained and its grid (cells a side)
    kept as columns.

    Args:
        scores: :func:`score_cams` rows with ``model``, ``layer`` and ``grid`` columns.
    """
    summary = scores.groupby(["model", "layer", "grid"]).mean(numeric_only=True)
    return summary.reset_index(["layer", "grid"])


def gallery_indices(
    labels: np.ndarray, proba: np.ndarray, cls: int, k: int = 3
) -> dict[str, list[int]]:
    """Rows of the clearest true positives, false negatives and false positives of a class.

    True and false positives are ranked by the class probability (highest first), false
    negatives by it lowest first: the model's surest hits and its surest misses.
    """
    labels, proba = np.asarray(labels, int), np.asarray(proba, float)
    pred, p = proba.argmax(1), proba[:, cls]
    kinds = {
        "true positive": (labels == cls) & (pred == cls),
        "false negative": (labels == cls) & (pred != cls),
        "false positive": (labels != cls) & (pred == cls),
    }
    out = {}
    for name, m in kinds.items():
        idx = np.flatnonzero(m)
        order = np.argsort(p[idx] if name == "false negative" else -p[idx], kind="stable")
        out[name] = idx[order][:k].tolist()
    return out


def gallery_selection(
    preds: Predictions, cls: str, k: int = 3, temperature: float = 1.0
) -> pd.DataFrame:
    """The gallery of a class from a predictions file: one row per chosen image.

    Returns:
        ``kind, row, image_id, label, probability`` (``row`` indexes ``preds``; probability of
        ``cls`` at ``temperature``).
    """
    if cls not in preds.classes:
        raise ValueError(f"class {cls!r} is not among the run's classes {preds.classes}")
    c = preds.classes.index(cls)
    proba = preds.probabilities(temperature)
    rows = [
        {
            "kind": kind,
            "row": i,
            "image_id": preds.image_id[i],
            "label": preds.classes[preds.labels[i]],
            "probability": float(proba[i, c]),
        }
        for kind, idx in gallery_indices(preds.labels, proba, c, k).items()
        for i in idx
    ]
    return pd.DataFrame(rows, columns=["kind", "row", "image_id", "label", "probability"])


def gallery_titles(selection: pd.DataFrame, cls: str) -> list[str]:
    """One title per :func:`gallery_selection` row: the kind, the true class and p(``cls``).

    >>> row = {"kind": "false negative", "label": "mel", "probability": 0.123}
    >>> gallery_titles(pd.DataFrame([row]), "mel")
    ['false negative\\nmel, p(mel)=0.12']
    """
    return [f"{r.kind}\n{r.label}, p({cls})={r.probability:.2f}" for r in selection.itertuples()]


def gallery_overlays(
    loaded, rows: pd.DataFrame, selection: pd.DataFrame, method: str = "gradcam", side: int = 160
) -> list[np.ndarray]:
    """The maps of a :func:`gallery_selection` over its images, kind by kind, as RGB arrays.

    Args:
        loaded: the run's model (:func:`skinlib.models.checkpoint.load_model`).
        rows: the split's rows the selection's ``row`` indexes (``path``).
        side: pixels of each overlay (the image's centre square).
    """
    images = []
    for _, picked in selection.groupby("kind", sort=False):
        chosen = rows.iloc[picked["row"].tolist()]
        pil = [load_image(p) for p in chosen["path"]]
        x = torch.stack([loaded.transform(im) for im in pil])
        cams = compute_cams(loaded.model, x, method=method, metadata=loaded.encode(chosen))
        for im, cam in zip(pil, cams, strict=True):
            images.append(overlay(np.asarray(centre_square(im, side)), cam))
    return images


def best_explained(summary: pd.DataFrame, fallback: str) -> str:
    """The model whose maps point at the lesion most often (:func:`summarise_cam_scores`), or
    ``fallback`` where no masks scored the maps."""
    return summary["pointing"].idxmax() if "pointing" in summary else fallback


def map_scores(
    loaded,
    rows: pd.DataFrame,
    method: str = "gradcam",
    mask_size: Callable[[], int] | None = None,
    model: str = "",
) -> tuple[pd.DataFrame, list[Image.Image], np.ndarray]:
    """Maps of a run's images scored against their lesion masks where every row has one
    (:func:`score_cams`), else by ROAD; the layer explained and its grid are columns.

    Args:
        loaded: the run's model (:func:`skinlib.models.checkpoint.load_model`).
        rows: the images (``path``, optional ``mask_path``; a metadata model's ``age``,
            ``sex``, ``site``).
        mask_size: the side the run's images were seen at, asked only where masks exist.
        model: the name the rows carry in their ``model`` column.

    Returns:
        The scores, the images and their maps.
    """
    pil = [load_image(p) for p in rows["path"]]
    x = torch.stack([loaded.transform(im) for im in pil])
    spec = cam_spec(loaded.model, x.shape[-1])
    metadata = loaded.encode(rows)
    cams = compute_cams(loaded.model, x, method=method, spec=spec, metadata=metadata)
    masks = None
    if mask_size is not None and "mask_path" in rows and rows["mask_path"].notna().all():
        size = mask_size()
        masks = [mask_as_seen(m, size) for m in rows["mask_path"]]
    scores = score_cams(loaded.model, x, cams, masks, metadata)
    return scores.assign(model=model, layer=spec.layer, grid=spec.grid), pil, cams
