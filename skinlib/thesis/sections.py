"""The sections of the thesis's methods chapter, written from what the runs recorded: profile, ``config.yaml``,
``meta.json``, ``split.csv``, ``calibration.json``, ``thresholds.json``, and the files the later
steps leave (``predictions_test_tta.csv``, ``ensemble.json``, the notebooks' tables).

A sentence about a step (TTA, maps, conformal sets, deferral, paired tests) appears only where
that step's file exists: the profile says what a step would do, not that it ran (``pipeline
--only`` skips steps).

Every sentence is built from recorded values (:mod:`skinlib.thesis.records` reads them). A setting the
runs share is stated once; a setting they do not share is stated per run, and where it should have
been shared (seed, split, package versions, commit) the text says that the runs disagree instead of
picking one. Sentences are written in :mod:`skinlib.thesis.latex`'s markup (`` `code` ``, ``[@key]``
citations of ``thesis/references.bib``, :mod:`skinlib.thesis.citations`); :mod:`skinlib.thesis.write`
renders and writes them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from skinlib.config import Config
from skinlib.data.formats import FORMATS
from skinlib.data.splits import CALIBRATION, SPLITS, on_split, split_name
from skinlib.data.transforms import build_batch_augment, build_transforms
from skinlib.evaluation.calibration import N_BINS
from skinlib.inference.scoring import TTA_VIEWS
from skinlib.models.architectures import resolve_arch
from skinlib.profile import NEUTRAL_IMBALANCE
from skinlib.runs.ledger import LEDGER, scored_before
from skinlib.thesis.citations import ARCH_PAPERS, CONFORMAL_PAPERS, SOFTWARE, XAI_PAPERS, citation
from skinlib.thesis.phrasing import (
    by_value,
    config_differences,
    disagreement,
    flatten,
    fmt,
    name_list,
    per_run,
    recorded,
)
from skinlib.thesis.records import RunRecord, StudyRecord

# --- words for settings ----------------------------------------------------------------------


def group_unit(run: RunRecord) -> str:
    """What a split group is: lesion, patient, or image where the source gave no group ids."""
    split = run.split
    if split["group"].nunique() == len(split) or split["group"].equals(split["image_id"]):
        return "image"
    name = run.config.data.format
    return FORMATS[name].group_unit if name in FORMATS else "group"


def _percent(x: float) -> str:
    return f"{100 * x:.1f}%"


def describe_augmentation(preset: str, size: int = 224) -> str:
    """The training augmentation of a preset in words, read off the transform skinlib builds.

    >>> describe_augmentation("none")
    'no augmentation'
    """
    stats = {"mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5)}
    if preset == "none":
        return "no augmentation"
    ops = build_transforms(stats, train=True, augment=preset, size=size).transforms
    ops = [*ops, build_batch_augment(stats, preset)]
    words = [w for w in (_describe_op(op) for op in ops) if w]
    return ", ".join(words)


def _range(pair: Sequence[float], scale: float = 1.0, digits: int = 2) -> str:
    low, high = (round(v * scale, digits) for v in pair)
    return f"{low:g}-{high:g}"


def _describe_op(op) -> str:
    """One torchvision v2 transform in words; preprocessing steps (resize, normalise) are skipped."""
    name = type(op).__name__
    if name == "RandomResizedCrop":
        return (
            f"random resized crops of {_range(op.scale, 100, 0)}% of the image area "
            f"(aspect ratio {_range(op.ratio)})"
        )
    if name in ("RandomHorizontalFlip", "RandomVerticalFlip"):
        return f"{'horizontal' if 'Horizontal' in name else 'vertical'} flips (p = {op.p:g})"
    if name == "RandomRotation":
        return f"rotations by up to {max(abs(d) for d in op.degrees):g} degrees"
    if name in ("ColorJitter", "BatchColorJitter"):
        parts = [
            f"{k} {max(abs(v - (0 if k == 'hue' else 1)) for v in getattr(op, k)):g}"
            for k in ("brightness", "contrast", "saturation", "hue")
            if getattr(op, k) is not None
        ]
        if name == "BatchColorJitter":  # hue rotates the YIQ chroma plane: say so
            parts[-1] = parts[-1].replace("hue ", "hue (YIQ rotation, in turns) ")
        return f"colour jitter ({', '.join(parts)})"
    if name == "RandomAffine":
        bits = [f"rotation up to {max(abs(d) for d in op.degrees):g} degrees"]
        if op.translate:
            bits.append(f"translation up to {_percent(max(op.translate))}")
        if op.scale:
            bits.append(f"scaling {_range(op.scale)}")
        if op.shear:
            bits.append(f"shear up to {max(abs(s) for s in op.shear):g} degrees")
        return f"random affine transforms ({', '.join(bits)})"
    if name == "RandomApply":
        inner = "; ".join(_describe_op(t) for t in op.transforms)
        return f"{inner} with probability {op.p:g}"
    if name == "GaussianBlur":
        return f"Gaussian blur (kernel {op.kernel_size[0]}, sigma {_range(op.sigma)})"
    if name == "RandomErasing":
        return (
            f"random erasing of {_range(op.scale, 100, 0)}% of the image with probability {op.p:g}"
        )
    if name in ("ToImage", "ToDtype", "Normalize", "Resize", "CenterCrop"):
        return ""
    return name


# --- the sections --------------------------------------------------------------------------------


@dataclass
class Section:
    """A titled part of the methods; each paragraph is a list of sentences in the markup."""

    title: str
    label: str
    paragraphs: list[list[str]]


def _sentences(*items: str) -> list[str]:
    return [s for s in items if s]


def data_section(study: StudyRecord) -> Section:
    runs = study.architectures or list(study.strategies.values())
    cfg = runs[0].config
    paras = [_sentences(_dataset_sentence(cfg), *_count_sentences(runs), _skipped_sentence(runs))]
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
        if _has_calibration(runs)
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
            + "/".join(_percent(x) for x in requested)
            + "; achieved, in images: "
            + _achieved(first.split)
            + "."
        )
    sentences.append(_calibration_split_sentence(runs, unit))
    sentences += [
        f"The split file's SHA-256 begins {per_run(runs, lambda r: _short(recorded(r, 'split_sha256')))}.",
        disagreement(runs, lambda r: _short(recorded(r, "split_sha256")), "the split file"),
    ]
    return Section("Data split", "sec:methods-split", [_sentences(*sentences)])


def _normalisation(run: RunRecord) -> str:
    mean, std = recorded(run, "data_config", "mean"), recorded(run, "data_config", "std")
    if not mean or not std:
        return "not recorded"
    means, stds = fmt([round(m, 3) for m in mean]), fmt([round(x, 3) for x in std])
    return f"mean ({means}), standard deviation ({stds})"


def _has_calibration(runs: Sequence[RunRecord]) -> bool:
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
    shares = "/".join(_percent(c / max(1, sum(counts))) for c in counts)
    return f"{shares} ({'/'.join(fmt(c) for c in counts)} images)"


def _short(sha: str | None) -> str:
    """The first 12 hex digits, as code."""
    return f"`{sha[:12]}`" if sha else "not recorded"


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


def models_section(study: StudyRecord) -> Section:
    lines = []
    for run in study.architectures:
        m = run.config.model
        timm_name = resolve_arch(m.arch)[0]
        paper = next((k for p, k in ARCH_PAPERS.items() if timm_name.startswith(p)), "")
        params = recorded(run, "n_params")
        extra = [f"dropout {m.drop_rate:g}"] if m.drop_rate else []
        extra += [f"stochastic depth {m.drop_path_rate:g}"] if m.drop_path_rate else []
        lines.append(
            f"`{run.name}`{citation(paper)}: timm model `{timm_name}`, "
            f"{params / 1e6:.1f} M parameters, {recorded(run, 'image_size')} px input, "
            f"{_initialisation(m)}" + (f", {', '.join(extra)}" if extra else "") + "."
            if params
            else f"`{run.name}`: parameter count not recorded."
        )
    n = len(study.architectures)
    intro = (
        f"The study compares {n} architecture{'s' if n != 1 else ''}, each created through "
        f"timm{citation('wightman2019timm')} with a new classification head for the study's classes "
        "and trained by the same training loop:"
    )
    return Section("Models", "sec:methods-models", [[intro], lines])


def _initialisation(m) -> str:
    if not m.pretrained:
        return "randomly initialised (trained from scratch)"
    if m.weights:
        return (
            f"initialised from the ImageNet{citation('deng2009imagenet')} weights in `{m.weights}`"
        )
    return f"initialised from timm's ImageNet{citation('deng2009imagenet')} weights"


def training_section(study: StudyRecord) -> Section:
    runs = study.architectures
    t = lambda get: per_run(runs, lambda r: get(r.config.train))  # noqa: E731
    loss = _loss_sentence(runs)
    backbone = (
        f" (the pretrained backbone {t(lambda c: c.backbone_lr_mult)} times that)"
        if any(r.config.train.backbone_lr_mult != 1 for r in runs)
        else ""
    )
    accum = (
        f", accumulating gradients over {t(lambda c: c.accum_steps)} steps"
        if any(r.config.train.accum_steps > 1 for r in runs)
        else ""
    )
    optimiser = (
        f"The optimiser was {t(lambda c: _optimiser_name(c.optimizer))} with learning rate "
        f"{t(lambda c: c.lr)}{backbone}, weight decay {t(lambda c: c.weight_decay)} and batch "
        f"size {t(lambda c: c.batch_size)}{accum}."
    )
    warmup = (
        f" after {t(lambda c: c.warmup_epochs)} epoch(s) of linear warm-up"
        if any(r.config.train.warmup_epochs for r in runs)
        else " without warm-up"
    )
    epochs = per_run(runs, lambda r: r.config.train.epochs, unit=" epochs")
    schedule = f"The learning rate followed {t(_schedule_words)}{warmup}, for {epochs}."
    stopping = _stopping_sentence(runs)
    ran = (
        f"Epochs run: {per_run(runs, lambda r: recorded(r, 'epochs_run'))}; the kept checkpoint "
        f"is from epoch {per_run(runs, lambda r: recorded(r, 'best_epoch'))}."
    )
    extras = _sentences(
        f"Training seed: {per_run(runs, lambda r: r.config.train.seed)}.",
        disagreement(runs, lambda r: r.config.train.seed, "the training seed"),
        _ema_sentence(runs),
        _amp_sentence(runs),
        f"The backbone was frozen for the first {t(lambda c: c.freeze_epochs)} epoch(s)."
        if any(r.config.train.freeze_epochs for r in runs)
        else "",
        f"Gradients were clipped at norm {t(lambda c: c.grad_clip)}."
        if any(r.config.train.grad_clip for r in runs)
        else "",
        "Adaptive sample selection back-propagated only the hardest share of each batch "
        f"({t(lambda c: c.selection_rate)})."
        if any(r.config.train.selection_rate < 1 for r in runs)
        else "",
        f"Processes per run (data-parallel): {per_run(runs, lambda r: recorded(r, 'world_size', default=1))}."
        if any((recorded(r, "world_size", default=1) or 1) > 1 for r in runs)
        else "",
    )
    return Section(
        "Training",
        "sec:methods-training",
        [_sentences(loss, optimiser, schedule, stopping, ran), extras],
    )


def _loss_sentence(runs: Sequence[RunRecord]) -> str:
    def words(run: RunRecord) -> str:
        i = run.config.imbalance
        loss = f"focal loss (gamma {i.gamma:g})" if i.loss == "focal" else "cross-entropy"
        if i.loss == "focal" and i.alpha:
            loss += f" with per-class alpha {fmt(i.alpha)}"
        parts = [loss]
        if i.class_weights == "inverse":
            parts.append("class weights inversely proportional to the class frequency")
        elif i.class_weights == "effective":
            parts.append(f"class-balanced weights (effective number of samples, beta {i.beta:g})")
        if i.sampler == "weighted":
            parts.append("oversampling (each class drawn equally often)")
        elif i.sampler == "sqrt":
            parts.append(
                "square-root sampling (each class drawn in proportion to the square root of its size)"
            )
        if i.label_smoothing:
            parts.append(f"label smoothing {i.label_smoothing:g}")
        return ", ".join(parts)

    keys = set()
    for run in runs:
        i = run.config.imbalance
        keys |= {"lin2017focal"} if i.loss == "focal" else set()
        keys |= {"mahajan2018weakly"} if i.sampler == "sqrt" else set()
        keys |= {"cui2019classbalanced"} if i.class_weights == "effective" else set()
        keys |= {"szegedy2016labelsmoothing"} if i.label_smoothing else set()
    return f"Loss and class-imbalance handling: {per_run(runs, words)}{citation(*sorted(keys))}."


def _optimiser_name(name: str) -> str:
    return {
        "adamw": "AdamW" + citation("loshchilov2019adamw"),
        "sgd": "SGD with Nesterov momentum",
    }.get(name, name)


def _schedule_words(c) -> str:
    return {
        "cosine": "a cosine decay",
        "cosine_restarts": "a cosine decay with warm restarts" + citation("loshchilov2017sgdr"),
        "onecycle": "a one-cycle schedule",
        "plateau": "reductions when the validation loss stopped improving",
        "none": "no schedule (constant)",
    }.get(c.scheduler, c.scheduler)


def _stopping_sentence(runs: Sequence[RunRecord]) -> str:
    monitor = per_run(runs, lambda r: r.config.train.monitor.replace("_", " "))
    kept = f"The checkpoint with the best validation {monitor} was kept for evaluation"
    if any(r.config.train.monitor_window > 1 for r in runs):
        window = per_run(runs, lambda r: r.config.train.monitor_window, unit=" epoch(s)")
        kept += f" (its mean over the last {window}, so that a noisy peak is not chosen)"
    if not any(r.config.train.patience for r in runs):
        return f"{kept}; there was no early stopping."
    return (
        f"{kept}; training stopped early when it had not improved for "
        f"{per_run(runs, lambda r: r.config.train.patience or 'no early stopping')} epoch(s)."
    )


def _ema_sentence(runs: Sequence[RunRecord]) -> str:
    if not any(r.config.train.ema for r in runs):
        return "No exponential moving average of the weights was kept."
    return (
        "An exponential moving average of the weights"
        + citation("polyak1992averaging")
        + " was evaluated instead of the raw weights (decay: "
        + per_run(runs, lambda r: r.config.train.ema_decay if r.config.train.ema else "no EMA")
        + ")."
    )


def _amp_sentence(runs: Sequence[RunRecord]) -> str:
    def words(run: RunRecord) -> str:
        device = str(recorded(run, "hardware", "device", default="unknown"))
        mode = run.config.train.amp
        if not device.startswith("cuda") or mode == "off":
            return "full precision (float32)" + ("" if mode == "off" else " on the CPU")
        if mode == "auto":
            return "mixed precision (bfloat16 where the GPU supports it, else float16)"
        return f"mixed precision ({'bfloat16' if mode == 'bf16' else 'float16'})"

    groups = by_value(runs, words)
    cite = citation("micikevicius2018mixed") if any("mixed" in v for v in groups) else ""
    return f"Arithmetic: {per_run(runs, words)}{cite}."


def imbalance_section(study: StudyRecord) -> Section | None:
    """The imbalance comparison: each arm as its base plus exactly its own change."""
    if not study.strategies:
        return None
    profile = study.profile
    base = profile.run_config(  # every arm starts from the neutral base (skinlib.profile)
        profile.imbalance.arch, "imbalance_base", {**NEUTRAL_IMBALANCE, **profile.imbalance.common}
    )
    arms = []
    for name, run in study.strategies.items():
        diff = config_differences(base, run.config)
        change = ", ".join(f"`{k}` {fmt(v)}" for k, (_, v) in diff.items()) or "no change"
        arms.append(f"`{name}`: {change}")
    shared = config_differences(profile.run_config(profile.imbalance.arch), base)
    budget = ", ".join(f"`{k}` {fmt(v)}" for k, (_, v) in shared.items())
    sentences = [
        f"The imbalance comparison trained `{profile.imbalance.arch}` once per strategy from the "
        "same neutral base (plain cross-entropy without class weights, sampler, sample selection "
        "or label smoothing) and the same budget"
        + (f" ({budget})" if budget else "")
        + "; each arm differs from that base only in: "
        + "; ".join(arms)
        + "."
    ]
    return Section("Imbalance comparison", "sec:methods-imbalance", [sentences])


def differences_section(study: StudyRecord) -> Section:
    """What differs between the architecture runs, and whether a recipe of the profile says so."""
    profile = study.profile
    sentences = []
    for run in study.architectures:
        diff = config_differences(profile.config, run.config)
        if not diff:
            continue
        recipe = set(profile.recipes.get(run.name, {}))
        parts = [
            f"`{k}` {fmt(v)} instead of {fmt(b)}"
            + ("" if k in recipe else " (not a recipe of the profile)")
            for k, (b, v) in diff.items()
        ]
        sentences.append(f"`{run.name}` trained with {'; '.join(parts)}.")
    if not sentences:
        sentences = ["All architecture runs share one configuration apart from the architecture."]
    else:
        sentences.insert(
            0,
            "Apart from the architecture, the runs differ from the profile's shared "
            "configuration only as follows (the profile's `recipes`):",
        )
    return Section("What differs between runs", "sec:methods-differences", [sentences])


def evaluation_section(study: StudyRecord) -> Section:
    """What the evaluation steps did, each sentence only where the step's table or file exists."""
    runs = study.architectures
    unit = group_unit(runs[0])
    sentences = [
        _fitted_where_sentence(study),
        _calibration_sentence(runs),
        _thresholds_sentence(runs),
        _calibration_metrics_sentence(study),
        _interval_sentence(study, unit),
        _paired_sentence(study, unit),
        _tta_sentence(runs),
        _ensemble_sentence(study),
        _xai_sentence(study),
        _trust_sentence(study, unit),
        _test_looks_sentence(study),
    ]
    return Section("Evaluation", "sec:methods-evaluation", [_sentences(*sentences)])


def _test_looks_sentence(study: StudyRecord) -> str:
    """How many other configurations were scored on test before the reported ones, from the
    study's test-look ledger; nothing where there is no ledger or it never saw a reported
    configuration (it cannot count what came before them)."""
    if study.test_looks is None:
        return ""
    reported = study.reported_configurations
    before = scored_before(study.test_looks, reported)
    if before is None:
        return ""
    n, k = len(before), len(reported)
    others = "no configuration" if n == 0 else f"{n} distinct configuration{'s' if n > 1 else ''}"
    theirs = "the one" if k == 1 else f"the {k}"
    return (
        f"According to the study's test-look ledger (`{LEDGER}`, kept since "
        f"{study.test_looks[0].time[:10]}; a configuration is a run's settings, not its name), "
        f"{others} other than {theirs} reported here {'were' if n > 1 else 'was'} scored on the "
        "test split or an external set before the reported results were last computed."
    )


def _calibration_metrics_sentence(study: StudyRecord) -> str:
    if not (study.wrote("calibration") or study.wrote("comparison")):
        return ""
    return (
        f"Calibration is measured by the expected calibration error over {N_BINS} equal-width "
        f"confidence bins{citation('naeini2015ece')}, negative log-likelihood and Brier score. "
        "Binned errors are biased upwards in finite samples, and bootstrap resamples share the "
        f"bias{citation('kumar2019verified')}: their intervals describe the spread of the "
        "estimate, not a range for the true error, and can lie above the estimate itself."
    )


CALIBRATION_METRICS = (
    "the calibration metrics (ECE, MCE, classwise ECE, negative log-likelihood, Brier score)"
)
COMPARISON_ECE = "the ECE shown in the model comparison"


def _interval_sentence(study: StudyRecord, unit: str) -> str:
    """Which test metrics carry a grouped-bootstrap interval and which are point estimates: the
    headline metrics (07's comparison); 04's calibration errors, 08's AURC and 06's map scores
    where their tables hold ``_low``/``_high`` columns; 08's sets, deferral, subgroups and
    unknown inputs. The ECE that 07's comparison repeats has no interval of its own."""
    if not study.wrote("comparison"):
        return ""
    calibration = {"test_before", "test_after"} <= study.intervals("calibration")
    tables = (  # (table, whether it holds intervals, what it reports)
        ("trust_conformal", True, "the conformal coverage and mean set size"),
        ("trust_deferral", True, "the deferral results"),
        ("trust_subgroups", True, "the balanced accuracy per subgroup"),
        ("trust_unknown", True, "the unknown-input detection"),
        (
            "trust_aurc",
            "aurc" in study.intervals("trust_aurc"),
            "the area under the risk-coverage curve",
        ),
        ("xai_scores", bool(study.intervals("xai_scores")), "the Grad-CAM scores"),
    )
    also = [f"{CALIBRATION_METRICS} before and after scaling"] if calibration else []
    also += [words for table, ci, words in tables if ci and study.wrote(table)]
    # 07's comparison repeats the ECE without an interval; 04's table may hold the rest
    point = [
        CALIBRATION_METRICS if study.wrote("calibration") and not calibration else COMPARISON_ECE
    ]
    point += [words for table, ci, words in tables if not ci and study.wrote(table)]
    verb = "is a point estimate" if len(point) == 1 else "are point estimates"
    return (
        "On the test set, balanced accuracy, accuracy, macro F1 and macro AUC carry 95% "
        f"percentile bootstrap intervals{citation('efron1979bootstrap', 'efron1993introduction')} "
        f"from {fmt(study.profile.evaluation.n_boot)} resamples of {unit}s (all images of a "
        f"resampled {unit} enter together, as images of one {unit} are not independent)"
        + (f"; so do {_and(also)}" if also else "")
        + f"; {_and(point)} {verb} without an interval."
    )


def _and(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _paired_sentence(study: StudyRecord, unit: str) -> str:
    if not study.wrote("paired_tests"):
        return ""
    return (
        "Each model is compared on the same test images with the reference model, the one with "
        "the best validation balanced accuracy, by a paired bootstrap of the difference in "
        f"balanced accuracy ({fmt(study.profile.evaluation.n_boot)} resamples of {unit}s), with "
        "p-values adjusted for the number of comparisons by Holm's method; McNemar's test"
        f"{citation('mcnemar1947')} on which images each model classifies correctly is reported as "
        "a secondary check that treats images as independent."
    )


def _tta_sentence(runs: Sequence[RunRecord]) -> str:
    """Only for the runs whose TTA predictions 07 wrote (``predictions_test_tta.csv``)."""
    with_tta = [r.name for r in runs if r.tta]
    if not with_tta:
        return ""
    who = "" if len(with_tta) == len(runs) else f" (for {name_list(with_tta)})"
    return (
        f"Test-time augmentation{who} averages the predicted probabilities over the views "
        f"{', '.join(TTA_VIEWS)}."
    )


def _ensemble_sentence(study: StudyRecord) -> str:
    if not study.ensemble:
        return ""
    return (
        f"The ensemble takes the {study.ensemble.get('combine', 'mean')} of "
        f"{len(study.ensemble.get('members', []))} runs"
        + (
            ", weighted by their validation balanced accuracy"
            if study.ensemble.get("weights")
            else ""
        )
        + "."
    )


def _xai_sentence(study: StudyRecord) -> str:
    """06's maps, only once it wrote ``xai_scores``."""
    if not study.wrote("xai_scores"):
        return ""
    ev, run = study.profile.evaluation, study.architectures[0]
    name, key = XAI_PAPERS.get(ev.xai_method, (ev.xai_method, ""))
    has_masks = "mask_path" in run.split and run.split["mask_path"].notna().any()
    score = (
        "against the lesion masks by the pointing game"
        + citation("zhang2018pointing")
        + " and the share of the map's energy inside the lesion"
        if has_masks
        else "by ROAD" + citation("rong2022road")
    )
    return (
        f"Explanations are {name}{citation(key)} maps from pytorch-grad-cam"
        f"{citation('gildenblat2021gradcam')} on {fmt(ev.xai_images)} test images per "
        f"architecture, scored {score}."
    )


def _trust_sentence(study: StudyRecord, unit: str) -> str:
    """What 08 computed: its conformal and deferral tables, not the profile, say it ran; the
    split each was fitted on comes from the runs' records (conformal.json, the post-hoc split)."""
    trust = study.profile.trust
    runs = study.architectures
    parts = []
    if study.wrote("trust_conformal"):
        coverages = " and ".join(f"{c:.0%}" for c in trust.coverages)
        method = trust.set_method.upper()
        fitted = per_run(runs, lambda r: _split_name(_conformal_split(r)), " split")
        parts.append(
            f"Prediction sets were built by split conformal prediction"
            f"{citation('vovk2005algorithmic')} with the {method} score"
            f"{citation(CONFORMAL_PAPERS.get(trust.set_method, ''))} and, per class, Mondrian sets, "
            f"calibrated on the {fitted} with each {unit} weighted once (images of one "
            f"{unit} are not exchangeable), for {coverages} coverage"
        )
    if study.wrote("trust_deferral"):
        chosen = per_run(runs, lambda r: on_split(r.posthoc_split))
        parts.append(
            f"the threshold for deferring an image to a dermatologist was chosen on {chosen} "
            f"for a balanced accuracy of {trust.deferral_accuracy:.2f}, the recall of the answered "
            "images averaged over every class (a class never answered counts as 0)"
            + _fixed_shares(study, trust.deferral_coverages)
        )
    if not parts:
        return ""
    text = "; ".join(parts)
    return text[0].upper() + text[1:] + "."


def _fixed_shares(study: StudyRecord, shares: Sequence[float]) -> str:
    """The fixed answered shares 08 reports beside the target, where its table holds them."""
    if "policy" not in study.tables.get("trust_deferral", frozenset()) or not shares:
        return ""
    listed = ", ".join(f"{c:.0%}" for c in shares)
    return f", and, beside it, thresholds answering {listed} of the same split's images"


def _calibration_sentence(runs: Sequence[RunRecord]) -> str:
    calibrated = [r for r in runs if r.calibration]
    if not calibrated:
        return "No run has a calibration record: the probabilities reported are uncalibrated."
    method = per_run(calibrated, lambda r: r.calibration.get("method", "not recorded"))
    fitted = per_run(calibrated, lambda r: _split_name(r.calibration.get("fitted_on")))
    temps = "; ".join(f"`{r.name}` {r.calibration['temperature']:.3g}" for r in calibrated)
    cite = citation("guo2017calibration") if "temperature" in method else ""
    out = f"Probabilities were calibrated by {method}{cite}, fitted on the {fitted} split (temperature: {temps})."
    if len(calibrated) < len(runs):
        rest = [r.name for r in runs if not r.calibration]
        out += f" {name_list(rest)} had no calibration record and stay uncalibrated."
    return out


def _split_name(name: str | None) -> str:
    return split_name(name)


def _conformal_split(run: RunRecord) -> str:
    """The split of the run's stored sets (conformal.json), else where 08 would calibrate."""
    return run.conformal_fitted_on or run.posthoc_split


def _fitted_where_sentence(study: StudyRecord) -> str:
    """Which split chose what and which fitted what, where some run has a calibration split:
    each post-hoc step named only once its record or table exists, with the split it records."""
    runs = study.architectures
    if not _has_calibration(runs):
        return ""
    chosen = ["the kept checkpoint of every run"]
    chosen += ["the architectures' recipes"] if study.profile.recipes else []
    chosen += ["the ensemble weights"] if study.ensemble and study.ensemble.get("weights") else []
    chosen += ["the reference model of the paired tests"] if study.wrote("paired_tests") else []
    trust = study.wrote("trust_conformal") or study.wrote("trust_deferral")
    chosen += ["the run the trust analysis audits"] if trust else []
    fitted = []
    if calibrated := [r for r in runs if r.calibration]:
        fitted.append(("the temperature", lambda r: r.calibration.get("fitted_on"), calibrated))
    if with_points := [r for r in runs if r.thresholds]:
        fitted.append(("the operating thresholds", lambda r: r.thresholds_chosen_on, with_points))
    if study.wrote("trust_conformal"):
        fitted.append(("the conformal sets", _conformal_split, runs))
    if study.wrote("trust_deferral"):
        fitted.append(("the deferral threshold", lambda r: r.posthoc_split, runs))
    where: dict[str, list[str]] = {}  # "calibration split" (or per run) -> steps fitted there
    for what, get, among in fitted:
        split = per_run(among, lambda r, get=get: _split_name(get(r)), " split")
        where.setdefault(split, []).append(what)
    steps = "; ".join(f"{_and(items)} on the {split}" for split, items in where.items())
    return f"Validation chose {_and(chosen)}; " + (
        f"post-hoc calibration fitted {steps}." if fitted else "no post-hoc step has run yet."
    )


def _thresholds_sentence(runs: Sequence[RunRecord]) -> str:
    with_points = [r for r in runs if r.thresholds]
    if not with_points:
        return "No run has a stored operating point."

    def words(run: RunRecord) -> str:
        p = run.thresholds[0]
        target = "" if p.target is None else f" {p.target:g}"
        return f"{p.criterion}{target} for {' + '.join(p.positive)}"

    chosen_on = per_run(with_points, lambda r: _split_name(r.thresholds_chosen_on))
    return (
        f"Operating thresholds were chosen on the {chosen_on} split for a target "
        f"{per_run(with_points, words)} and applied unchanged to the test split; the threshold "
        f"acts on the calibrated probabilities."
    )


def compute_section(study: StudyRecord) -> Section:
    runs = study.architectures + list(study.strategies.values())
    hardware = per_run(runs, _hardware_words)
    minutes = sum(recorded(r, "train_seconds", default=0) or 0 for r in runs) / 60
    each = "; ".join(
        f"`{r.name}` {(recorded(r, 'train_seconds', default=0) or 0) / 60:.1f}" for r in runs
    )
    software = []
    for key, (name, cite) in SOFTWARE.items():
        software.append(f"{name}{citation(cite)} {per_run(runs, lambda r, k=key: _version(r, k))}")
    sentences = _sentences(
        f"Runs were trained on {hardware}.",
        f"Training took {minutes:.1f} min in all ({each} min).",
        f"Software: Python {per_run(runs, lambda r: _version(r, 'python'))}, "
        + ", ".join(software)
        + "; notebooks were executed by papermill"
        + citation("papermill")
        + ".",
        *(
            disagreement(runs, lambda r, k=key: _version(r, k), f"the version of {name}")
            for key, (name, _) in {"python": ("Python", ""), **SOFTWARE}.items()
        ),
        f"Code: skinlib at commit {per_run(runs, _commit)}.",
        disagreement(runs, _commit, "the code version"),
    )
    return Section("Hardware and software", "sec:methods-compute", [sentences])


def _hardware_words(run: RunRecord) -> str:
    hw = recorded(run, "hardware", default={}) or {}
    if str(hw.get("device", "")).startswith("cuda"):
        gpus = hw.get("gpu_count", 1)
        return f"{gpus} x {hw.get('gpu', 'GPU')}"
    cpus = hw.get("cpu_count")
    return f"a CPU ({cpus} cores, {hw.get('platform', 'unknown platform')})"


def _version(run: RunRecord, package: str) -> str:
    return str(recorded(run, "versions", package, default=None) or "not recorded")


def _commit(run: RunRecord) -> str:
    git = recorded(run, "git", default={}) or {}
    commit = _short(git.get("commit"))
    return commit + (" with uncommitted changes" if git.get("dirty") else "")


def methods_sections(study: StudyRecord) -> list[Section]:
    """The methods, section by section, from a study's records."""
    if not study.architectures:
        return [
            Section(
                "Not yet trained",
                "sec:methods-data",
                [
                    [
                        f"No run of the study `{study.profile.study}` is complete yet: run the pipeline."
                    ]
                ],
            )
        ]
    sections = [
        data_section(study),
        split_section(study),
        preprocessing_section(study),
        models_section(study),
        training_section(study),
        imbalance_section(study),
        differences_section(study),
        evaluation_section(study),
        compute_section(study),
    ]
    if study.missing:
        sections[-1].paragraphs.append(
            [
                f"Runs the profile names but that are not complete, left out: {name_list(study.missing)}."
            ]
        )
    return [s for s in sections if s is not None]


# --- rendering -----------------------------------------------------------------------------------
