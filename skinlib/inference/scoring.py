"""Predictions beyond a run's own: test-time augmentation, ensembles and external validation.

Each function returns a :class:`~skinlib.evaluation.predictions.Predictions`, so every later step (metrics,
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
from torch.utils.data import DataLoader

from skinlib.data import load_table
from skinlib.data.classes import canonical, map_labels, to_binary
from skinlib.data.dataset import ImageDataset
from skinlib.data.overlap import OverlapReport, flag_run_images
from skinlib.errors import DataError
from skinlib.evaluation.metrics import bootstrap_ci, classification_report
from skinlib.evaluation.predictions import Predictions
from skinlib.evaluation.thresholds import positive_score, positive_truth, sens_spec
from skinlib.external.describe import describe_external
from skinlib.io import write_json
from skinlib.models.checkpoint import load_model
from skinlib.progress import tqdm
from skinlib.runs import ledger
from skinlib.runs.folder import EvaluationFolder, RunFolder

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
        chunks.append(tta_logits(loaded.model, images.to(device), views, binary))
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
) -> np.ndarray:
    """Test-time augmentation of one batch: the model's probabilities averaged over ``views``,
    returned as logits (:func:`probabilities_to_logits`), so they fit a predictions file.

    Args:
        images: (N, 3, H, W) preprocessed, on the model's device.
        views: names from :data:`TTA_VIEWS`; a single view returns the raw logits unchanged.

    Returns:
        (N, C) logits; (N, 1) for a binary model.
    """
    views = list(views)
    if len(views) == 1:  # keep the raw logits (what training wrote)
        return model(_view(images, views[0])).float().cpu().numpy()
    proba = sum(_proba(model(_view(images, v)), binary) for v in views) / len(views)
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


def average_probabilities(
    probabilities: Sequence[np.ndarray], weights: Sequence[float] | None = None
) -> np.ndarray:
    """The (weighted) mean of several models' (N, C) probabilities of the same images: how every
    ensemble combines its members.

    >>> average_probabilities([np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]])], [3, 1]).tolist()
    [[0.75, 0.25]]
    """
    w = np.ones(len(probabilities)) if weights is None else np.asarray(weights, dtype=float)
    if len(w) != len(probabilities) or np.any(w < 0) or w.sum() <= 0:
        raise ValueError("weights must be non-negative, one per member, not all zero")
    return sum(wi * p for wi, p in zip(w, probabilities, strict=True)) / w.sum()


def ensemble_weights(val_predictions: Sequence[Predictions]) -> list[float]:
    """Each member's validation balanced accuracy: its weight in the ensemble (chosen on
    validation, so the test set plays no part in how the members are combined)."""
    return [
        classification_report(p.labels, p.probabilities(), p.classes).summary["balanced_accuracy"]
        for p in val_predictions
    ]


def ensemble(
    predictions: Sequence[Predictions],
    weights: Sequence[float] | None = None,
    temperatures: Sequence[float] | None = None,
) -> Predictions:
    """Average the probabilities of several runs on the same images (optionally weighted).

    Args:
        temperatures: one per member: average the calibrated probabilities (each member's
            ``softmax(logits / T)``); default the raw ones.
    """
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
    temperatures = [1.0] * len(predictions) if temperatures is None else temperatures
    members = zip(predictions, temperatures, strict=True)
    proba = average_probabilities([p.probabilities(t) for p, t in members], weights)
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
    set_name: str | None = None,
) -> dict:
    """Test a trained run on another dataset: predictions file and full metrics report.

    Scores only images the run never saw (:func:`external_set`); ``excluded.csv`` lists the
    others with the reason, and ``report.json``'s ``overlap`` counts them. Uses the run's own
    preprocessing and, when stored, its temperature and operating point (the TTA ones with
    ``tta``: fitted on the TTA predictions of the validation split); without them the report
    says "not calibrated" and has no operating point. ``report.json`` also holds what the set
    can say (``external``: class counts, missing classes, melanoma vs rest and a caveat; see
    :func:`skinlib.external.describe.describe_external`).

    The scoring is a look in the study's test-look ledger (:mod:`skinlib.runs.ledger`), as
    ``external:<set_name>`` (default: the data folder's name).
    """
    run_dir, out = Path(run_dir), EvaluationFolder(out_dir)
    run = RunFolder(run_dir)
    loaded = load_model(run)
    found = external_set(loaded, root, format, drop_unmapped, skip_missing=skip_missing)
    preds = predict_table(loaded, found.table, tta=tta)
    out.path.mkdir(parents=True, exist_ok=True)
    preds.save(out.file(out.PREDICTIONS))
    run.record_test_look(ledger.external(set_name or Path(root).name), tta)
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
