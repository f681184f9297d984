"""The torch Dataset over a common-schema table."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import pandas as pd
import torch
from torch.utils.data import Dataset

from skinlib.data.images import load_image
from skinlib.errors import DataError

log = logging.getLogger(__name__)


class ImageDataset(Dataset):
    """(image tensor, class index) for each row of ``table``.

    Args:
        table: rows with ``path`` and ``label``.
        classes: class order; ``label`` values are looked up here.
        transform: PIL image -> tensor.
        skip_bad: an unreadable image is replaced by the next readable one and counted in
            ``skipped`` (per worker) instead of stopping training.
    """

    def __init__(
        self,
        table: pd.DataFrame,
        classes: Sequence[str],
        transform: Callable,
        skip_bad: bool = False,
    ):
        index = {c: i for i, c in enumerate(classes)}
        unknown = sorted(set(table["label"]) - set(index))
        if unknown:
            raise DataError(f"labels {unknown} are not among the classes {list(classes)}")
        self.paths = table["path"].astype(str).tolist()
        self.labels = table["label"].map(index).astype(int).tolist()
        self.transform = transform
        self.skip_bad = skip_bad
        self.skipped: set[str] = set()

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        for offset in range(len(self.paths)):
            j = (i + offset) % len(self.paths)
            try:
                return self.transform(load_image(self.paths[j])), self.labels[j]
            except DataError as err:
                if not self.skip_bad:
                    raise
                if self.paths[j] not in self.skipped:
                    log.warning("skipping unreadable image: %s", err)
                    self.skipped.add(self.paths[j])
        raise DataError("no readable image left in the dataset")
