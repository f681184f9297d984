"""06: Grad-CAM scored against lesion masks, and the galleries of hits and misses."""

from __future__ import annotations

import numpy as np
import pandas as pd

from skinlib.inference.xai import (
    gallery_overlays,
    gallery_selection,
    gallery_titles,
    map_scores,
    summarise_cam_scores,
)
from skinlib.models.checkpoint import load_model
from skinlib.study.steps.base import StudyBase
from skinlib.thesis import plots

GALLERY_SIDE = 160  # pixels: each overlay in the gallery figure


class ExplanationSteps(StudyBase):
    """What 06_xai shows (computed in :mod:`skinlib.inference.xai`)."""

    def cam_scores(self, run: str) -> tuple[pd.DataFrame, list, np.ndarray]:
        """Grad-CAM on test images with masks (:func:`skinlib.inference.xai.map_scores`):
        pointing game and energy inside the lesion."""
        folder = self.folder(run)
        rows = folder.split_rows("test").head(self.evaluation.xai_images)
        loaded = load_model(folder)
        size = lambda: folder.meta()["image_size"]  # noqa: E731 (asked only where masks exist)
        return map_scores(loaded, rows, self.evaluation.xai_method, size, model=run)

    def cam_summary(self) -> pd.DataFrame:
        """Mean map scores per architecture, with the layer explained and its grid (cells a side)."""
        return summarise_cam_scores(pd.concat([self.cam_scores(run)[0] for run in self.runs]))

    def gallery(self, run: str, cls: str | None = None):
        """Grad-CAM overlays of true positives, false negatives and false positives of a class."""
        cls = cls or self.evaluation.positive[0]
        preds = self.predictions(run, "test")
        if cls not in preds.classes:
            cls = preds.classes[-1]
        rows = self.folder(run).split_rows("test")
        per_kind = self.evaluation.gallery_per_kind
        chosen = gallery_selection(preds, cls, per_kind, self.temperature(run) or 1.0)
        loaded = load_model(self.run_dir(run))
        images = gallery_overlays(loaded, rows, chosen, self.evaluation.xai_method, GALLERY_SIDE)
        return plots.image_gallery(images, gallery_titles(chosen, cls), ncols=max(3, per_kind * 2))
