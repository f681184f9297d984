"""The folder an external evaluation writes: the one place that names its files."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from skinlib.io import read_json


class EvaluationFolder:
    """What an external evaluation writes (``skinlib evaluate --out``, by default
    ``<run>/external/<set>/``): the one place that names those files.

    Args:
        path: the output folder.
    """

    PREDICTIONS = "predictions.csv"
    EXCLUDED = "excluded.csv"  # images dropped as the run's own, with the reason
    METRICS = "metrics.csv"  # headline metrics with grouped-bootstrap intervals
    PER_CLASS = "per_class.csv"
    CONFUSION = "confusion.csv"
    REPORT = "report.json"

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"EvaluationFolder({str(self.path)!r})"

    def file(self, name: str) -> Path:
        """One of the names above, in this folder (``folder.file(folder.REPORT)``)."""
        return self.path / name

    def report(self) -> dict | None:
        path = self.file(self.REPORT)
        return read_json(path) if path.is_file() else None

    def metrics(self) -> pd.DataFrame:
        return pd.read_csv(self.file(self.METRICS))
