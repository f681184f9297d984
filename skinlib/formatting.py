"""Numbers as tables and sentences show them: values with intervals, p-values, readable headers.

The evaluation tables, the findings and the thesis tables format their cells here, so that a
number reads the same everywhere (``0.812 [0.781, 0.843]``, ``<0.001``, ``--`` when missing).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

MISSING = "--"  # how a missing value reads in a table


def is_missing(value) -> bool:
    """None or NaN: a value a table shows as ``--``."""
    return value is None or (isinstance(value, float | np.floating) and math.isnan(value))


def format_ci(value: float, low: float, high: float, digits: int = 3) -> str:
    """A value with its interval, ``0.812 [0.781, 0.843]``; ``--`` when the value is missing,
    the value alone when the interval is.

    >>> format_ci(0.81234, 0.7812, 0.8431)
    '0.812 [0.781, 0.843]'
    """
    if is_missing(value):
        return MISSING
    if is_missing(low) or is_missing(high):
        return f"{value:.{digits}f}"
    return f"{value:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def format_p(p: float, digits: int = 3) -> str:
    """A p-value as a table shows it: ``<0.001`` below the last digit shown, never ``0.000``.

    >>> format_p(2.5e-22), format_p(0.0412)
    ('<0.001', '0.041')
    """
    if is_missing(p):
        return MISSING
    floor = 10.0**-digits
    return f"<{floor:.{digits}f}" if p < floor else f"{p:.{digits}f}"


def readable(df: pd.DataFrame, digits: int = 2) -> pd.DataFrame:
    """The table a reader sees: each ``x, x_low, x_high`` triple as one ``x`` cell with its
    interval (``0.80 [0.67, 0.89]``), and headers in words (``val_coverage`` -> ``val coverage``).

    The CSV and JSON copies keep the separate numbers; only the LaTeX table is made readable.

    >>> frame = pd.DataFrame({"mean_size": [1.4], "mean_size_low": [1.3], "mean_size_high": [1.5]})
    >>> readable(frame).to_dict("records")
    [{'mean size': '1.40 [1.30, 1.50]'}]
    """
    out = df.copy()
    for col in [c for c in out.columns if isinstance(c, str)]:
        low, high = f"{col}_low", f"{col}_high"
        if low in out and high in out:
            out[col] = [
                format_ci(v, lo, hi, digits)
                for v, lo, hi in zip(out[col], out[low], out[high], strict=True)
            ]
            out = out.drop(columns=[low, high])
    out.columns = [_header(c) if isinstance(c, str) else c for c in out.columns]
    for col in out.columns:
        if pd.api.types.is_object_dtype(out[col]) or pd.api.types.is_string_dtype(out[col]):
            out[col] = out[col].map(lambda v: in_words(v) if isinstance(v, str) else v)
    if pd.api.types.is_object_dtype(out.index) or pd.api.types.is_string_dtype(out.index):
        out.index = out.index.map(lambda v: in_words(v) if isinstance(v, str) else v)
    if isinstance(out.index.name, str):
        out.index.name = _header(out.index.name)
    return out


# Identifiers the code uses as table rows or headers (scores, methods, metrics), in the words a
# reader of the thesis expects; only whole words are replaced, class names and numbers never.
WORDS = {
    "max_probability": "maximum probability",
    "msp": "maximum softmax probability",
    "margin": "margin of the top two",
    "mahalanobis": "Mahalanobis distance",
    "lac": "LAC",
    "aps": "APS",
    "raps": "RAPS",
    "Mondrian": "per class (Mondrian)",
    "image-level": "(one image per lesion)",
    "aurc": "AURC",
    "ece": "ECE",
    "mce": "MCE",
    "nll": "NLL",
    "auc": "AUC",
}
HEADERS = {
    "bal. acc. all": "bal. acc., no deferral",
    "image coverage": "coverage per image",
    "image mean size": "mean size per image",
    "confidence": "confidence score",
}


def in_words(text: str) -> str:
    """A cell's identifiers in words (:data:`WORDS`), word by word.

    >>> in_words("lac Mondrian 90%"), in_words("max_probability"), in_words("mel")
    ('LAC per class (Mondrian) 90%', 'maximum probability', 'mel')
    """
    return " ".join(WORDS.get(word, word) for word in text.split(" "))


def _header(name: str) -> str:
    """A column name in words, with the thesis's usual abbreviation of balanced accuracy."""
    words = in_words(name.replace("_", " ").replace("balanced accuracy", "bal. acc."))
    return HEADERS.get(words, words)


def display_table(df: pd.DataFrame, digits: int = 3):
    """A table as a notebook shows it: like the thesis table (no index, ``digits`` decimals,
    ``--`` for missing values), as a pandas Styler."""
    body = df.reset_index() if df.index.name is not None else df
    return body.style.hide(axis="index").format(precision=digits, na_rep=MISSING, thousands=",")
