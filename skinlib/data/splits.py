"""Leakage-proof splits: grouped by lesion (or patient), stratified by class, saved to a file.

Images of one lesion look alike; when they land in both training and test the test score is
inflated. Splits therefore keep every ``group`` in one split, and the audit refuses any overlap.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold

from skinlib.errors import DataError
from skinlib.io import atomic_write

SPLITS = ("train", "val", "test")


def _holdout(df: pd.DataFrame, frac: float, seed: int) -> np.ndarray:
    """Boolean mask of a grouped, stratified hold-out of about ``frac`` of the rows."""
    n_splits = max(2, round(1 / frac))
    sgkf = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    _, held = next(sgkf.split(df, df["label"], df["group"]))
    mask = np.zeros(len(df), dtype=bool)
    mask[held] = True
    return mask


def make_split(
    table: pd.DataFrame, val_frac: float = 0.15, test_frac: float = 0.15, seed: int = 0
) -> pd.DataFrame:
    """Train/val/test split, grouped by ``group`` and stratified by ``label``.

    Returns:
        A copy of ``table`` with a ``split`` column in {"train", "val", "test"}.
    """
    if not 0 < test_frac < 1 or not 0 < val_frac < 1 or val_frac + test_frac >= 1:
        raise DataError(
            f"split fractions val={val_frac}, test={test_frac} must be in (0, 1) and sum < 1"
        )
    out = table.reset_index(drop=True).copy()
    test = _holdout(out, test_frac, seed)
    rest = out[~test]
    val_rest = _holdout(rest, val_frac / (1 - test_frac), seed + 1)
    split = np.full(len(out), "train", dtype=object)
    split[test] = "test"
    split[np.flatnonzero(~test)[val_rest]] = "val"
    out["split"] = split
    audit_split(out)
    return out


def make_folds(table: pd.DataFrame, k: int = 5, seed: int = 0) -> pd.DataFrame:
    """K-fold cross-validation assignment (``fold`` column, 0..k-1), grouped and stratified."""
    if not 2 <= k <= 10:
        raise DataError(f"folds must be between 2 and 10, got {k}")
    out = table.reset_index(drop=True).copy()
    fold = np.zeros(len(out), dtype=int)
    sgkf = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    for i, (_, held) in enumerate(sgkf.split(out, out["label"], out["group"])):
        fold[held] = i
    out["fold"] = fold
    audit_split(out, "fold")
    return out


def fold_to_split(
    table: pd.DataFrame, fold: int, val_frac: float = 0.15, seed: int = 0
) -> pd.DataFrame:
    """Held-out ``fold`` becomes test; validation is carved from the other folds."""
    out = table.copy()
    test = (out["fold"] == fold).to_numpy()
    val = _holdout(out[~test], val_frac / (1 - test.mean()), seed + 1)
    split = np.full(len(out), "train", dtype=object)
    split[test] = "test"
    split[np.flatnonzero(~test)[val]] = "val"
    out["split"] = split
    return out


def shared_groups(table: pd.DataFrame, column: str = "split") -> pd.Series:
    """Groups that appear in more than one split (any assignment), with their split count."""
    counts = table.groupby("group")[column].nunique()
    return counts[counts > 1]


@dataclass
class SplitAudit:
    """What a split looks like: counts and shares per class and split, and overlap."""

    counts: pd.DataFrame  # rows = classes, columns = splits
    shares: pd.DataFrame  # class share within each split, plus "all"
    max_deviation: pd.Series  # per class: largest |share in split - share overall| (points)
    shared_groups: int

    def __str__(self) -> str:
        table = self.counts.copy()
        table["max_dev_pts"] = (self.max_deviation * 100).round(2)
        return f"{table.to_string()}\ngroups shared between splits: {self.shared_groups}"


def audit_split(
    table: pd.DataFrame, column: str = "split", raise_on_leak: bool = True
) -> SplitAudit:
    """Class counts per split; raises DataError if any group appears in two splits."""
    leaked = shared_groups(table, column)
    if raise_on_leak and len(leaked):
        raise DataError(
            f"{len(leaked)} groups appear in more than one {column} (e.g. "
            f"{list(leaked.index[:5])}); regenerate the split with skinlib split"
        )
    counts = pd.crosstab(table["label"], table[column])
    shares = counts / counts.sum(axis=0)
    overall = table["label"].value_counts(normalize=True).reindex(counts.index)
    deviation = shares.sub(overall, axis=0).abs().max(axis=1)
    shares["all"] = overall
    return SplitAudit(counts, shares, deviation, int(len(leaked)))


def file_hash(path: str | Path) -> str:
    """sha256 of a split file, recorded with every run."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def save_split(table: pd.DataFrame, path: str | Path) -> Path:
    """Write the assignment (image_id, group, label, split/fold and path) for later steps."""
    cols = [
        c
        for c in ("image_id", "group", "label", "split", "fold", "path", "mask_path")
        if c in table
    ]
    return atomic_write(path, lambda p: table[cols].to_csv(p, index=False))


def load_split(path: str | Path) -> pd.DataFrame:
    """Read a split file, checking its columns and that no group crosses splits."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"split file {path} not found; make one with `skinlib split`")
    df = pd.read_csv(path, dtype={"image_id": str, "group": str})
    need = {"image_id", "group", "label"}
    if need - set(df.columns) or not ({"split", "fold"} & set(df.columns)):
        raise DataError(
            f"{path}: expected columns image_id, group, label and split or fold; found {list(df.columns)}"
        )
    audit_split(df, "split" if "split" in df else "fold")
    return df


def apply_split(table: pd.DataFrame, split_file: str | Path) -> pd.DataFrame:
    """Attach a saved split to a freshly loaded table (by image id), refusing unknown ids."""
    split = load_split(split_file)
    cols = [c for c in ("split", "fold") if c in split]
    merged = table.merge(split[["image_id", *cols]], on="image_id", how="left")
    missing = merged[cols[0]].isna().sum()
    if missing:
        raise DataError(
            f"{split_file}: {missing} images of the dataset have no split (e.g. "
            f"{merged.loc[merged[cols[0]].isna(), 'image_id'].head(3).tolist()}); regenerate it"
        )
    return merged
