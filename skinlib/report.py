"""Tables for the thesis: LaTeX (booktabs) next to CSV and JSON copies of the same numbers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from skinlib.io import write_json, write_text


def format_ci(value: float, low: float, high: float, digits: int = 3) -> str:
    """``0.812 [0.781, 0.843]``; a dash when the value is missing."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "--"
    return f"{value:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def _number(value: float, float_format: str) -> str:
    """Three decimals for rates and errors; fewer for large numbers (sizes, images/s)."""
    if pd.isna(value):
        return "--"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return float_format.format(value)


def to_latex(df: pd.DataFrame, caption: str, label: str, float_format: str = "{:.3f}") -> str:
    """A booktabs table; underscores, percent signs and ampersands are escaped."""
    body = df.copy()
    for col in body.columns:
        if pd.api.types.is_float_dtype(body[col]):
            body[col] = body[col].map(lambda v: _number(v, float_format))
    styler = body.style.hide(axis="index") if body.index.name is None else body.style
    styler = styler.format(escape="latex").format_index(escape="latex", axis=1)
    if body.index.name is not None:
        styler = styler.format_index(escape="latex", axis=0)
    return styler.to_latex(
        hrules=True,
        caption=caption.replace("%", r"\%"),
        label=label,
        position="htbp",
        position_float="centering",
    )


def write_table(
    df: pd.DataFrame,
    stem: str | Path,
    caption: str,
    label: str | None = None,
    float_format: str = "{:.3f}",
) -> dict[str, Path]:
    """Write ``stem.tex``, ``stem.csv`` and ``stem.json``."""
    stem = Path(stem)
    label = label or f"tab:{stem.name}"
    paths = {
        "tex": stem.with_suffix(".tex"),
        "csv": stem.with_suffix(".csv"),
        "json": stem.with_suffix(".json"),
    }
    write_text(paths["tex"], to_latex(df, caption, label, float_format))
    write_text(paths["csv"], df.to_csv(index=df.index.name is not None))
    write_json(
        paths["json"],
        df.reset_index().to_dict(orient="records")
        if df.index.name
        else df.to_dict(orient="records"),
    )
    return paths
