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

    from skinlib.data.dataset import ImageDataset
    from skinlib.progress import tqdm

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
        if len(views) == 1:  # keep the raw logits (what training wrote)
            chunks.append(loaded.model(_view(images, views[0])).float().cpu().numpy())
            continue
        proba = sum(_proba(loaded.model(_view(images, v)), binary) for v in views) / len(views)
        chunks.append(probabilities_to_logits(proba.float().cpu().numpy(), binary))
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


def external_table(
    loaded, root: str | Path, format: str, drop_unmapped: bool = False, skip_missing: bool = False
) -> pd.DataFrame:
    """Another dataset's images with labels in the run's vocabulary.

    Binary runs see the same positive set; multi-class runs need every class to have a
    counterpart (``drop_unmapped`` drops the rows that have none, e.g. ISIC 2019's scc for a
    HAM10000 model, and says how many).
    """
    from skinlib.data import load_table
    from skinlib.data.classes import canonical, map_labels, to_binary

    table = load_table(root, format, skip_missing=skip_missing)
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

    Uses the run's own preprocessing, its temperature (``calibration.json``) and its stored
    operating point (``thresholds.json``) when present. ``report.json`` also holds what the set
    can say (``external``: class counts, missing classes, melanoma vs rest and a caveat; see
    :func:`skinlib.external.describe_external`).
    """
    from skinlib.io import read_json, write_json
    from skinlib.metrics import bootstrap_ci, classification_report
    from skinlib.runs import load_model
    from skinlib.thresholds import load_thresholds, positive_score, positive_truth, sens_spec

    run_dir, out = Path(run_dir), Path(out_dir)
    loaded = load_model(run_dir)
    table = external_table(loaded, root, format, drop_unmapped, skip_missing)
    preds = predict_table(loaded, table, tta=tta)
    out.mkdir(parents=True, exist_ok=True)
    preds.save(out / "predictions.csv")
    calib = run_dir / "calibration.json"
    temperature = float(read_json(calib)["temperature"]) if calib.is_file() else 1.0
    proba = preds.probabilities(temperature)
    report = classification_report(preds.labels, proba, preds.classes)
    ci = bootstrap_ci(preds.labels, proba, preds.group, n_boot=n_boot)
    ci.to_csv(out / "metrics.csv", index=False)
    report.per_class.to_csv(out / "per_class.csv")
    report.confusion.to_csv(out / "confusion.csv")
    summary = {
        "run": str(run_dir),
        "data": str(root),
        "format": format,
        "images": len(preds.labels),
        "tta": bool(tta),
        "temperature": temperature,
        **report.summary,
    }
    thresholds = run_dir / "thresholds.json"
    if thresholds.is_file():
        point = load_thresholds(thresholds)[0]
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
    from skinlib.external import describe_external

    summary["skipped_missing"] = int(table.attrs.get("skipped_missing", 0))
    summary["external"] = describe_external(preds, proba, run_dir, format, n_boot)
    write_json(out / "report.json", summary)
    return summary
