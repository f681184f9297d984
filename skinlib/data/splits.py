"""Leakage-proof splits: grouped by lesion (or patient), stratified by class, saved to a file.

Images of one lesion look alike; when they land in both training and test the test score is
inflated. Splits therefore keep every ``group`` in one split, and the audit refuses any overlap.
Split files are written once (``skinlib split``) and read by later steps, never recomputed.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold

from skinlib.errors import DataError
from skinlib.io import atomic_write

log = logging.getLogger(__name__)

CALIBRATION = "calibration"  # post-hoc calibration's own split (data.calibration_fraction > 0)
SPLITS = ("train", "val", "test", CALIBRATION)  # a split file holds the first three, or all four
SPLIT_NAMES = {"train": "training", "val": "validation", "test": "test", CALIBRATION: "calibration"}


def split_name(split: str | None) -> str:
    """A split in words, as the text names it (what a record holds when it is not a split).

    >>> split_name("val"), split_name("calibration"), split_name(None)
    ('validation', 'calibration', '(not recorded)')
    """
    return SPLIT_NAMES.get(split or "", split or "(not recorded)")


def on_split(split: str | None) -> str:
    """Where something was chosen or fitted, as a sentence says it after "on".

    >>> on_split("val"), on_split("calibration")
    ('validation', 'the calibration split')
    """
    return "validation" if split == "val" else f"the {split_name(split)} split"


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


MAX_FOLDS = 20  # finest grid of fractions (5 %); StratifiedGroupKFold's time grows with folds
FRACTION_TOLERANCE = 0.005  # accept the first fold count that hits every share within 0.5 pts


def _fold_plan(
    fracs: tuple[float, ...], n_groups: int, rarest: int | None = None
) -> tuple[int, list[int]]:
    """How many folds to cut and how many of them each held-out part takes.

    Every part gets whole StratifiedGroupKFold folds (equal in size to an image or so on
    thousands of groups), so part ``i`` holds ``counts[i] / k`` of the rows and the rest is
    left over. ``k`` is the smallest fold count whose shares all lie within
    ``FRACTION_TOLERANCE`` of the request, else the closest one up to ``MAX_FOLDS``: 70/15/15
    needs 20 folds (14/3/3); the 7 folds of round(1/0.15) gave 71.4/14.3/14.3.

    Args:
        fracs: requested shares of the held-out parts (e.g. test, val), summing below 1.
        n_groups: groups available; never more folds than groups.
        rarest: groups of the rarest class; no more folds than that (unless one fold per part
            needs more), so that every fold, and so every split, still gets that class.

    Returns:
        (k, folds per held-out part).
    """
    least = max(2, *(round(1 / f) for f in fracs))  # folds the coarsest one-fold plan needs
    if n_groups < least:
        raise DataError(
            f"only {n_groups} groups (lesions/patients) for {least} folds; add data or hold "
            "out a larger fraction"
        )
    most = min(MAX_FOLDS, n_groups, max(least, rarest or n_groups))
    best: tuple[float, int, list[int]] | None = None
    for k in range(2, most + 1):
        counts = [max(1, round(f * k)) for f in fracs]
        if sum(counts) >= k:  # the remainder (train) needs a fold too
            continue
        shares = [c / k for c in counts]
        error = max(
            abs(1 - sum(shares) - (1 - sum(fracs))),
            *(abs(s - f) for s, f in zip(shares, fracs, strict=True)),
        )
        if error <= FRACTION_TOLERANCE:
            return k, counts
        if best is None or error < best[0]:
            best = (error, k, counts)
    if best is None:
        raise DataError(f"cannot hold out {fracs} of {n_groups} groups; add data")
    return best[1], best[2]


def _grouped_parts(table: pd.DataFrame, fracs: tuple[float, ...], seed: int) -> np.ndarray:
    """Part of each row: 0..len(fracs)-1 for the held-out parts, len(fracs) for the rest.

    Grouped and stratified because each part is a union of StratifiedGroupKFold folds.
    """
    rarest = int(table.groupby("label")["group"].nunique().min())
    k, counts = _fold_plan(fracs, table["group"].nunique(), rarest)
    part = np.full(len(table), len(fracs), dtype=int)
    folds = iter(_grouped_folds(table, k, seed))
    for i, count in enumerate(counts):
        for held in itertools.islice(folds, count):
            part[held] = i
    return part


def split_fractions(table: pd.DataFrame, column: str = "split") -> dict[str, float]:
    """Share of the images in each split (or fold), as achieved; recorded in a run's meta.json.

    >>> split_fractions(pd.DataFrame({"split": ["train", "train", "val", "test"]}))
    {'train': 0.5, 'val': 0.25, 'test': 0.25}
    """
    shares = table[column].value_counts(normalize=True)
    order = [s for s in SPLITS if s in shares.index] + sorted(
        (s for s in shares.index if s not in SPLITS), key=str
    )
    return {str(s): float(shares[s]) for s in order}


def make_split(
    table: pd.DataFrame,
    val_frac: float = 0.15,
    test_frac: float = 0.15,
    seed: int = 0,
    calibration_frac: float = 0.0,
) -> pd.DataFrame:
    """Train/val/test split, grouped by ``group`` and stratified by ``label``; with
    ``calibration_frac`` > 0 also a calibration split, carved out of training
    (:func:`carve_calibration`).

    One StratifiedGroupKFold (shuffled by ``seed``) cuts ``k`` folds; test takes the first ones
    and validation the next, so each share is a multiple of ``1/k`` within half a point of the
    request (70/15/15: 20 folds, 14/3/3). A given seed always gives the same split; the
    achieved shares are in :func:`audit_split` and a run's meta.json.

    Args:
        calibration_frac: share of all images for the calibration split (0 = none: the split is
            exactly the one made without it). Test and validation are the same either way.

    Returns:
        A copy of ``table`` (index reset) with a ``split`` column in {"train", "val", "test"},
        plus "calibration" when ``calibration_frac`` > 0.
    """
    _check_fractions(val_frac, test_frac, calibration_frac)
    out = table.reset_index(drop=True).copy()
    part = _grouped_parts(out, (test_frac, val_frac), seed)
    out["split"] = np.array(["test", "val", "train"], dtype=object)[part]
    train = 1 - val_frac - test_frac - calibration_frac
    requested = {"train": train, "val": val_frac, "test": test_frac}
    if calibration_frac:
        out = carve_calibration(out, calibration_frac, seed)
        requested[CALIBRATION] = calibration_frac
    audit = audit_split(out)
    _warn_if_off(audit.fractions, requested)
    return out


def _check_fractions(val_frac: float, test_frac: float, calibration_frac: float = 0.0) -> None:
    """Each share in (0, 1) (calibration in [0, 1)), and training left with some images."""
    if not (
        0 < test_frac < 1
        and 0 < val_frac < 1
        and 0 <= calibration_frac < 1
        and val_frac + test_frac + calibration_frac < 1
    ):
        cal = f", calibration={calibration_frac}" if calibration_frac else ""
        raise DataError(
            f"split fractions val={val_frac}, test={test_frac}{cal} must each be in (0, 1) and "
            "sum to less than 1"
        )


def carve_calibration(table: pd.DataFrame, fraction: float, seed: int = 0) -> pd.DataFrame:
    """Move ``fraction`` of all images from training into a ``calibration`` split.

    The calibration split is taken from the training images, grouped and stratified like the
    others (whole StratifiedGroupKFold folds of the training rows, shuffled by ``seed`` + 2), so
    no lesion of it is in another split, and validation and test stay exactly as they were:
    a run with a calibration split is tested on the same images as one without.

    Args:
        table: rows with ``group``, ``label`` and a ``split`` column holding "train" rows.
        fraction: share of all rows of ``table`` to move (0 < fraction < training share).

    Returns:
        A copy of ``table`` with some "train" rows now "calibration".
    """
    out = table.copy()
    train = (out["split"] == "train").to_numpy()
    if not 0 < fraction < train.mean():
        raise DataError(
            f"calibration fraction {fraction} must be in (0, {train.mean():.3f}), the training "
            "share it is carved from"
        )
    held = _grouped_parts(out[train], (fraction / train.mean(),), seed + 2) == 0
    split = out["split"].to_numpy(dtype=object).copy()
    split[np.flatnonzero(train)[held]] = CALIBRATION
    out["split"] = split
    return out


def _warn_if_off(achieved: dict[str, float], requested: dict[str, float]) -> None:
    """Say so when few groups leave a share more than a point from the request."""
    off = {
        s: round(achieved.get(s, 0.0), 3)
        for s, f in requested.items()
        if abs(achieved.get(s, 0.0) - f) > 0.01
    }
    if off:
        log.warning(
            "split shares %s differ from the requested %s by more than 1 point (few groups)",
            off,
            requested,
        )


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
    table: pd.DataFrame,
    fold: int,
    val_frac: float = 0.15,
    seed: int = 0,
    calibration_frac: float = 0.0,
) -> pd.DataFrame:
    """Held-out ``fold`` becomes test; validation is carved (grouped) from the other folds, and
    with ``calibration_frac`` > 0 a calibration split from what training is left
    (:func:`carve_calibration`)."""
    if fold not in set(table["fold"]):
        raise DataError(f"fold {fold} not in the fold column ({sorted(set(table['fold']))})")
    out = table.reset_index(drop=True).copy()
    test = (out["fold"] == fold).to_numpy()
    val = _grouped_parts(out[~test], (val_frac / (1 - test.mean()),), seed + 1) == 0
    split = np.full(len(out), "train", dtype=object)
    split[test] = "test"
    split[np.flatnonzero(~test)[val]] = "val"
    out["split"] = split
    if calibration_frac:
        out = carve_calibration(out, calibration_frac, seed)
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
    fractions: dict[str, float] = field(default_factory=dict)  # share of images per split

    @property
    def max_share_deviation(self) -> float:
        """Largest deviation of any class in any split (0..1)."""
        return float(self.max_deviation.max())

    def __str__(self) -> str:
        table = self.counts.copy()
        table["all"] = table.sum(axis=1)
        table["max dev (pts)"] = (self.max_deviation * 100).round(2)
        shares = ", ".join(f"{s} {f:.1%}" for s, f in self.fractions.items())
        return (
            f"{table.to_string()}\nimages per split: {shares}\n"
            f"groups shared between splits: {self.shared_groups}"
        )


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
    return SplitAudit(counts, shares, deviation, int(len(leaked)), split_fractions(table, column))


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
