"""One typed configuration object that flows from a YAML profile through every step and is saved
with each run (``config.yaml`` in the run folder).

A run's config comes from its study profile (:mod:`skinlib.profile`, the one reader of
``params/*.yaml``); this module holds the dataclasses, applies ``--set section.key=value``
strings (:func:`apply_overrides`) and writes and reads a run's ``config.yaml``
(:func:`save_config`, :func:`load_config`). Read the result as plain attributes
(``cfg.train.epochs``).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from skinlib.errors import ConfigError


@dataclass
class SynthConfig:
    """SynthDerm generation, used when ``data.root`` is empty (the embedded offline dataset)."""

    n: int = 2000  # number of images (HAM10000's class shares unless balanced)
    size: int = 224  # side in pixels (square)
    seed: int = 0  # the same seed draws the same dataset, byte for byte
    classes: str = "ham10000"  # "ham10000" (7 classes) or "isic2019" (8 classes)
    difficulty: float = 0.5  # 0 = trivially separable, 1 = heavily overlapping classes
    balanced: bool = False  # equal class shares instead of HAM10000's


@dataclass
class DataConfig:
    """Where the images are and how they are split and fed."""

    format: str = "ham10000"  # a name of skinlib.data.formats.FORMATS: ham10000 | isic2018 | isic2019 | isic2020 | ph2 | folder
    root: str = ""  # dataset folder; empty = generate SynthDerm into the cache
    task: str = "multiclass"  # multiclass | binary
    positive: list[str] = field(default_factory=lambda: ["mel"])  # binary task: positive classes
    image_size: int = 224  # training resolution; the model's native one if 0
    split_file: str = ""  # CSV with a `split` column; empty = make one (grouped, stratified)
    val_frac: float = 0.15  # share of images for validation (selection; calibration unless split)
    test_frac: float = 0.15  # share held out for the reported numbers (the usual 70/15/15)
    # share of all images carved out of training for post-hoc calibration (temperature,
    # thresholds, conformal sets, deferral), so validation only selects (checkpoint, recipe);
    # 0 = off: those are fitted on validation and the split is exactly the one without it
    calibration_fraction: float = 0.0
    folds: int = 0  # k-fold cross-validation when > 1 (`fold` selects the held-out fold)
    fold: int = 0  # with folds > 1: the held-out fold of this run (0 .. folds - 1)
    split_seed: int = 0  # seed of the grouped split; a new seed gives another, equally valid split
    cache: bool = True  # pre-resize images once into the cache (much faster epochs)
    num_workers: int = 2  # DataLoader worker processes
    skip_bad: bool = False  # skip unreadable images (counted in the log) instead of stopping
    synth: SynthConfig = field(default_factory=SynthConfig)


@dataclass
class ModelConfig:
    """Which timm architecture and how its head and regularisation are set."""

    arch: str = (
        "resnet18"  # any name from skinlib.models.architectures.ARCHITECTURES (or a timm name)
    )
    pretrained: bool = False  # ImageNet weights through timm (needs the hub or `weights`)
    weights: str = ""  # local weights file (.pth/.safetensors) or timm cache dir for offline use
    drop_rate: float = 0.0  # dropout before the classifier
    drop_path_rate: float = 0.0  # stochastic depth (ViT, Swin, EfficientNet, ...)
    native_resolution: bool = False  # use the model's own input size instead of data.image_size
    # fuse age, sex and anatomical site (encoded on the training split, missing values as their
    # own level) with the image features before the classifier, for any architecture
    metadata: bool = False


@dataclass
class ImbalanceConfig:
    """How class imbalance is handled; strategies combine."""

    # ce | focal | logit_adjusted (Menon et al. 2021: cross-entropy on logits + tau * log prior)
    # | balanced_softmax (Ren et al. 2020: logits + log n_c); the prior is the training split's
    # class shares as the sampler draws them, and inference uses the plain logits
    loss: str = "ce"
    tau: float = 1.0  # logit_adjusted: strength of the prior shift (Menon et al.'s default 1)
    class_weights: str = "none"  # none | inverse | effective
    beta: float = 0.999  # effective-number-of-samples beta (Cui et al. 2019)
    gamma: float = 2.0  # focal loss focusing parameter (0 = cross-entropy)
    alpha: list[float] | None = None  # focal loss per-class alpha
    sampler: str = (
        "none"  # none | weighted (equal draws per class) | sqrt (draws ~ sqrt(class size))
    )
    label_smoothing: float = 0.0  # target smoothing (0 = off); also passed to mixup explicitly
    # deferred re-weighting (Cao et al. 2019): plain training until this epoch, effective-number
    # class weights (beta) from it on; 0 = off, below 1 = that fraction of train.epochs
    drw_epoch: float = 0.0

    def drw_start(self, epochs: int) -> int | None:
        """The first epoch (0-based) of deferred re-weighting (Cao et al. 2019), None when off.

        ``drw_epoch`` of 1 or more is that many epochs of plain training; below 1 it is that
        fraction of ``epochs`` (rounded), so it follows a run whose epochs change.

        >>> ImbalanceConfig(drw_epoch=0.75).drw_start(4), ImbalanceConfig(drw_epoch=3).drw_start(4)
        (3, 3)
        """
        at = self.drw_epoch
        if at <= 0:
            return None
        if at >= 1 and at != int(at):
            raise ConfigError(
                f"imbalance.drw_epoch={at:g}: give a whole number of epochs or a fraction below 1"
            )
        if self.class_weights != "none":
            raise ConfigError(
                f"imbalance.drw_epoch with imbalance.class_weights={self.class_weights}: deferred "
                "re-weighting trains unweighted first; set imbalance.class_weights=none"
            )
        start = int(at) if at >= 1 else round(at * epochs)
        if start >= epochs:
            raise ConfigError(
                f"imbalance.drw_epoch={at:g} starts re-weighting at epoch {start + 1} of {epochs}: "
                "it would never start; lower it or raise train.epochs"
            )
        return start


@dataclass
class TrainConfig:
    """The optimisation loop."""

    epochs: int = 10  # passes over the training split; real profiles set 100 with early stopping
    # wall-clock minutes for the whole run (data, training, validation, final predictions); the
    # first steps are timed and the epochs that fit are planned, train.epochs their cap; 0 = off
    # (skinlib.training.budget; a study profile's budget: section shares its total among runs)
    budget_min: float = 0.0
    batch_size: int = 32  # images per step (per GPU); 32 fits 384 px ConvNets on a 16 GB card
    optimizer: str = "adamw"  # adamw | sgd
    lr: float = 3e-4  # peak learning rate of the head; AdamW's usual fine-tuning value
    backbone_lr_mult: float = 1.0  # backbone lr = lr * this (head uses lr)
    weight_decay: float = 0.05  # decoupled (AdamW) weight decay; timm's default for fine-tuning
    momentum: float = 0.9  # SGD only
    scheduler: str = "cosine"  # cosine | cosine_restarts | onecycle | plateau | none
    warmup_epochs: float = 1.0  # linear warm-up to lr: early steps do not wreck the weights
    freeze_epochs: int = 0  # two-stage training: train the head alone for this many epochs
    amp: str = "auto"  # auto (bf16/fp16 on CUDA, off on CPU) | bf16 | fp16 | off
    accum_steps: int = 1  # gradient accumulation
    grad_clip: float = 0.0  # clip gradient norm at this value, 0 = off
    ema: bool = False  # exponential moving average of weights (timm ModelEmaV3)
    ema_decay: float = 0.999  # EMA weight of the past per step (0.999: about the last 1,000 steps)
    mixup: float = 0.0  # mixup alpha, 0 = off
    cutmix: float = 0.0  # cutmix alpha, 0 = off
    augment: str = "basic"  # none | basic | strong
    progressive_resize: bool = False  # start at half resolution, reach full by mid-training
    monitor: str = "balanced_accuracy"  # balanced_accuracy | macro_f1 | auc | loss
    patience: int = 0  # early stopping patience in epochs, 0 = off
    # the best epoch by the monitor's mean over the last k epochs (1: that epoch alone): a noisy
    # validation score (a few dozen lesions of a rare class) then picks a plateau, not a peak
    monitor_window: int = 1
    channels_last: bool = True  # NHWC memory layout: faster convolutions on tensor cores
    compile: bool = False  # torch.compile
    seed: int = 0  # model initialisation, data order and augmentation
    deterministic: bool = True  # deterministic kernels where PyTorch has them (exact reruns)
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    max_steps_per_epoch: int = 0  # cap steps per epoch (smoke tests), 0 = no cap
    selection_rate: float = 1.0  # adaptive sample selection: share of each batch back-propagated
    log_resources: bool = False  # CPU/GPU utilisation and memory in the metrics file

    def __post_init__(self) -> None:
        budget = self.budget_min
        if not (isinstance(budget, int | float) and math.isfinite(budget) and budget >= 0):
            raise ConfigError(
                f"train.budget_min={self.budget_min!r}: minutes for the whole run, 0 or more "
                "(0: no budget, train.epochs as given)"
            )
        if self.budget_min and self.epochs < 1:
            raise ConfigError(
                f"train.epochs={self.epochs}: with train.budget_min the epochs are the cap of "
                "the plan; give 1 or more"
            )


@dataclass
class Config:
    """The whole configuration of one run."""

    study: str = "demo"  # experiments/<study>/
    run: str = ""  # run folder name; empty = the architecture name
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    imbalance: ImbalanceConfig = field(default_factory=ImbalanceConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    @property
    def run_name(self) -> str:
        return self.run or self.model.arch

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _build(cls: type, values: dict[str, Any], where: str) -> Any:
    """Instantiate a (nested) dataclass from a dict, refusing unknown keys by name."""
    if not isinstance(values, dict):
        raise ConfigError(f"{where or 'config'}: expected a mapping, got {type(values).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(
            f"{where or 'config'}: unknown key(s) {unknown}; expected one of {sorted(fields)}"
        )
    kwargs = {}
    for name, value in values.items():
        f = fields[name]
        sub = f.default_factory if f.default_factory is not dataclasses.MISSING else None
        if dataclasses.is_dataclass(sub):
            kwargs[name] = _build(sub, value or {}, f"{where}.{name}".lstrip("."))
        else:
            kwargs[name] = _coerce(value, f.default, f"{where}.{name}".lstrip("."))
    return cls(**kwargs)


def _coerce(value: Any, default: Any, key: str) -> Any:
    """Check a value against the type of its default (YAML may give "1e-3" as a string)."""
    if default is dataclasses.MISSING or default is None or value is None:
        return value
    kind = type(default)
    if kind is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    if kind in (int, float) and not isinstance(value, bool):
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key}: expected a number, got {value!r}") from None
        if kind is int:
            if number != int(number):
                raise ConfigError(f"{key}: expected a whole number, got {value!r}")
            return int(number)
        return number
    if kind is str and not isinstance(value, str):
        raise ConfigError(f"{key}: expected text, got {value!r}")
    return value


def config_from_dict(values: dict[str, Any]) -> Config:
    """Build a :class:`Config` from a plain dict (e.g. a parsed YAML profile)."""
    return _build(Config, values or {}, "")


def _parse_value(text: str) -> Any:
    return yaml.safe_load(text) if text != "" else ""


def apply_overrides(cfg: Config, overrides: list[str] | None) -> Config:
    """Return a copy of ``cfg`` with ``section.key=value`` overrides applied (values parsed as YAML)."""
    values = cfg.to_dict()
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"override {item!r}: write it as section.key=value")
        key, raw = item.split("=", 1)
        node = values
        parts = key.strip().split(".")
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                raise ConfigError(f"override {item!r}: {part!r} is not a config section")
            node = node[part]
        if parts[-1] not in node:
            raise ConfigError(
                f"override {item!r}: unknown key {parts[-1]!r}; expected one of {sorted(node)}"
            )
        node[parts[-1]] = _parse_value(raw)
    return config_from_dict(values)


def load_config(path: str | Path, overrides: list[str] | None = None) -> Config:
    """Read a run's configuration file (``config.yaml`` of a run folder, as :func:`save_config`
    wrote it), with ``section.key=value`` overrides applied.

    A study profile (``params/*.yaml``) is not a run configuration: read it with
    :func:`skinlib.profile.load_study_profile`.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} not found")
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path} is not valid YAML: {err}") from err
    return apply_overrides(config_from_dict(values), overrides)


def save_config(cfg: Config, path: str | Path) -> None:
    """Write the resolved configuration as YAML."""
    Path(path).write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
