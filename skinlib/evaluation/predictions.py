"""The predictions file: the contract between training and every later step.

One CSV per split (``predictions_val.csv``, ``predictions_test.csv``) with columns
``image_id, group, label, logit_<class>...``; ``label`` is the class index into ``classes`` (the
order of the logit columns). A binary task stores one logit column (``logit_<positive>``).
Metrics, calibration, thresholds, TTA and ensembles all read and write this format, so they work
on any run, ensemble or external-validation result alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from skinlib.evaluation.calibration import logits_to_proba
from skinlib.io import atomic_write

LOGIT_PREFIX = "logit_"


@dataclass
class Predictions:
    """Logits and labels of one split.

    Attributes:
        image_id: (N,) image ids.
        group: (N,) lesion/patient ids (bootstrap resamples these).
        labels: (N,) int class indices into ``classes``.
        logits: (N, C) raw scores; (N, 1) for a binary task.
        classes: class codes, in logit column order (for binary: ``[negative, positive]``).
    """

    image_id: np.ndarray
    group: np.ndarray
    labels: np.ndarray
    logits: np.ndarray
    classes: list[str]

    def __post_init__(self) -> None:
        self.image_id = np.asarray(self.image_id).astype(str)
        self.group = np.asarray(self.group).astype(str)
        self.labels = np.asarray(self.labels).astype(int)
        self.logits = np.asarray(self.logits, dtype=np.float64)
        if self.logits.ndim == 1:
            self.logits = self.logits[:, None]
        n = len(self.labels)
        if not (len(self.image_id) == len(self.group) == self.logits.shape[0] == n):
            raise ValueError("image_id, group, labels and logits must have the same length")

    @property
    def binary(self) -> bool:
        return self.logits.shape[1] == 1

    def probabilities(self, temperature: float = 1.0) -> np.ndarray:
        """Class probabilities (N, C) at ``temperature``; for a binary task (N, 2) as [1 - p, p]."""
        return logits_to_proba(self.logits, temperature)

    def subset(self, index) -> Predictions:
        """The rows at ``index`` (an integer array or boolean mask), in that order."""
        return Predictions(
            self.image_id[index],
            self.group[index],
            self.labels[index],
            self.logits[index],
            list(self.classes),
        )

    def to_frame(self) -> pd.DataFrame:
        cols = self.classes[-1:] if self.binary else self.classes
        df = pd.DataFrame({"image_id": self.image_id, "group": self.group, "label": self.labels})
        for j, c in enumerate(cols):
            df[f"{LOGIT_PREFIX}{c}"] = self.logits[:, j]
        return df

    def save(self, path: str | Path) -> Path:
        df = self.to_frame()
        meta = ",".join(self.classes)
        return atomic_write(
            path, lambda p: p.write_text(f"# classes={meta}\n" + df.to_csv(index=False))
        )

    @classmethod
    def load(cls, path: str | Path) -> Predictions:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"predictions file {path} not found; train or evaluate first")
        with path.open() as fh:
            first = fh.readline().strip()
        if not first.startswith("# classes="):
            raise ValueError(f"{path}: not a skinlib predictions file (missing '# classes=' line)")
        classes = first.split("=", 1)[1].split(",")
        df = pd.read_csv(path, comment=None, skiprows=1, dtype={"image_id": str, "group": str})
        logit_cols = [c for c in df.columns if c.startswith(LOGIT_PREFIX)]
        return cls(
            image_id=df["image_id"].to_numpy(),
            group=df["group"].to_numpy(),
            labels=df["label"].to_numpy(),
            logits=df[logit_cols].to_numpy(),
            classes=classes,
        )


def probabilities_to_logits(proba: np.ndarray, binary: bool) -> np.ndarray:
    """The logits whose softmax (sigmoid for binary) gives back ``proba``."""
    eps = 1e-7
    p = np.clip(proba, eps, 1 - eps)
    if binary:
        pos = p[:, 1] if p.ndim == 2 and p.shape[1] == 2 else p.reshape(-1)
        return np.log(pos / (1 - pos))[:, None]
    return np.log(p)
