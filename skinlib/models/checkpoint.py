"""The ``.pt`` format: checkpoints that load with ``torch.load(weights_only=True)`` (tensors and
plain containers), what only resuming needs, and a trained model loaded from its run folder.

Training writes ``best.pt`` and ``last.pt`` through :func:`save_checkpoint`; everything that
answers with a trained model (evaluation, the study, the app) loads it with :func:`load_model`.
A metadata model's checkpoint also holds ``metadata``, its encoder's state (vocabularies and age
statistics of the training split), so that any table is encoded as training encoded it.
The run folder (:class:`~skinlib.runs.folder.RunFolder`) says where the files are.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from skinlib.config import Config, config_from_dict
from skinlib.data.metadata import MetadataEncoder
from skinlib.data.transforms import build_transforms
from skinlib.errors import SkinlibError
from skinlib.io import atomic_path
from skinlib.models.architectures import create_model
from skinlib.runs.folder import RunFolder


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
    # a metadata model's encoder, fitted on its training split (None: the image alone)
    metadata: MetadataEncoder | None = None

    def encode(self, rows: pd.DataFrame) -> torch.Tensor | None:
        """(N, D) the rows' age, sex and site as the model takes them (a column the rows lack:
        missing), on the model's device; None for a model without metadata."""
        if self.metadata is None:
            return None
        device = next(self.model.parameters()).device
        return torch.from_numpy(self.metadata.transform(rows)).to(device)


def save_checkpoint(path: str | Path, state: dict) -> None:
    """Write atomically: a kill during saving leaves the previous checkpoint intact."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


# What only resuming needs: ``best.pt`` is for evaluation and inference and leaves these out,
# which makes it a third of ``last.pt``'s size under AdamW.
RESUME_ONLY = ("optimizer", "scheduler", "scaler", "selector", "rng")


def for_inference(state: dict) -> dict:
    """``state`` without what only resuming reads (optimiser moments, schedules, RNG states)."""
    return {k: v for k, v in state.items() if k not in RESUME_ONLY}


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> dict:
    return torch.load(path, map_location=device, weights_only=True)


def inference_weights(ckpt: dict) -> dict:
    """The weights that answer: the moving average where training kept one, else the model's."""
    return ckpt["ema"] if ckpt.get("ema") is not None else ckpt["model"]


def load_model(
    run: str | Path | RunFolder, which: str = "best", device: str | torch.device = "cpu"
) -> LoadedRun:
    """Load a run's ``checkpoints/<which>.pt`` (``weights_only=True``) into a fresh model in eval
    mode, with the run's evaluation preprocessing.

    Args:
        run: the run folder (or its path).
        which: ``best`` (selected on validation) or ``last``.
    """
    folder = run if isinstance(run, RunFolder) else RunFolder(run)
    path = folder.checkpoint(which)
    if not path.is_file():
        raise SkinlibError(
            f"{path} not found: train the run first (skinlib train) or check the path"
        )
    ckpt = load_checkpoint(path, device)
    cfg = config_from_dict(ckpt["config"])
    binary = cfg.data.task == "binary"
    # checkpoints that predate ``image_size`` in the checkpoint: the run's record, else config
    size = ckpt.get("image_size") or (
        folder.meta()["image_size"] if folder.meta_file.is_file() else cfg.data.image_size
    )
    encoder = metadata_encoder(ckpt)
    # The checkpoint holds every weight: no need (nor network) for the pretrained ones.
    model = create_model(
        dataclasses.replace(cfg.model, pretrained=False),
        1 if binary else len(ckpt["classes"]),
        int(size),
        metadata=encoder,
    )
    model.load_state_dict(inference_weights(ckpt))
    model.to(device).eval()
    data_cfg = ckpt["data_config"]
    transform = build_transforms(data_cfg, train=False, size=int(size))
    classes = list(ckpt["classes"])
    return LoadedRun(model, cfg, classes, transform, folder.path, which, data_cfg, encoder)


def metadata_encoder(ckpt: dict) -> MetadataEncoder | None:
    """The metadata encoder a checkpoint stores (``metadata``: its plain state), or None."""
    state = ckpt.get("metadata")
    return None if state is None else MetadataEncoder.from_state(state)


def rng_state() -> dict:
    """torch, numpy and Python generator states as tensors and lists (no numpy objects, which
    ``weights_only`` loading refuses)."""
    name, keys, pos, has_gauss, gauss = np.random.get_state()  # noqa: NPY002 (global RNG)
    version, internal, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "numpy": [name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss],
        "python": [version, list(internal), gauss_next],
    }


def set_rng_state(state: dict) -> None:
    """Restore what :func:`rng_state` recorded."""
    torch.set_rng_state(state["torch"].cpu())
    name, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))  # noqa: NPY002
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
