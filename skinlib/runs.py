"""Read a finished run back: its model (best or last checkpoint), config, classes, transform."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from skinlib.config import Config, config_from_dict
from skinlib.data.transforms import build_transforms
from skinlib.errors import SkinlibError
from skinlib.io import read_json
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
