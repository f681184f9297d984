"""The torch Dataset over a common-schema table, and the collate that drops unreadable images.

An item is ``(image, class index)``; a metadata model's dataset (``metadata`` given) yields
:class:`WithMetadata` items instead, which collate into a :class:`WithMetadata` batch, so the
image-only path is exactly what it was and :func:`batch_parts` reads either.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset, default_collate

from skinlib.data.images import load_image
from skinlib.errors import ConfigError, DataError

log = logging.getLogger(__name__)

ON_BAD = ("raise", "substitute", "drop")


class WithMetadata(NamedTuple):
    """An item of a metadata model's dataset, and (collated by ``default_collate``) its batch."""

    image: torch.Tensor  # (3, H, W); a batch (N, 3, H, W)
    label: int | torch.Tensor  # class index; a batch (N,)
    metadata: torch.Tensor  # (D,) age, sex and site encoded (skinlib.data.metadata); a batch (N, D)


def batch_parts(batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """(images, labels, metadata) of a collated batch; metadata None for an image-only one."""
    if isinstance(batch, WithMetadata):
        return batch.image, batch.label, batch.metadata
    images, labels = batch
    return images, labels, None


class ImageDataset(Dataset):
    """(image tensor, class index) for each row of ``table``.

    Args:
        table: rows with ``path`` and ``label``.
        classes: class order; ``label`` values are looked up here.
        transform: PIL image -> tensor.
        on_bad: what an unreadable image does. ``raise``: stop with its path. ``substitute``
            (training with data.skip_bad): the next readable image *and its label* take its
            place, so batches keep their size. ``drop`` (evaluation with data.skip_bad): the item
            is None and :func:`collate_readable` leaves it out, because a substitute would be
            scored against the wrong row. Both count the path in ``skipped`` (per worker).
        metadata: (len(table), D) encoded metadata of the rows (a metadata model's input);
            items are then :class:`WithMetadata`, a substitute with its own row's metadata.
    """

    def __init__(
        self,
        table: pd.DataFrame,
        classes: Sequence[str],
        transform: Callable,
        on_bad: str = "raise",
        metadata: np.ndarray | None = None,
    ):
        if on_bad not in ON_BAD:
            raise ConfigError(f"on_bad={on_bad!r}; choose one of {ON_BAD}")
        index = {c: i for i, c in enumerate(classes)}
        unknown = sorted(set(table["label"]) - set(index))
        if unknown:
            raise DataError(f"labels {unknown} are not among the classes {list(classes)}")
        self.paths = table["path"].astype(str).tolist()
        self.labels = table["label"].map(index).astype(int).tolist()
        self.transform = transform
        self.on_bad = on_bad
        self.skipped: set[str] = set()
        if metadata is not None and len(metadata) != len(self.paths):
            raise DataError(f"{len(metadata)} metadata rows for {len(self.paths)} images")
        self.metadata = None if metadata is None else torch.as_tensor(metadata).float()

    def __len__(self) -> int:
        return len(self.paths)

    def _skip(self, j: int, err: DataError) -> None:
        if self.on_bad == "raise":
            raise err
        if self.paths[j] not in self.skipped:
            log.warning("skipping unreadable image: %s", err)
            self.skipped.add(self.paths[j])

    def _item(self, j: int) -> tuple[torch.Tensor, int] | WithMetadata:
        image = self.transform(load_image(self.paths[j]))
        if self.metadata is None:
            return image, self.labels[j]
        return WithMetadata(image, self.labels[j], self.metadata[j])

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int] | WithMetadata | None:
        if self.on_bad != "substitute":
            try:
                return self._item(i)
            except DataError as err:
                self._skip(i, err)
                return None
        for offset in range(len(self.paths)):
            j = (i + offset) % len(self.paths)
            try:
                return self._item(j)
            except DataError as err:
                self._skip(j, err)
        raise DataError("no readable image left in the dataset")


def collate_readable(batch: list) -> tuple:
    """Stack the readable items of a batch (``drop`` datasets give None for the others).

    Returns:
        (images (K, C, H, W), labels (K,), readable (N,) bool mask over the batch's items), and
        with metadata a fourth entry, the (K, D) metadata of the readable items.
    """
    readable = torch.tensor([item is not None for item in batch], dtype=torch.bool)
    kept = [item for item in batch if item is not None]
    if not kept:
        return torch.empty(0), torch.empty(0, dtype=torch.long), readable
    images, labels, metadata = batch_parts(default_collate(kept))
    return (images, labels, readable) if metadata is None else (images, labels, readable, metadata)
