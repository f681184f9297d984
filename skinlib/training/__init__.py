"""The training engine: one loop for every architecture and imbalance strategy."""

from skinlib.training.engine import train
from skinlib.training.tables import prepare_table

__all__ = ["prepare_table", "train"]
