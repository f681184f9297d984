"""The overlap guard: an external set is another dataset minus every image the run has seen.

Every image the run trained or was selected on (its train and val splits), found by id, bytes,
perceptual hash or lesion (:mod:`skinlib.data.overlap`), is dropped, and so is every image of its
own test split: neither is external. Labels are mapped into the run's vocabulary first.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from skinlib.data import load_table
from skinlib.data.classes import canonical, map_labels, to_binary
from skinlib.data.formats import get_format
from skinlib.data.overlap import OverlapReport, flag_run_images
from skinlib.errors import DataError
from skinlib.runs.folder import RunFolder

log = logging.getLogger(__name__)


OVERLAP_COLUMNS = ["overlap_reason", "overlap_split", "overlap_image"]  # see flag_run_images


@dataclass
class GuardedSet:
    """An external dataset after the overlap guard: what may be scored and what may not."""

    table: pd.DataFrame  # truly external rows, labels in the run's vocabulary
    overlap: OverlapReport  # how many rows were dropped and why; ``overlap.excluded`` lists them


def external_set(
    loaded,
    root: str | Path,
    format: str,
    drop_unmapped: bool = False,
    progress: bool = True,
    skip_missing: bool = False,
) -> GuardedSet:
    """Another dataset's images with labels in the run's vocabulary, minus the run's own images.

    Binary runs see the same positive set; multi-class runs need every class to have a
    counterpart (``drop_unmapped`` drops the rows that have none, e.g. ISIC 2019's scc for a
    HAM10000 model, and says how many).

    Every image the run trained or was selected on (its train and val splits), found by id,
    bytes, perceptual hash or lesion (:mod:`skinlib.data.overlap`), is dropped, and so is every
    image of its own test split: neither is external. There is no way around this guard.

    Raises:
        DataError: the run has no ``split.csv`` to check against, or no external image remains.
    """
    loaded_table = load_table(root, format, skip_missing=skip_missing)
    table = _labelled_external(loaded, loaded_table, format, drop_unmapped)
    table.attrs["skipped_missing"] = int(loaded_table.attrs.get("skipped_missing", 0))
    flagged, report = flag_run_images(table, _run_split(loaded.run_dir), progress=progress)
    log.info("%s: %s", root, report.message())
    if report.unhashed_run:
        log.warning(
            "%d of the run's images could not be read (moved since training?): they were "
            "compared by id and lesion only, not by content",
            report.unhashed_run,
        )
    if report.kept == 0:
        raise DataError(
            f"no external images in {root}: {report.message()}; evaluate the run on its "
            "predictions_test.csv instead, or on a dataset it did not train on"
        )
    kept = flagged[flagged["overlap_reason"].isna()].drop(columns=OVERLAP_COLUMNS)
    kept = kept.reset_index(drop=True)
    kept.attrs["skipped_missing"] = table.attrs["skipped_missing"]
    return GuardedSet(kept, report)


def _labelled_external(loaded, table: pd.DataFrame, format: str, drop_unmapped: bool):
    """``table`` with labels in the run's vocabulary (rows without a counterpart dropped)."""
    if loaded.config.data.task == "binary":
        positive = loaded.config.data.positive
        if get_format(format).binary:  # already melanoma vs rest (ISIC 2020)
            return table.assign(
                label=table["label"].map({"mel": "+".join(sorted(positive)), "other": "other"})
            )
        return to_binary(table, positive)
    if drop_unmapped:
        keep = table["label"].map(lambda x: (canonical(x) or x) in loaded.classes)
        if (~keep).any():
            log.warning(
                "dropping %d images whose class has no counterpart in %s",
                int((~keep).sum()),
                loaded.classes,
            )
        table = table[keep]
    return map_labels(table, loaded.classes).reset_index(drop=True)


def _run_split(run_dir: Path) -> pd.DataFrame:
    """Every row of the run's split file (train, val and test): what the guard checks against."""
    folder = RunFolder(run_dir)
    if not folder.split_file.is_file():
        raise DataError(
            f"{folder.split_file} not found: external validation needs the run's split file to "
            "exclude the images it trained, was selected or tested on; evaluate a finished "
            "skinlib run"
        )
    return folder.split_table()
