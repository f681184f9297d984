"""The training engine: one loop for every architecture and imbalance strategy."""

from skinlib.training.engine import train

__all__ = ["train"]
