"""Data layer: adapters for the public datasets, image loading, validation, splits and cache."""

from skinlib.data.formats import load_table

__all__ = ["load_table"]
