"""Read a finished run back: its model (best or last checkpoint), config, classes, transform, and
the state later steps store with it (temperature, operating points).

A run's calibration is explicit state: :func:`read_temperature` returns None for a run that no
temperature was fitted for, never a silent 1.0. Test-time augmentation changes the predictions,
so TTA has its own temperature and operating points (``*_tta.json``), fitted on the TTA
predictions of the validation split.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from skinlib.config import Config, config_from_dict
from skinlib.data.transforms import build_transforms
from skinlib.errors import DataError, SkinlibError
from skinlib.io import read_json, write_json
from skinlib.models import create_model
from skinlib.predictions import Predictions
from skinlib.training.checkpoint import load_checkpoint


@dataclass
class LoadedRun:
    """A trained model ready for inference, with what is needed to feed it."""

    model: nn.Module
    config: Config
    classes: list[str]
    transform: Any  # PIL image -> normalised tensor (evaluation preprocessing)
    run_dir: Path
    checkpoint: str
    data_config: dict


def load_model(
    run_dir: str | Path, which: str = "best", device: str | torch.device = "cpu"
) -> LoadedRun:
    """Load ``checkpoints/<which>.pt`` (``weights_only=True``) into a fresh model in eval mode."""
    run_dir = Path(run_dir)
    path = run_dir / "checkpoints" / f"{which}.pt"
    if not path.is_file():
        raise SkinlibError(
            f"{path} not found: train the run first (skinlib train) or check the path"
        )
    ckpt = load_checkpoint(path, device)
    cfg = config_from_dict(ckpt["config"])
    binary = cfg.data.task == "binary"
    size = int(ckpt.get("image_size") or _meta_size(run_dir, cfg))
    # The checkpoint holds every weight: no need (nor network) for the pretrained ones.
    model = create_model(
        dataclasses.replace(cfg.model, pretrained=False),
        1 if binary else len(ckpt["classes"]),
        size,
    )
    model.load_state_dict(ckpt["ema"] if ckpt.get("ema") is not None else ckpt["model"])
    model.to(device).eval()
    data_cfg = ckpt["data_config"]
    transform = build_transforms(data_cfg, train=False, size=size)
    return LoadedRun(model, cfg, list(ckpt["classes"]), transform, run_dir, which, data_cfg)


def _meta_size(run_dir: Path, cfg: Config) -> int:
    """Input size of runs whose checkpoints predate ``image_size`` in the checkpoint."""
    meta = run_dir / "meta.json"
    return read_json(meta)["image_size"] if meta.is_file() else cfg.data.image_size


def load_predictions(run_dir: str | Path, split: str = "test") -> Predictions:
    """The predictions file a run (or evaluation) wrote for one split."""
    return Predictions.load(Path(run_dir) / f"predictions_{split}.csv")


def run_meta(run_dir: str | Path) -> dict:
    path = Path(run_dir) / "meta.json"
    if not path.is_file():
        raise SkinlibError(f"{path} not found: {run_dir} is not a finished run")
    return read_json(path)


CALIBRATION_FILE = "calibration.json"
THRESHOLDS_FILE = "thresholds.json"


def _variant(name: str, tta: bool) -> str:
    """``calibration.json`` or, for test-time augmentation, ``calibration_tta.json``."""
    return name.replace(".json", "_tta.json") if tta else name


def calibration_path(run_dir: str | Path, tta: bool = False) -> Path:
    return Path(run_dir) / _variant(CALIBRATION_FILE, tta)


def thresholds_path(run_dir: str | Path, tta: bool = False) -> Path:
    """Where the operating points chosen on validation are stored (the app uses the first)."""
    return Path(run_dir) / _variant(THRESHOLDS_FILE, tta)


def read_temperature(run_dir: str | Path, tta: bool = False) -> float | None:
    """The temperature fitted on validation, or None when the run was not calibrated."""
    path = calibration_path(run_dir, tta)
    if not path.is_file():
        return None
    try:
        value = float(read_json(path)["temperature"])
    except (KeyError, TypeError, ValueError) as err:
        raise DataError(
            f"{path}: no usable 'temperature' ({err}); re-run the calibration"
        ) from None
    if not (math.isfinite(value) and value > 0):
        raise DataError(f"{path}: temperature {value} must be a positive number")
    return value


def write_temperature(run_dir: str | Path, temperature: float, tta: bool = False) -> Path:
    """Store a temperature fitted on the validation split (single view or TTA predictions)."""
    fitted_on = "val (TTA predictions)" if tta else "val"
    return write_json(
        calibration_path(run_dir, tta),
        {
            "temperature": float(temperature),
            "fitted_on": fitted_on,
            "method": "temperature scaling",
        },
    )
