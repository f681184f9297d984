"""skinlib: dermoscopic skin-lesion classification study (data, training, evaluation, notebooks)."""

__version__ = "0.1.0"
