"""Models, training, the imbalance arms and what the runs did not share."""

from __future__ import annotations

from collections.abc import Sequence

from skinlib.models import metadata as metadata_branch
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
    fused = metadata_sentence(study.architectures)
    return Section("Models", "sec:methods-models", [[intro], lines, [fused] if fused else []])


def metadata_sentence(runs: Sequence[RunRecord]) -> str:
    """How the runs whose record names metadata inputs fused them with the image, or ""."""
    fused = [r for r in runs if recorded(r, "metadata_inputs")]
    if not fused:
        return ""
    names = ", ".join(f"`{r.name}`" for r in fused)
    levels = per_run(fused, _metadata_levels)
    return (
        f"{names} also read the patient's age, sex and the lesion's anatomical site"
        f"{citation('ha2020identifying')}: age standardised with the training split's mean and "
        "standard deviation (0, with a missing indicator, where not recorded); sex and site "
        "one-hot over the levels the training split records, plus an unknown level for a missing "
        f"value or one the training split lacks ({levels}). A two-layer perceptron "
        f"({metadata_branch.HIDDEN} and {metadata_branch.EMBEDDING} units, ReLU, dropout "
        f"{metadata_branch.DROPOUT:g}) embeds that vector, and the embedding is concatenated with "
        "the backbone's pooled image features before the linear classification head. The "
        "encoding was fitted on the training split alone and stored with the weights, so "
        "validation, test and external images are encoded alike, and a set without a column is "
        "scored with it missing."
    )


def _metadata_levels(run: RunRecord) -> str:
    names = recorded(run, "metadata_inputs") or []
    sexes = sum(n.startswith("sex=") for n in names) - 1
    sites = sum(n.startswith("site=") for n in names) - 1
    return f"{sexes} sex and {sites} site levels"


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
        loss = {
            "focal": f"focal loss (gamma {i.gamma:g})",
            "logit_adjusted": f"logit-adjusted cross-entropy (tau {i.tau:g})",
            "balanced_softmax": "balanced softmax cross-entropy",
        }.get(i.loss, "cross-entropy")
        if i.loss == "focal" and i.alpha:
            loss += f" with per-class alpha {fmt(i.alpha)}"
        parts = [loss]
        if i.class_weights == "inverse":
            parts.append("class weights inversely proportional to the class frequency")
        elif i.class_weights == "effective":
            parts.append(f"class-balanced weights (effective number of samples, beta {i.beta:g})")
        if i.drw_epoch:
            start = i.drw_start(run.config.train.epochs) + 1
            parts.append(
                f"deferred re-weighting (class-balanced weights, beta {i.beta:g}, from epoch "
                f"{start} on)"
            )
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
        keys |= {"menon2021logit"} if i.loss == "logit_adjusted" else set()
        keys |= {"ren2020balanced"} if i.loss == "balanced_softmax" else set()
        keys |= {"mahajan2018weakly"} if i.sampler == "sqrt" else set()
        keys |= {"cui2019classbalanced"} if i.class_weights == "effective" or i.drw_epoch else set()
        keys |= {"cao2019ldam"} if i.drw_epoch else set()
        keys |= {"szegedy2016labelsmoothing"} if i.label_smoothing else set()
    sentence = (
        f"Loss and class-imbalance handling: {per_run(runs, words)}{citation(*sorted(keys))}."
    )
    return " ".join([sentence, *lever_sentences(runs)])


def lever_sentences(runs: Sequence[RunRecord]) -> list[str]:
    """What logit adjustment, the balanced softmax and deferred re-weighting did, for the
    runs that used them (nothing for runs that used none)."""
    imb = [r.config.imbalance for r in runs]
    out = []
    if any(i.loss in ("logit_adjusted", "balanced_softmax") for i in imb):
        out.append(
            f"Logit adjustment{citation('menon2021logit')} adds tau times the logarithm of each "
            f"class's prior to its logit inside the training loss, and the balanced softmax"
            f"{citation('ren2020balanced')} the logarithm of its count (the same at tau 1); the "
            "prior is the class distribution of the training batches, the training split's class "
            "shares as the sampler draws them (the shares themselves without a sampler, uniform "
            "under oversampling, in proportion to the square roots of the counts under "
            "square-root sampling). Validation, calibration, the thresholds and every prediction "
            "use the unadjusted logits."
        )
    if any(i.drw_epoch for i in imb):
        out.append(
            f"Deferred re-weighting{citation('cao2019ldam')} trained with unweighted "
            "cross-entropy first and, from the stated epoch on, with class-balanced weights"
            f"{citation('cui2019classbalanced')} (1 - beta) / (1 - beta to the power n), n the "
            "images of the class the sampler draws per epoch (its training-split count without a "
            "sampler), normalised to sum to the number of classes."
        )
    return out


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
        "same neutral base (plain cross-entropy on the image alone, without class weights, "
        "sampler, sample selection or label smoothing) and the same budget"
        + (f" ({budget})" if budget else "")
        + "; each arm differs from that base only in: "
        + "; ".join(arms)
        + "."
    ]
    used = list(study.strategies.values())
    sentences += lever_sentences(used) + [s for s in [metadata_sentence(used)] if s]
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
