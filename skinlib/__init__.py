"""skinlib: dermoscopic skin-lesion classification study (data, training, evaluation, notebooks)."""

# First, before timm or huggingface_hub import tqdm.auto themselves: choose the progress bar once.
from skinlib import progress as _progress  # noqa: F401

__version__ = "0.1.0"
