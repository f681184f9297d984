"""From a config to the table a run trains on: load, binarise, split, cache."""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import pandas as pd

from skinlib.config import Config
from skinlib.data.classes import class_list, to_binary
from skinlib.data.formats import load_table
from skinlib.data.splits import (
    CALIBRATION,
    apply_split,
    carve_calibration,
    fold_to_split,
    make_folds,
    make_split,
)
from skinlib.data.synthetic import ensure_synthderm
from skinlib.errors import ConfigError

log = logging.getLogger(__name__)


def data_root(cfg: Config, progress: bool = True) -> Path:
    """The dataset folder: ``data.root``, or SynthDerm generated into the cache when empty."""
    if cfg.data.root:
        return Path(cfg.data.root).expanduser()
    return ensure_synthderm(cfg.data.synth, progress=progress)


def data_source(cfg: Config) -> str:
    """What the data are, in words: a folder in a format, or SynthDerm (synthetic)."""
    data = cfg.data
    if data.root:
        return f"{data.root} ({data.format})"
    return f"SynthDerm in the {data.synth.classes.upper()} layout (synthetic)"


# how the images are fed, not which images nor how they are split: no table of their own
FEED_SETTINGS = ("image_size", "cache", "num_workers")


def table_settings(cfg: Config) -> str:
    """The ``data`` settings the table depends on, as a key: configs with equal keys share one
    table, so a study prepares it once, and a recipe or strategy that changes ``data.task``,
    ``data.fold``, ``data.split_seed`` (or any other of them) gets a table of its own.

    >>> from skinlib.config import Config
    >>> table_settings(Config()) == table_settings(Config())
    True
    """
    settings = dataclasses.asdict(cfg.data)
    for name in FEED_SETTINGS:
        settings.pop(name)
    return json.dumps(settings, sort_keys=True)


def prepare_table(cfg: Config, progress: bool = True) -> pd.DataFrame:
    """The labelled table with a ``split`` column (train/val/test, and calibration when
    ``data.calibration_fraction`` > 0), as the config describes.

    A saved split file (``data.split_file``) is read rather than recomputed; otherwise a grouped,
    stratified split is made with ``data.split_seed`` (or k folds, holding out ``data.fold``).
    A split file's own calibration rows are kept; a file without any gets them carved from its
    training rows when ``data.calibration_fraction`` asks for them.
    """
    table = load_table(data_root(cfg, progress), cfg.data.format, skip_missing=cfg.data.skip_bad)
    skipped = table.attrs.get("skipped_missing", 0)
    if cfg.data.task == "binary":
        table = to_binary(table, cfg.data.positive)
    elif cfg.data.task != "multiclass":
        raise ConfigError(f"data.task={cfg.data.task!r}; choose multiclass or binary")
    d = cfg.data
    if d.split_file:
        table = apply_split(table, d.split_file)
        if "split" not in table:
            table = fold_to_split(table, d.fold, d.val_frac, d.split_seed, d.calibration_fraction)
        elif d.calibration_fraction and CALIBRATION not in set(table["split"]):
            table = carve_calibration(table, d.calibration_fraction, d.split_seed)
    elif d.folds > 1:
        table = make_folds(table, d.folds, d.split_seed)
        table = fold_to_split(table, d.fold, d.val_frac, d.split_seed, d.calibration_fraction)
    else:
        table = make_split(table, d.val_frac, d.test_frac, d.split_seed, d.calibration_fraction)
    table.attrs["skipped_missing"] = skipped  # for the run's meta.json
    return table


def table_classes(table: pd.DataFrame, cfg: Config) -> list[str]:
    """Class order of a run: binary runs are [other, positive]."""
    if cfg.data.task == "binary":
        positive = [c for c in class_list(table) if c != "other"]
        return ["other", *positive]
    return class_list(table)
