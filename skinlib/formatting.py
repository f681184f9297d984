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
    if isinstance(out.index.name, str):
        out.index.name = out.index.name.replace("_", " ")
    return out


def _header(name: str) -> str:
    """A column name in words, with the thesis's usual abbreviation of balanced accuracy."""
    return name.replace("_", " ").replace("balanced accuracy", "bal. acc.")


def display_table(df: pd.DataFrame, digits: int = 3):
    """A table as a notebook shows it: like the thesis table (no index, ``digits`` decimals,
    ``--`` for missing values), as a pandas Styler."""
    body = df.reset_index() if df.index.name is not None else df
    return body.style.hide(axis="index").format(precision=digits, na_rep=MISSING, thousands=",")
