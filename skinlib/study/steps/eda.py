"""01: the data in counts, metadata, sizes and the split audit (computed in :mod:`skinlib.data.eda`)."""

from __future__ import annotations

import pandas as pd

from skinlib.data import eda
from skinlib.study.steps.base import StudyBase


class ExplorationSteps(StudyBase):
    """What 01_eda shows: the study table in numbers."""

    def class_counts(self) -> pd.DataFrame:
        return eda.class_counts(self.table())

    def metadata_by_class(self) -> pd.DataFrame:
        return eda.metadata_by_class(self.table())

    def image_sizes(self, n: int = 200) -> pd.DataFrame:
        return eda.image_sizes(self.table(), n)

    def split_audit(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Counts per class and split, and lesions shared across splits (grouped vs naive)."""
        return eda.split_audit(self.table())
