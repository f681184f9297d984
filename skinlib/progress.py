"""Progress bars: the one ``tqdm`` that every long loop in skinlib uses.

``tqdm.auto`` draws a widget in JupyterLab where ipywidgets is installed (``pip install -e
".[lab]"``, which ``make lab`` does) and text everywhere else. Without ipywidgets it warns "IProgress
not found" into every notebook and falls back to the text bar, which is what a papermill run
should save anyway, so that warning is silenced here. The pipeline sets ``TQDM_MININTERVAL`` so a
saved notebook keeps a few lines per bar; loops must not force redraws (``refresh=False``).
"""

from __future__ import annotations

import warnings

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="IProgress not found")
    # inside the filter: tqdm.auto warns where ipywidgets is missing
    from tqdm.auto import tqdm

__all__ = ["tqdm"]
