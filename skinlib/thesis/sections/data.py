"""Data, split and preprocessing: what the images are, how they were split, how they enter."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from skinlib.config import Config
from skinlib.data.formats import FORMATS
from skinlib.data.splits import CALIBRATION, SPLITS
from skinlib.thesis.citations import citation
from skinlib.thesis.phrasing import (
    by_value,
    disagreement,
    flatten,
    fmt,
    name_list,
    per_run,
    recorded,
)
from skinlib.thesis.records import RunRecord, StudyRecord
from skinlib.thesis.sections.augmentation import describe_augmentation
from skinlib.thesis.sections.base import Section, group_unit, non_empty, percent, short_sha


def data_section(study: StudyRecord) -> Section:
    runs = study.architectures or list(study.strategies.values())
    cfg = runs[0].config
    paras = [non_empty(_dataset_sentence(cfg), *_count_sentences(runs), _skipped_sentence(runs))]
    return Section("Data", "sec:methods-data", paras)


def _dataset_sentence(cfg: Config) -> str:
    if not cfg.data.root:
        s = cfg.data.synth
        shares = "equal class shares" if s.balanced else "the class shares of HAM10000"
        return (
            f"The images are SynthDerm, a synthetic dataset that skinlib generates in the layout "
            f"of HAM10000{citation('tschandl2018ham10000')} ({fmt(s.n)} images of {s.size} px, "
            f"{s.classes} classes with {shares}, difficulty {s.difficulty:g}, seed {s.seed}). "
            "They are procedural images, not dermoscopy: this is an in-silico study of the method, "
            "and its results make no clinical claim."
        )
    spec = FORMATS.get(cfg.data.format)
    if spec and spec.description:
        name, keys = spec.description, spec.citations
    else:
        name, keys = f"a `{cfg.data.format}` dataset", ()
    return (
        f"The images are {name}{citation(*keys)}; the study is "
        "retrospective (the data were collected and published before it)."
    )


def _count_sentences(runs: Sequence[RunRecord]) -> list[str]:
    first = runs[0]
    unit = group_unit(first)
    split = first.split
    counts = split["label"].value_counts()
    per_class = ", ".join(f"{c} {fmt(int(n))}" for c, n in counts.items())
    out = [
        f"The study uses {fmt(len(split))} images of {fmt(split['group'].nunique())} "
        f"{unit}s in {len(counts)} classes ({per_class})."
    ]
    task = by_value(runs, lambda r: r.config.data.task)
    if "binary" in task:
        out.append(
            "The task is binary: "
            + per_run(runs, lambda r: " + ".join(r.config.data.positive))
            + " against all other classes."
        )
    return out


def _skipped_sentence(runs: Sequence[RunRecord]) -> str:
    def total(run: RunRecord) -> int:
        skipped = recorded(run, "skipped_images", default={}) or {}
        values = flatten(skipped).values() if isinstance(skipped, dict) else [skipped]
        return int(sum(v for v in values if isinstance(v, int | float)))

    if not any(total(r) for r in runs):
        return "No image was skipped as missing or unreadable."
    return f"Images skipped as missing or unreadable: {per_run(runs, total)}."


def split_section(study: StudyRecord) -> Section:
    runs = study.architectures or list(study.strategies.values())
    first = runs[0]
    d = first.config.data
    unit = group_unit(first)
    how = (
        f"taken from the split file `{d.split_file}`"
        if d.split_file
        else "made by skinlib with scikit-learn's StratifiedGroupKFold"
        + citation("pedregosa2011sklearn")
    )
    sets = (
        "training, validation, test and calibration"
        if has_calibration(runs)
        else ("training, validation and test")
    )
    sentences = [
        f"The images were assigned to {sets} sets grouped by {unit}, so "
        f"that no {unit} appears in two sets, and stratified by class; the assignment was {how}, "
        f"with split seed {per_run(runs, lambda r: r.config.data.split_seed)}.",
        "The source gave no lesion or patient ids, so the split is at the image level: images "
        "of one lesion may sit in two sets, which can inflate the test results."
        if unit == "image"
        else "",
    ]
    if d.folds > 1:
        sentences.append(
            f"Cross-validation used {d.folds} folds; fold {per_run(runs, lambda r: r.config.data.fold)} "
            "was held out as the test set."
        )
    else:
        cal = d.calibration_fraction
        requested = [1 - d.val_frac - d.test_frac - cal, d.val_frac, d.test_frac]
        requested += [cal] if cal else []
        sentences.append(
            f"Requested fractions (training/validation/test{'/calibration' if cal else ''}): "
            + "/".join(percent(x) for x in requested)
            + "; achieved, in images: "
            + _achieved(first.split)
            + "."
        )
    sentences.append(_calibration_split_sentence(runs, unit))
    sentences += [
        f"The split file's SHA-256 begins {per_run(runs, lambda r: short_sha(recorded(r, 'split_sha256')))}.",
        disagreement(runs, lambda r: short_sha(recorded(r, "split_sha256")), "the split file"),
    ]
    return Section("Data split", "sec:methods-split", [non_empty(*sentences)])


def _normalisation(run: RunRecord) -> str:
    mean, std = recorded(run, "data_config", "mean"), recorded(run, "data_config", "std")
    if not mean or not std:
        return "not recorded"
    means, stds = fmt([round(m, 3) for m in mean]), fmt([round(x, 3) for x in std])
    return f"mean ({means}), standard deviation ({stds})"


def has_calibration(runs: Sequence[RunRecord]) -> bool:
    """Some run's split file holds a calibration split (what the runs saw, not the profile)."""
    return any((r.split["split"] == CALIBRATION).any() for r in runs)


def _calibration_split_sentence(runs: Sequence[RunRecord], unit: str) -> str:
    """What the calibration split is, where the split files hold one (what the runs saw)."""
    with_split = [r for r in runs if (r.split["split"] == CALIBRATION).any()]
    if not with_split:
        return ""
    who = "" if len(with_split) == len(runs) else f" of {name_list([r.name for r in with_split])}"
    return (
        f"A calibration split{who} was carved out of the training images, grouped by {unit} and "
        "stratified by class like the others, so that validation only selects (the checkpoint "
        "and the recipe) while post-hoc calibration is fitted on images that neither trained "
        "nor selected the model."
    )


def _achieved(split: pd.DataFrame) -> str:
    n = split["split"].value_counts()
    counts = [int(n.get(s, 0)) for s in SPLITS if s != CALIBRATION or s in n.index]
    shares = "/".join(percent(c / max(1, sum(counts))) for c in counts)
    return f"{shares} ({'/'.join(fmt(c) for c in counts)} images)"


def preprocessing_section(study: StudyRecord) -> Section:
    runs = study.architectures or list(study.strategies.values())
    size = per_run(runs, lambda r: recorded(r, "image_size"), " px")
    interp = per_run(
        runs, lambda r: recorded(r, "data_config", "interpolation", default="bilinear")
    )
    stats = per_run(runs, _normalisation)
    sentences = [
        f"For evaluation, each image was resized ({interp} interpolation) and centre-cropped to "
        f"the model's input size, {size}; every image was normalised with the statistics of the "
        f"model's pretrained configuration in timm{citation('wightman2019timm')} ({stats}).",
        "Images were pre-resized once into an on-disk cache before training."
        if all(r.config.data.cache for r in runs)
        else "",
    ]
    augment = by_value(runs, lambda r: r.config.train.augment)
    for preset, names in augment.items():
        who = "" if len(augment) == 1 else f" ({name_list(names)})"
        sentences.append(
            f"Training images{who} went through the `{preset}` augmentation preset: "
            f"{describe_augmentation(preset)}."
        )
    mix = by_value(runs, lambda r: (r.config.train.mixup, r.config.train.cutmix))
    if any(v != "0, 0" for v in mix):
        sentences.append(
            "Mixup"
            + citation("zhang2018mixup")
            + " and CutMix"
            + citation("yun2019cutmix")
            + " alphas: "
            + per_run(runs, lambda r: (r.config.train.mixup, r.config.train.cutmix))
            + "."
        )
    if any(r.config.train.progressive_resize for r in runs):
        sentences.append(
            "Progressive resizing (from half the resolution to the full one by mid-training): "
            + per_run(runs, lambda r: r.config.train.progressive_resize)
            + "."
        )
    return Section("Preprocessing and augmentation", "sec:methods-preprocessing", [sentences])
