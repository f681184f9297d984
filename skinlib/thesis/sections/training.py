"""Models, training, the imbalance arms and what the runs did not share."""

from __future__ import annotations

from collections.abc import Sequence

from skinlib.models.architectures import resolve_arch
from skinlib.profile import NEUTRAL_IMBALANCE
from skinlib.thesis.citations import ARCH_PAPERS, citation
from skinlib.thesis.phrasing import (
    by_value,
    config_differences,
    disagreement,
    fmt,
    per_run,
    recorded,
)
from skinlib.thesis.records import RunRecord, StudyRecord
from skinlib.thesis.sections.base import Section, non_empty


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
    extras = non_empty(
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
        [non_empty(loss, optimiser, schedule, stopping, ran), extras],
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
