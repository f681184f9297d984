"""Tables for the thesis: LaTeX (booktabs) next to CSV and JSON copies of the same numbers.

The cells are formatted by :mod:`skinlib.formatting`; this module only writes the files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from skinlib.formatting import MISSING, is_missing, readable
from skinlib.io import write_json, write_text
from skinlib.thesis.latex import latex_escape


def _number(value: float, float_format: str | Callable[[float], str]) -> str:
    """``float_format`` for rates and errors; fewer decimals for large numbers (sizes, img/s)."""
    if is_missing(value):
        return MISSING
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return float_format(value) if callable(float_format) else float_format.format(value)


def to_latex(
    df: pd.DataFrame,
    caption: str,
    label: str,
    float_format: str | Callable[[float], str] = "{:.3f}",
) -> str:
    """A booktabs ``table`` (``\\toprule``/``\\midrule``/``\\bottomrule``), cells escaped.

    A named index becomes the first column. Float columns go through ``float_format`` (numbers of
    10 and more get fewer decimals); strings (e.g. :func:`~skinlib.formatting.format_ci` cells) are kept as written
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
        caption=latex_escape(caption, math=True),
        label=label,
        position="htbp",
        position_float="centering",
        column_format=align,
    )
    # \small like the captions; never shrunk further: a table that does not fit at this size is
    # too wide for a thesis page and must lose columns (the pdflatex test checks for overfull boxes)
    return tex.replace("\\centering\n", "\\centering\n\\small\n", 1)


def _records(df: pd.DataFrame) -> list[dict]:
    """Rows as JSON-safe dicts (NaN becomes null)."""
    frame = df.reset_index() if df.index.name is not None else df
    return [
        {str(k): (None if is_missing(v) else v) for k, v in row.items()}
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
