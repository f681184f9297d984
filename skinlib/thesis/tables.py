"""Tables for the thesis: LaTeX (booktabs) next to CSV and JSON copies of the same numbers."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from skinlib.io import write_json, write_text

MISSING = "--"  # how a missing value reads in a table


def _missing(value) -> bool:
    return value is None or (isinstance(value, float | np.floating) and math.isnan(value))


def format_ci(value: float, low: float, high: float, digits: int = 3) -> str:
    """A value with its interval, ``0.812 [0.781, 0.843]``; ``--`` when the value is missing,
    the value alone when the interval is.

    >>> format_ci(0.81234, 0.7812, 0.8431)
    '0.812 [0.781, 0.843]'
    """
    if _missing(value):
        return MISSING
    if _missing(low) or _missing(high):
        return f"{value:.{digits}f}"
    return f"{value:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def format_p(p: float, digits: int = 3) -> str:
    """A p-value as a table shows it: ``<0.001`` below the last digit shown, never ``0.000``.

    >>> format_p(2.5e-22), format_p(0.0412)
    ('<0.001', '0.041')
    """
    if _missing(p):
        return MISSING
    floor = 10.0**-digits
    return f"<{floor:.{digits}f}" if p < floor else f"{p:.{digits}f}"


def _number(value: float, float_format: str | Callable[[float], str]) -> str:
    """``float_format`` for rates and errors; fewer decimals for large numbers (sizes, img/s)."""
    if _missing(value):
        return MISSING
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return float_format(value) if callable(float_format) else float_format.format(value)


def escape_text(text: str) -> str:
    r"""Escape ``& % # _`` outside ``$...$`` math unless already escaped (captions may hold
    math such as ``$\pm$`` or ``$x_i$``)."""
    parts = text.split("$")
    parts[::2] = [re.sub(r"(?<!\\)([&%#_])", r"\\\1", p) for p in parts[::2]]
    return "$".join(parts)


def to_latex(
    df: pd.DataFrame,
    caption: str,
    label: str,
    float_format: str | Callable[[float], str] = "{:.3f}",
) -> str:
    """A booktabs ``table`` (``\\toprule``/``\\midrule``/``\\bottomrule``), cells escaped.

    A named index becomes the first column. Float columns go through ``float_format`` (numbers of
    10 and more get fewer decimals); strings (e.g. :func:`format_ci` cells) are kept as written
    with LaTeX's special characters escaped. The table is set in ``\\small`` (the captions' size)
    and never scaled: the document needs ``\\usepackage{booktabs}``.
    """
    body = df.reset_index() if df.index.name is not None else df.copy()
    align = "".join("r" if pd.api.types.is_numeric_dtype(body[c]) else "l" for c in body.columns)
    for col in body.columns:
        if pd.api.types.is_float_dtype(body[col]):
            body[col] = body[col].map(lambda v: _number(v, float_format))
    body.columns = [str(c) for c in body.columns]
    styler = body.style.hide(axis="index").format(escape="latex", na_rep=MISSING)
    styler = styler.format_index(escape="latex", axis=1)
    tex = styler.to_latex(
        hrules=True,
        caption=escape_text(caption),
        label=label,
        position="htbp",
        position_float="centering",
        column_format=align,
    )
    # \small like the captions; never shrunk further: a table that does not fit at this size is
    # too wide for a thesis page and must lose columns (the pdflatex test checks for overfull boxes)
    return tex.replace("\\centering\n", "\\centering\n\\small\n", 1)


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


def _records(df: pd.DataFrame) -> list[dict]:
    """Rows as JSON-safe dicts (NaN becomes null)."""
    frame = df.reset_index() if df.index.name is not None else df
    return [
        {str(k): (None if _missing(v) else v) for k, v in row.items()}
        for row in frame.to_dict(orient="records")
    ]


def write_table(
    df: pd.DataFrame,
    path_stem: str | Path,
    caption: str,
    label: str | None = None,
    float_format: str | Callable[[float], str] = "{:.3f}",
) -> dict[str, Path]:
    """Write ``<stem>.tex``, ``<stem>.csv`` and ``<stem>.json`` of one table.

    Args:
        label: LaTeX label; default ``tab:<stem name>``.

    Returns:
        ``{"tex": path, "csv": path, "json": path}``.
    """
    stem = Path(path_stem)
    paths = {ext: stem.parent / f"{stem.name}.{ext}" for ext in ("tex", "csv", "json")}
    tex = to_latex(readable(df), caption, label or f"tab:{stem.name}", float_format)
    write_text(paths["tex"], tex)
    write_text(paths["csv"], df.to_csv(index=df.index.name is not None))
    write_json(paths["json"], _records(df))
    return paths


def display_table(df: pd.DataFrame, digits: int = 3):
    """A table as a notebook shows it: like the thesis table (no index, ``digits`` decimals,
    ``--`` for missing values), as a pandas Styler."""
    body = df.reset_index() if df.index.name is not None else df
    return body.style.hide(axis="index").format(precision=digits, na_rep=MISSING, thousands=",")
