"""Study profiles (``params/*.yaml``): the run configuration plus what the study compares.

A profile has a ``config`` section (a :class:`skinlib.config.Config`, shared by every run) and the
study's own sections: which architectures to train (and, under ``recipes``, what an architecture
trains with that the others do not, such as a lower learning rate for a transformer), which
imbalance strategies to compare, and how to evaluate. This module is the one reader of profiles:
notebooks, the pipeline and every command read them only through :func:`load_study_profile`,
and a run's config comes from :meth:`StudyProfile.run_config` (:func:`resolve_run_config` for
the command line, which also accepts a run's saved ``config.yaml``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from skinlib import paths
from skinlib.config import Config, apply_overrides, config_from_dict, load_config
from skinlib.data.formats import FORMATS
from skinlib.errors import ConfigError

# What "no imbalance handling" means: every strategy run starts here, whatever the profile's own
# config uses for the architecture runs (say focal loss), so each arm is the neutral base plus
# exactly its own change. A profile that wants a non-neutral shared base says so in ``common``.
NEUTRAL_IMBALANCE: dict[str, Any] = {
    "imbalance.loss": "ce",
    "imbalance.class_weights": "none",
    "imbalance.alpha": None,
    "imbalance.sampler": "none",
    "imbalance.label_smoothing": 0.0,
    "imbalance.drw_epoch": 0.0,
    # logit adjustment's strength at its published default: an architecture's recipe may tune it,
    # the arms start from 1 (balanced softmax refuses any other)
    "imbalance.tau": 1.0,
    "train.selection_rate": 1.0,
    "model.metadata": False,  # the image alone: the metadata branch is an arm of its own
}


@dataclass
class ImbalanceStudy:
    """02_imbalance: one architecture trained under each strategy with equal budgets.

    A strategy's run is the profile's config (with the architecture's recipe and ``--set``), then
    :data:`NEUTRAL_IMBALANCE`, then ``common``, then the strategy's own overrides.
    """

    arch: str = "resnet18"
    # overrides every strategy run shares (the equal budget), e.g. {"train.epochs": 4}; applied
    # after the neutral base, so a shared non-neutral setting must be written here explicitly
    common: dict[str, Any] = field(default_factory=dict)
    # strategy name -> config overrides (``section.key: value``) applied to the base config
    strategies: dict[str, dict[str, Any]] = field(
        default_factory=lambda: {
            "none": {},
            "weighted_ce": {"imbalance.class_weights": "inverse"},
            "focal": {"imbalance.loss": "focal", "imbalance.gamma": 2.0},
            "oversampling": {"imbalance.sampler": "weighted"},
            "selection": {"train.selection_rate": 0.25},
        }
    )


@dataclass
class TrustSettings:
    """08_trust: when to trust the model (conformal sets, deferral, subgroups, unknown inputs)."""

    run: str = ""  # the run audited; empty: the architecture best on validation balanced accuracy
    coverages: list[float] = field(default_factory=lambda: [0.9, 0.95])  # first: stored for the app
    set_method: str = "lac"  # conformal score stored for the app: lac | aps | raps
    deferral_accuracy: float = 0.9  # balanced accuracy the answered validation images must reach
    # fixed shares of validation images answered, reported beside the target (a weak model may
    # reach no accuracy target: these still show what deferring buys, and which class it costs)
    deferral_coverages: list[float] = field(default_factory=lambda: [0.9, 0.7, 0.5])
    unknown_class: str = "scc"  # a class the run never saw, as near-unknown inputs
    # real profiles: an ISIC 2019 folder whose images of unknown_class are the near unknowns
    # (SynthDerm draws them when the study runs on SynthDerm; empty on real data: far ones only)
    unknown_root: str = ""
    unknown_images: int = 60  # demo unknown images of each kind (unseen class, blank, artefacts)
    min_lesions: int = 20  # subgroups with fewer test lesions are marked small

    def __post_init__(self):
        shares = {"coverages": self.coverages, "deferral_coverages": self.deferral_coverages}
        for key, values in shares.items():
            if not all(isinstance(v, int | float) and 0 < v <= 1 for v in values):
                raise ConfigError(f"trust.{key}={values}: shares in (0, 1] expected, e.g. [0.9]")


@dataclass(frozen=True)
class ExternalSet:
    """One external test set of a profile (``evaluation.external``)."""

    name: str  # names the set in tables and its folder under <run>/external/
    format: str  # a dataset format: isic2018, ph2, isic2019, isic2020, ham10000, folder
    root: str  # dataset folder or label file; a relative path is taken from the project root
    drop_unmapped: bool = False  # drop images of classes the model lacks (ISIC 2019's scc)
    skip_missing: bool = False  # skip listed images whose file is missing (Dataverse ISIC 2018)

    def path(self) -> Path:
        root = Path(self.root).expanduser()
        return root if root.is_absolute() else paths.PROJECT_ROOT / root


def parse_external_sets(entries: Iterable[dict | ExternalSet] | None) -> list[ExternalSet]:
    """Profile entries (``{name, format, root, ...}``) as :class:`ExternalSet`, checked.

    Raises:
        ConfigError: an entry that is not a mapping, lacks a key, has an unknown key or format,
            or repeats a name.
    """
    known = {f.name for f in fields(ExternalSet)}
    out: list[ExternalSet] = []
    for i, entry in enumerate(entries or []):
        if isinstance(entry, ExternalSet):
            out.append(entry)
            continue
        where = f"evaluation.external[{i}]"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: expected a mapping {{name, format, root}}, got {entry!r}")
        missing = sorted({"name", "format", "root"} - set(entry))
        unknown = sorted(set(entry) - known)
        if missing or unknown:
            raise ConfigError(
                f"{where}: missing key(s) {missing}, unknown key(s) {unknown}; "
                f"expected {sorted(known)}"
            )
        if entry["format"] not in FORMATS:
            raise ConfigError(
                f"{where}: unknown format {entry['format']!r}; choose one of {list(FORMATS)}"
            )
        out.append(ExternalSet(**{**entry, "name": str(entry["name"]), "root": str(entry["root"])}))
    names = [s.name for s in out]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ConfigError(f"evaluation.external: set name(s) {repeated} used twice")
    return out


@dataclass
class EvaluationSettings:
    """How 04-07 evaluate the runs."""

    positive: list[str] = field(default_factory=lambda: ["mel"])  # main operating-point class
    malignant: list[str] = field(default_factory=lambda: ["akiec", "bcc", "mel", "scc"])
    specificity: float = 0.95  # target specificity on validation for the operating point
    n_boot: int = 1000  # bootstrap resamples for confidence intervals
    tta: bool = True  # add test-time-augmentation rows to the comparison
    ensemble: bool = True  # add an ensemble-of-all-architectures row
    xai_method: str = "gradcam"  # gradcam | gradcam++ | scorecam | eigencam
    xai_images: int = 24  # images scored per architecture for the mask score
    gallery_per_kind: int = 3  # images per gallery column (TP, FN, FP)
    # external test sets, each {name, format, root[, drop_unmapped, skip_missing]}, e.g.
    # {name: isic2018_test, format: isic2018, root: data/ISIC2018}; root may be the label file
    # itself (an ISIC 2018 Validation CSV picks that split). Empty: internal test only.
    # See ExternalSet; skinlib.external.sets.evaluate_external_sets evaluates them.
    external: list[ExternalSet] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.external = parse_external_sets(self.external)


BUDGET_SHARES = ("architectures", "imbalance", "reserve")


@dataclass
class BudgetSettings:
    """The study's time budget (``budget:``): its total wall-clock minutes and how they are
    shared, each share a fraction of the total.

    ``architectures`` is split equally among the architecture runs (03), ``imbalance`` equally
    among the imbalance arms (02: the same time for every arm), and ``reserve`` is kept for what
    is not training (01, every notebook's evaluation, TTA, Grad-CAM, the trust audit, the
    methods). Each run gets its minutes as ``train.budget_min`` (see
    :mod:`skinlib.training.budget`), with ``train.epochs`` as the cap. ``skinlib pipeline
    --budget-min N`` (or ``--set budget.total_min=N``) sets the total; the shares stay.
    """

    total_min: float = (
        0.0  # the whole study, wall clock; 0 = no budget (every run's epochs as given)
    )
    architectures: float = 0.65  # share of the total for the architecture runs, equal per run
    imbalance: float = 0.25  # share for the imbalance arms, equal per arm
    reserve: float = 0.10  # share kept for everything that is not training

    def __post_init__(self) -> None:
        for name in ("total_min", *BUDGET_SHARES):
            value = getattr(self, name)
            if isinstance(value, str):  # YAML reads 1e-3 (no dot) as text
                with contextlib.suppress(ValueError):
                    value = float(value)
                    setattr(self, name, value)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(f"budget.{name}={value!r}: expected a number")
            if not (math.isfinite(value) and value >= 0):
                raise ConfigError(f"budget.{name}={value!r}: expected a number, 0 or more")
        total = sum(getattr(self, name) for name in BUDGET_SHARES)
        if abs(total - 1) > 1e-6:
            shares = ", ".join(f"{name} {getattr(self, name):g}" for name in BUDGET_SHARES)
            raise ConfigError(
                f"budget: the shares ({shares}) add up to {total:g}; they are fractions of "
                "budget.total_min and must add up to 1"
            )

    def minutes(self, share: str, runs: int) -> float:
        """The minutes of one of ``runs`` runs that split ``share`` equally (0: no budget)."""
        if not self.total_min:
            return 0.0
        return round(self.total_min * getattr(self, share) / max(1, runs), 3)


EXECUTORS = ("local", "local-parallel", "slurm")


@dataclass
class ClusterSettings:
    """Where the pipeline's trainings run (``skinlib pipeline --executor``) and what each asks for.

    ``local`` trains inside the notebooks, one run after another; ``local-parallel`` and ``slurm``
    train every run as its own job first (see :mod:`skinlib.study.jobs`), then run the notebooks.
    """

    executor: str = "local"  # local | local-parallel | slurm
    jobs: int = 2  # local-parallel: trainings at once on this machine (e.g. one per GPU)
    gpus_per_job: int = 0  # several: one process per GPU under torch distributed, as torchrun
    partition: str = ""  # SLURM partition ("" = the cluster's default)
    time_min: int = 240  # SLURM time limit per job; a job that reaches it is requeued and resumes
    cpus_per_task: int = 8  # CPU cores per process (data loading), SLURM --cpus-per-task
    mem_gb: int = 32  # memory per job (node share), SLURM --mem
    account: str = ""  # SLURM --account, where the cluster bills by account
    setup: list[str] = field(default_factory=list)  # shell lines before a job (module load ...)
    # further sbatch options by name, e.g. {"qos": "normal", "constraint": "a100"}
    sbatch: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.executor not in EXECUTORS:
            raise ConfigError(
                f"cluster.executor={self.executor!r}; choose one of {list(EXECUTORS)}"
            )
        for name in ("jobs", "time_min", "cpus_per_task", "mem_gb"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"cluster.{name} must be at least 1, not {getattr(self, name)}")
        if self.gpus_per_job < 0:
            raise ConfigError(f"cluster.gpus_per_job must be 0 or more, not {self.gpus_per_job}")


@dataclass
class StudyProfile:
    """A whole study: name, base run config, and the comparisons it makes.

    Every run's config comes from :meth:`run_config` (or :meth:`strategy_config`): the CLI's
    ``skinlib train --profile P --arch A``, the pipeline and the notebooks resolve it the same way.
    """

    study: str  # the profile's ``study:``, else its file name; names experiments/<study>/
    base: Config  # the profile's ``config`` section, before recipes and --set overrides
    architectures: list[str]
    imbalance: ImbalanceStudy
    evaluation: EvaluationSettings
    path: Path | None = None
    # architecture -> config overrides of its own recipe (e.g. a lower learning rate for Swin)
    recipes: dict[str, dict[str, Any]] = field(default_factory=dict)
    overrides: list[str] = field(default_factory=list)  # the --set overrides, in order
    trust: TrustSettings = field(default_factory=TrustSettings)
    cluster: ClusterSettings = field(default_factory=ClusterSettings)  # where trainings run
    budget: BudgetSettings = field(default_factory=BudgetSettings)  # the study's time budget
    sections: dict[str, Any] = field(default_factory=dict, repr=False)  # the file, as read

    def text(self) -> str:
        """The profile as a step's result depends on it: every section as read but ``cluster:``
        (where runs train), so moving a study to the cluster reruns nothing."""
        data = {k: v for k, v in self.sections.items() if k != "cluster"}
        return json.dumps(data, sort_keys=True, default=str)

    @property
    def config(self) -> Config:
        """The study-level config: the profile's ``config`` with the ``--set`` overrides (what
        the data steps use; a run adds its recipe on top, see :meth:`run_config`)."""
        return apply_overrides(self.base, [*self.overrides, f"study={self.study}"])

    def run_config(
        self,
        arch: str,
        run: str | None = None,
        overrides: dict | None = None,
        share: str = "architectures",
    ) -> Config:
        """The config of one run of ``arch``.

        Precedence, lowest first: the profile's ``config``, the run's time from the ``budget:``
        section (``train.budget_min``, its equal part of ``share``), the architecture's recipe,
        the ``--set`` overrides, then ``overrides`` (an imbalance strategy's).
        """
        items = self._budget_items(share)
        items += _items(self.recipes.get(arch, {})) + self.overrides + _items(overrides or {})
        items += [f"model.arch={arch}", f"run={run or arch}", f"study={self.study}"]
        return apply_overrides(self.base, items)

    def _budget_items(self, share: str) -> list[str]:
        if not self.budget.total_min:
            return []
        runs = len(self.architectures if share == "architectures" else self.imbalance.strategies)
        return [f"train.budget_min={self.budget.minutes(share, runs)}"]

    def strategy_config(self, name: str) -> Config:
        """The config of one imbalance-strategy run (run name ``imbalance_<name>``)."""
        if name not in self.imbalance.strategies:
            raise ConfigError(
                f"unknown imbalance strategy {name!r}; the profile defines "
                f"{sorted(self.imbalance.strategies)}"
            )
        overrides = {
            **NEUTRAL_IMBALANCE,
            **self.imbalance.common,
            **self.imbalance.strategies[name],
        }
        return self.run_config(self.imbalance.arch, f"imbalance_{name}", overrides, "imbalance")


def imbalance_settings(cfg: Config) -> dict[str, Any]:
    """What an imbalance run actually trained with, for the 02 table (so a reader sees each arm).

    >>> from skinlib.config import Config
    >>> imbalance_settings(Config())
    {'loss': 'ce', 'class weights': 'none', 'sampler': 'none', 'selection rate': 1.0, 'label smoothing': 0.0, 'inputs': 'image'}
    """
    imb = cfg.imbalance
    loss = {
        "focal": f"focal (gamma {imb.gamma:g})",
        "logit_adjusted": f"logit adjusted (tau {imb.tau:g})",
        "balanced_softmax": "balanced softmax",
    }.get(imb.loss, imb.loss)
    weights = imb.class_weights
    if imb.drw_epoch:
        start = imb.drw_start(cfg.train.epochs)
        weights = f"effective from epoch {start + 1} (deferred)"
    return {
        "loss": loss,
        "class weights": weights,
        "sampler": imb.sampler,
        "selection rate": cfg.train.selection_rate,
        "label smoothing": imb.label_smoothing,
        "inputs": "image, age, sex, site" if cfg.model.metadata else "image",
    }


def _items(overrides: dict[str, Any]) -> list[str]:
    return [f"{k}={_yaml_value(v)}" for k, v in overrides.items()]


def _yaml_value(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


def _section(cls: type, values: Any, name: str) -> Any:
    values = values or {}
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(
            f"profile section {name!r}: unknown key(s) {unknown}; expected {sorted(known)}"
        )
    return cls(**values)


def resolve_profile_path(profile: str | Path) -> Path:
    """Profiles are given relative to the project root (as in notebooks) or as any path."""
    path = Path(profile)
    if not path.is_absolute() and not path.exists():
        path = paths.PROJECT_ROOT / path
    return path


def read_profile(path: str | Path) -> dict[str, Any]:
    """A profile's YAML as a dict, with a clear error when it is missing or malformed."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"profile {path} not found; the profiles live in params/")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"profile {path} is not valid YAML: {err}") from err
    if not isinstance(data, dict):
        raise ConfigError(f"profile {path}: expected a mapping at the top level")
    return data


def load_study_profile(profile: str | Path, overrides: list[str] | None = None) -> StudyProfile:
    """Read a profile; ``overrides`` (``section.key=value``) change its run config, and
    ``budget.key=value`` ones its ``budget:`` section (``skinlib pipeline --budget-min``)."""
    path = resolve_profile_path(profile)
    data = read_profile(path)
    known = {"study", "config", "architectures", "recipes", "imbalance", "evaluation"}
    known |= {"cluster", "trust", "budget"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"profile {path}: unknown section(s) {unknown}; expected {sorted(known)}")
    study = data.get("study") or path.stem
    if any(item.strip().startswith("study=") for item in overrides or []):
        raise ConfigError(
            f"--set study=...: the study name comes from the profile ({study!r}, its `study:` "
            "or file name); copy the profile under a new name to start another study"
        )
    overrides, budget = _budget_overrides(list(overrides or []), data.get("budget"))
    base = config_from_dict({**(data.get("config") or {}), "study": study})
    archs = data.get("architectures") or [apply_overrides(base, overrides).model.arch]
    profile = StudyProfile(
        study=study,
        base=base,
        architectures=list(archs),
        imbalance=_section(ImbalanceStudy, data.get("imbalance"), "imbalance"),
        evaluation=_section(EvaluationSettings, data.get("evaluation"), "evaluation"),
        path=path,
        recipes=dict(data.get("recipes") or {}),
        overrides=overrides,
        cluster=_section(ClusterSettings, data.get("cluster"), "cluster"),
        trust=_section(TrustSettings, data.get("trust"), "trust"),
        budget=_section(BudgetSettings, budget, "budget"),
        sections=data,
    )
    _check_recipes(profile, path)
    _check_budget(profile, path)
    return profile


def _budget_overrides(overrides: list[str], section: Any) -> tuple[list[str], dict]:
    """(the run-config overrides, the ``budget:`` section with the ``budget.*`` ones applied)."""
    if section is not None and not isinstance(section, dict):
        raise ConfigError(f"profile section 'budget': expected a mapping, got {section!r}")
    budget = dict(section or {})
    rest = []
    for item in overrides:
        key, equals, value = item.partition("=")
        if not key.strip().startswith("budget."):
            rest.append(item)
            continue
        name = key.strip().removeprefix("budget.")
        if name not in BudgetSettings.__dataclass_fields__ or not equals:
            raise ConfigError(
                f"override {item!r}: write it as budget.KEY=VALUE with KEY one of "
                f"{sorted(BudgetSettings.__dataclass_fields__)}"
            )
        budget[name] = yaml.safe_load(value)
    return rest, budget


def _check_budget(profile: StudyProfile, path: Path) -> None:
    """With a total, the ``budget:`` section alone gives the runs their minutes, and every group
    of runs the study trains has a share."""
    budget = profile.budget
    if not budget.total_min:
        return
    groups = {"architectures": profile.architectures, "imbalance": profile.imbalance.strategies}
    for share, runs in groups.items():
        if runs and not getattr(budget, share):
            raise ConfigError(
                f"profile {path}: budget.{share} is 0 but the study trains {len(runs)} such "
                f"run(s); give them a share of budget.total_min"
            )
    settings = {
        "config": {"train.budget_min": profile.base.train.budget_min},
        **{f"recipes.{arch}": recipe for arch, recipe in profile.recipes.items()},
        "imbalance.common": profile.imbalance.common,
        **{f"imbalance.strategies.{n}": s for n, s in profile.imbalance.strategies.items()},
    }
    for where, values in settings.items():
        if values.get("train.budget_min"):
            raise ConfigError(
                f"profile {path}: {where} sets train.budget_min, but the budget: section shares "
                f"budget.total_min among the runs; remove one of the two"
            )


def _check_recipes(profile: StudyProfile, path: Path) -> None:
    """Recipes name architectures the study trains, with overrides the config accepts."""
    trained = {*profile.architectures, profile.imbalance.arch}
    for arch, recipe in profile.recipes.items():
        if arch not in trained:
            raise ConfigError(
                f"profile {path}: recipes names {arch!r}, which the study does not train "
                f"(architectures: {profile.architectures})"
            )
        if not isinstance(recipe, dict):
            raise ConfigError(f"profile {path}: recipes.{arch} must map keys to values")
        try:
            profile.run_config(arch)
        except ConfigError as err:
            raise ConfigError(f"profile {path}: recipes.{arch}: {err}") from None


def resolve_run_config(
    profile: str | Path | None = None,
    config: str | Path | None = None,
    overrides: list[str] | None = None,
    arch: str | None = None,
    strategy: str | None = None,
) -> Config:
    """The config of one run as the command line names it, by the pipeline's own resolution.

    Args:
        profile: a study profile: the run of ``strategy`` (an imbalance arm), else of ``arch``
            (default: the profile's first architecture), with ``overrides``.
        config: instead, a run's saved ``config.yaml`` (to reproduce or continue it); a study
            profile given here is refused, so that its recipes apply as in the pipeline.
    """
    if config is not None:
        if set(read_profile(config)) - set(Config.__dataclass_fields__):
            raise ConfigError(
                f"{config} is a study profile, not a run config: use --profile "
                f"{config} --arch ARCH so that its recipes apply as in the pipeline"
            )
        return load_config(config, overrides)
    study = load_study_profile(profile, overrides)
    if strategy:
        return study.strategy_config(strategy)
    return study.run_config(arch or study.architectures[0])
