"""Leakage-proof splits: grouped by lesion (or patient), stratified by class, saved to a file.

Images of one lesion look alike; when they land in both training and test the test score is
inflated. Splits therefore keep every ``group`` in one split, and the audit refuses any overlap.
Split files are written once (``skinlib split``) and read by later steps, never recomputed.
"""

from __future__ import annotations

import hashlib
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold

from skinlib.errors import DataError
from skinlib.io import atomic_write

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
SPLIT_FILE_COLUMNS = ("image_id", "group", "label", "split", "fold", "path", "mask_path")


def _grouped_folds(table: pd.DataFrame, n_splits: int, seed: int) -> list[np.ndarray]:
    """Held-out row indices of each StratifiedGroupKFold fold (shuffled by ``seed``)."""
    n_groups = table["group"].nunique()
    if n_groups < n_splits:
        raise DataError(
            f"only {n_groups} groups (lesions/patients) for {n_splits} folds; add data or hold "
            "out a larger fraction"
        )
    per_class = table.groupby("label")["group"].nunique()
    if (rare := per_class[per_class < n_splits]).any():
        log.warning(
            "classes %s have fewer groups than the %d folds; some splits will lack them",
            rare.to_dict(),
            n_splits,
        )
    sgkf = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    with warnings.catch_warnings():  # reported above in our words
        warnings.filterwarnings("ignore", "The least populated class", UserWarning)
        return [held for _, held in sgkf.split(table, table["label"], table["group"])]


def _holdout(table: pd.DataFrame, frac: float, seed: int) -> np.ndarray:
    """Boolean mask of a grouped, stratified hold-out of about ``frac`` of the rows.

    The first of round(1/frac) StratifiedGroupKFold folds (15 % -> 7 folds -> 14.3 %).
    """
    held = _grouped_folds(table, max(2, round(1 / frac)), seed)[0]
    mask = np.zeros(len(table), dtype=bool)
    mask[held] = True
    return mask


def make_split(
    table: pd.DataFrame, val_frac: float = 0.15, test_frac: float = 0.15, seed: int = 0
) -> pd.DataFrame:
    """Train/val/test split, grouped by ``group`` and stratified by ``label``.

    Test is carved first, then validation from the rest (seeds ``seed`` and ``seed + 1``), so a
    given seed always gives the same split.

    Returns:
        A copy of ``table`` (index reset) with a ``split`` column in {"train", "val", "test"}.
    """
    if not (0 < test_frac < 1 and 0 < val_frac < 1 and val_frac + test_frac < 1):
        raise DataError(
            f"split fractions val={val_frac}, test={test_frac} must each be in (0, 1) and sum "
            "to less than 1"
        )
    out = table.reset_index(drop=True).copy()
    test = _holdout(out, test_frac, seed)
    val_in_rest = _holdout(out[~test], val_frac / (1 - test_frac), seed + 1)
    split = np.full(len(out), "train", dtype=object)
    split[test] = "test"
    split[np.flatnonzero(~test)[val_in_rest]] = "val"
    out["split"] = split
    audit_split(out)
    return out


def make_folds(table: pd.DataFrame, k: int = 5, seed: int = 0) -> pd.DataFrame:
    """K-fold cross-validation assignment (``fold`` column, 0..k-1), grouped and stratified."""
    if not 2 <= k <= 10:
        raise DataError(f"folds must be between 2 and 10, got {k}")
    out = table.reset_index(drop=True).copy()
    fold = np.zeros(len(out), dtype=int)
    for i, held in enumerate(_grouped_folds(out, k, seed)):
        fold[held] = i
    out["fold"] = fold
    audit_split(out, "fold")
    return out


def fold_to_split(
    table: pd.DataFrame, fold: int, val_frac: float = 0.15, seed: int = 0
) -> pd.DataFrame:
    """Held-out ``fold`` becomes test; validation is carved (grouped) from the other folds."""
    if fold not in set(table["fold"]):
        raise DataError(f"fold {fold} not in the fold column ({sorted(set(table['fold']))})")
    out = table.reset_index(drop=True).copy()
    test = (out["fold"] == fold).to_numpy()
    val = _holdout(out[~test], val_frac / (1 - test.mean()), seed + 1)
    split = np.full(len(out), "train", dtype=object)
    split[test] = "test"
    split[np.flatnonzero(~test)[val]] = "val"
    out["split"] = split
    return out


def shared_groups(table: pd.DataFrame, column: str = "split") -> pd.Series:
    """Groups that appear in more than one split (of any assignment), with their split count."""
    counts = table.groupby("group")[column].nunique()
    return counts[counts > 1]


def count_shared_groups(groups, assignment) -> int:
    """How many groups an assignment puts in more than one split (0 for a grouped split).

    >>> count_shared_groups(["a", "a", "b"], ["train", "test", "train"])
    1
    """
    frame = pd.DataFrame({"group": np.asarray(groups), "split": np.asarray(assignment)})
    return len(shared_groups(frame))


@dataclass
class SplitAudit:
    """What a split looks like: counts and shares per class and split, and overlap."""

    counts: pd.DataFrame  # rows = classes, columns = splits, values = images
    shares: pd.DataFrame  # class share within each split (0..1), plus "all" (the whole table)
    max_deviation: pd.Series  # per class: largest |share in a split - share overall| (0..1)
    shared_groups: int  # groups found in more than one split (0 for a sound split)

    @property
    def max_share_deviation(self) -> float:
        """Largest deviation of any class in any split (0..1)."""
        return float(self.max_deviation.max())

    def __str__(self) -> str:
        table = self.counts.copy()
        table["all"] = table.sum(axis=1)
        table["max dev (pts)"] = (self.max_deviation * 100).round(2)
        return f"{table.to_string()}\ngroups shared between splits: {self.shared_groups}"


def audit_split(
    table: pd.DataFrame, column: str = "split", raise_on_leak: bool = True
) -> SplitAudit:
    """Class counts and shares per split, and their deviation from the whole.

    Raises:
        DataError: if any group appears in two splits (naming a few), unless ``raise_on_leak``
            is False (to measure a leaky split).
    """
    leaked = shared_groups(table, column)
    if raise_on_leak and len(leaked):
        raise DataError(
            f"{len(leaked)} groups appear in more than one {column} (e.g. "
            f"{list(leaked.index[:5])}); regenerate the split with `skinlib split`"
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
    """Write the assignment (image_id, group, label, split/fold, and paths when known)."""
    cols = [c for c in SPLIT_FILE_COLUMNS if c in table and table[c].notna().any()]
    return atomic_write(path, lambda p: table[cols].to_csv(p, index=False))


def load_split(path: str | Path) -> pd.DataFrame:
    """Read a split file, checking its columns, values and that no group crosses splits."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"split file {path} not found; make one with `skinlib split`")
    df = pd.read_csv(path, dtype={"image_id": str, "group": str, "label": str, "split": str})
    column = "split" if "split" in df else "fold"
    if {"image_id", "group", "label"} - set(df.columns) or column not in df:
        raise DataError(
            f"{path}: expected columns image_id, group, label and split or fold; "
            f"found {list(df.columns)}; regenerate it with `skinlib split`"
        )
    if column == "split" and (bad := set(df["split"]) - set(SPLITS)):
        raise DataError(f"{path}: unknown split names {sorted(map(str, bad))}; expected {SPLITS}")
    if (dup := df["image_id"].duplicated()).any():
        raise DataError(
            f"{path}: image ids listed twice, e.g. {df.loc[dup, 'image_id'].head(3).tolist()}"
        )
    try:
        audit_split(df, column)
    except DataError as err:
        raise DataError(f"{path}: {err}") from None
    return df


def apply_split(table: pd.DataFrame, split_file: str | Path) -> pd.DataFrame:
    """Attach a saved split to a freshly loaded table (by image id), refusing unknown ids."""
    split = load_split(split_file)
    cols = [c for c in ("split", "fold") if c in split]
    merged = table.merge(split[["image_id", *cols]], on="image_id", how="left")
    missing = merged[cols[0]].isna()
    if missing.any():
        raise DataError(
            f"{split_file}: {int(missing.sum())} images of the dataset have no split (e.g. "
            f"{merged.loc[missing, 'image_id'].head(3).tolist()}); regenerate it"
        )
    return merged
