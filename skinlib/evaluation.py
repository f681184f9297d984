"""Predictions beyond a run's own: test-time augmentation, ensembles and external validation.

Each function returns a :class:`~skinlib.predictions.Predictions`, so every later step (metrics,
calibration, thresholds, the app) consumes TTA, ensemble and external results like any run's.
Averaged probabilities are stored as their logarithm (softmax(log p) = p), or as logit(p) for a
binary task, which keeps the predictions file format unchanged.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader

from skinlib.data import load_table
from skinlib.data.classes import canonical, map_labels, to_binary
from skinlib.data.dataset import ImageDataset
from skinlib.data.overlap import OverlapReport, flag_run_images
from skinlib.errors import DataError
from skinlib.external import describe_external
from skinlib.io import write_json
from skinlib.metrics import bootstrap_ci, classification_report
from skinlib.predictions import Predictions
from skinlib.progress import tqdm
from skinlib.runs import EvaluationFolder, RunFolder
from skinlib.thresholds import positive_score, positive_truth, sens_spec

log = logging.getLogger(__name__)

# Dermoscopy has no canonical orientation, so flips and right-angle rotations keep the label.
TTA_VIEWS = ("identity", "hflip", "vflip", "rot90", "rot180", "rot270")
OVERLAP_COLUMNS = ["overlap_reason", "overlap_split", "overlap_image"]  # see flag_run_images


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
def predict_logits(
    model: nn.Module, images: torch.Tensor, binary: bool, views: Sequence[str] = ("identity",)
) -> np.ndarray:
    """Logits (N, C) of a batch (N, 3, H, W) on the model's device: the model's own for one view;
    for several (test-time augmentation), those of the probabilities averaged over the views.

    Args:
        binary: the model has one output (sigmoid) rather than one per class (softmax).
        views: names from :data:`TTA_VIEWS` (:func:`tta_views`).
    """
    if len(views) == 1:  # keep the raw logits (what training wrote)
        return model(_view(images, views[0])).float().cpu().numpy()
    proba = sum(_proba(model(_view(images, v)), binary) for v in views) / len(views)
    return probabilities_to_logits(proba.float().cpu().numpy(), binary)


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
    views = tta_views(tta)
    classes = list(loaded.classes)
    binary = _is_binary(loaded)
    labels = _labels_for(table, classes)
    dataset = ImageDataset(table.reset_index(drop=True), classes, loaded.transform)
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=num_workers)
    device = next(loaded.model.parameters()).device
    chunks = []
    for images, _ in tqdm(loader, desc="predict", disable=not progress, leave=False):
        chunks.append(predict_logits(loaded.model, images.to(device), binary, views))
    width = 1 if binary else len(classes)
    logits = np.concatenate(chunks) if chunks else np.zeros((0, width))
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


def average_probabilities(
    probas: Sequence[np.ndarray], weights: Sequence[float] | None = None
) -> np.ndarray:
    """How an ensemble combines its members: the (weighted) mean of their probabilities (N, C)
    of the same images. The study's ensemble and the app's both average here."""
    w = np.ones(len(probas)) if weights is None else np.asarray(weights, dtype=float)
    if len(w) != len(probas) or np.any(w < 0) or w.sum() <= 0:
        raise ValueError("weights must be non-negative, one per member, not all zero")
    return sum(wi * p for wi, p in zip(w, probas, strict=True)) / w.sum()


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
    proba = average_probabilities([p.probabilities() for p in predictions], weights)
    return Predictions(
        image_id=first.image_id,
        group=first.group,
        labels=first.labels,
        logits=probabilities_to_logits(proba, first.binary),
        classes=list(first.classes),
    )


@dataclass
class ExternalSet:
    """An external dataset after the overlap guard: what may be scored and what may not."""

    table: pd.DataFrame  # truly external rows, labels in the run's vocabulary
    overlap: OverlapReport  # how many rows were dropped and why; ``overlap.excluded`` lists them


def external_set(
    loaded,
    root: str | Path,
    format: str,
    drop_unmapped: bool = False,
    progress: bool = True,
    skip_missing: bool = False,
) -> ExternalSet:
    """Another dataset's images with labels in the run's vocabulary, minus the run's own images.

    Binary runs see the same positive set; multi-class runs need every class to have a
    counterpart (``drop_unmapped`` drops the rows that have none, e.g. ISIC 2019's scc for a
    HAM10000 model, and says how many).

    Every image the run trained or was selected on (its train and val splits), found by id,
    bytes, perceptual hash or lesion (:mod:`skinlib.data.overlap`), is dropped, and so is every
    image of its own test split: neither is external. There is no way around this guard.

    Raises:
        DataError: the run has no ``split.csv`` to check against, or no external image remains.
    """
    loaded_table = load_table(root, format, skip_missing=skip_missing)
    table = _labelled_external(loaded, loaded_table, format, drop_unmapped)
    table.attrs["skipped_missing"] = int(loaded_table.attrs.get("skipped_missing", 0))
    flagged, report = flag_run_images(table, _run_split(loaded.run_dir), progress=progress)
    log.info("%s: %s", root, report.message())
    if report.unhashed_run:
        log.warning(
            "%d of the run's images could not be read (moved since training?): they were "
            "compared by id and lesion only, not by content",
            report.unhashed_run,
        )
    if report.kept == 0:
        raise DataError(
            f"no external images in {root}: {report.message()}; evaluate the run on its "
            "predictions_test.csv instead, or on a dataset it did not train on"
        )
    kept = flagged[flagged["overlap_reason"].isna()].drop(columns=OVERLAP_COLUMNS)
    kept = kept.reset_index(drop=True)
    kept.attrs["skipped_missing"] = table.attrs["skipped_missing"]
    return ExternalSet(kept, report)


def external_table(
    loaded,
    root: str | Path,
    format: str,
    drop_unmapped: bool = False,
    progress: bool = True,
    skip_missing: bool = False,
) -> pd.DataFrame:
    """:func:`external_set`'s table (guarded the same way); ``attrs["overlap"]`` has the counts."""
    found = external_set(loaded, root, format, drop_unmapped, progress, skip_missing)
    found.table.attrs["overlap"] = found.overlap.summary()
    return found.table


def _labelled_external(loaded, table: pd.DataFrame, format: str, drop_unmapped: bool):
    """``table`` with labels in the run's vocabulary (rows without a counterpart dropped)."""
    if _is_binary(loaded):
        positive = loaded.config.data.positive
        if format == "isic2020":  # already melanoma vs rest
            return table.assign(
                label=table["label"].map({"mel": "+".join(sorted(positive)), "other": "other"})
            )
        return to_binary(table, positive)
    if drop_unmapped:
        keep = table["label"].map(lambda x: (canonical(x) or x) in loaded.classes)
        if (~keep).any():
            log.warning(
                "dropping %d images whose class has no counterpart in %s",
                int((~keep).sum()),
                loaded.classes,
            )
        table = table[keep]
    return map_labels(table, loaded.classes).reset_index(drop=True)


def _run_split(run_dir: Path) -> pd.DataFrame:
    """Every row of the run's split file (train, val and test): what the guard checks against."""
    folder = RunFolder(run_dir)
    if not folder.split_file.is_file():
        raise DataError(
            f"{folder.split_file} not found: external validation needs the run's split file to "
            "exclude the images it trained, was selected or tested on; evaluate a finished "
            "skinlib run"
        )
    return folder.split_table()


def evaluate_external(
    run_dir: str | Path,
    root: str | Path,
    format: str,
    out_dir: str | Path,
    tta: bool = False,
    drop_unmapped: bool = False,
    n_boot: int = 1000,
    skip_missing: bool = False,
) -> dict:
    """Test a trained run on another dataset: predictions file and full metrics report.

    Scores only images the run never saw (:func:`external_set`); ``excluded.csv`` lists the
    others with the reason, and ``report.json``'s ``overlap`` counts them. Uses the run's own
    preprocessing and, when stored, its temperature and operating point (the TTA ones with
    ``tta``: fitted on the TTA predictions of the validation split); without them the report
    says "not calibrated" and has no operating point. ``report.json`` also holds what the set
    can say (``external``: class counts, missing classes, melanoma vs rest and a caveat; see
    :func:`skinlib.external.describe_external`).
    """
    run_dir, out = Path(run_dir), EvaluationFolder(out_dir)
    run = RunFolder(run_dir)
    loaded = run.load_model()
    found = external_set(loaded, root, format, drop_unmapped, skip_missing=skip_missing)
    preds = predict_table(loaded, found.table, tta=tta)
    out.path.mkdir(parents=True, exist_ok=True)
    preds.save(out.file(out.PREDICTIONS))
    excluded = found.overlap.excluded
    excluded[["image_id", "label", "path", *OVERLAP_COLUMNS]].to_csv(
        out.file(out.EXCLUDED), index=False
    )
    temperature = run.temperature(tta)  # None: not calibrated, raw probabilities
    proba = preds.probabilities(temperature or 1.0)
    report = classification_report(preds.labels, proba, preds.classes)
    ci = bootstrap_ci(preds.labels, proba, preds.group, n_boot=n_boot)
    ci.to_csv(out.file(out.METRICS), index=False)
    report.per_class.to_csv(out.file(out.PER_CLASS))
    report.confusion.to_csv(out.file(out.CONFUSION))
    summary = {
        "run": str(run_dir),
        "data": str(root),
        "format": format,
        "images": len(preds.labels),
        "overlap": found.overlap.summary(),  # images dropped as the run's own, and why
        "tta": bool(tta),
        "temperature": temperature,
        "calibrated": temperature is not None,
        **report.summary,
    }
    if points := run.operating_points(tta):
        point = points[0]
        truth = positive_truth(preds.labels, preds.classes, point.positive)
        score = positive_score(proba, preds.classes, point.positive)
        sens, spec = sens_spec(truth, score, point.threshold)
        summary["operating_point"] = {
            "positive": point.positive,
            "threshold": point.threshold,
            "criterion": point.criterion,
            "target": point.target,
            "sensitivity": sens,
            "specificity": spec,
        }
    summary["skipped_missing"] = int(found.table.attrs.get("skipped_missing", 0))
    summary["external"] = describe_external(preds, proba, run_dir, format, n_boot, tta)
    write_json(out.file(out.REPORT), summary)
    return summary
