"""Study profiles (``params/*.yaml``): the run configuration plus what the study compares.

A profile has a ``config`` section (a :class:`skinlib.config.Config`, shared by every run) and the
study's own sections: which architectures to train (and, under ``recipes``, what an architecture
trains with that the others do not, such as a lower learning rate for a transformer), which
imbalance strategies to compare, and how to evaluate. Notebooks and the pipeline read profiles
only through :func:`load_study_profile`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from skinlib import paths
from skinlib.config import Config, apply_overrides, config_from_dict, load_profile
from skinlib.errors import ConfigError


@dataclass
class ImbalanceStudy:
    """02_imbalance: one architecture trained under each strategy with equal budgets."""

    arch: str = "resnet18"
    # overrides every strategy run shares (the equal budget), e.g. {"train.epochs": 4}
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
    unknown_class: str = "scc"  # a class the run never saw, as near-unknown inputs
    # real profiles: an ISIC 2019 folder whose images of unknown_class are the near unknowns
    # (SynthDerm draws them when the study runs on SynthDerm; empty on real data: far ones only)
    unknown_root: str = ""
    unknown_images: int = 60  # demo unknown images of each kind (unseen class, blank, artefacts)
    min_lesions: int = 20  # subgroups with fewer test lesions are marked small


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


@dataclass
class StudyProfile:
    """A whole study: name, base run config, and the comparisons it makes."""

    study: str
    config: Config
    architectures: list[str]
    imbalance: ImbalanceStudy
    evaluation: EvaluationSettings
    path: Path | None = None
    # architecture -> config overrides of its own recipe (e.g. a lower learning rate for Swin)
    recipes: dict[str, dict[str, Any]] = field(default_factory=dict)
    overrides: list[str] = field(default_factory=list)  # the --set overrides, in order
    profile_config: Config | None = None  # ``config`` before the --set overrides
    trust: TrustSettings = field(default_factory=TrustSettings)

    def run_config(
        self, arch: str, run: str | None = None, overrides: dict | None = None
    ) -> Config:
        """The config of one run of ``arch``.

        Precedence, lowest first: the profile's ``config``, the architecture's recipe, the
        ``--set`` overrides, then ``overrides`` (an imbalance strategy's).
        """
        items = _items(self.recipes.get(arch, {})) + self.overrides + _items(overrides or {})
        items += [f"model.arch={arch}", f"run={run or arch}", f"study={self.study}"]
        return apply_overrides(self.profile_config or self.config, items)

    def strategy_config(self, name: str) -> Config:
        """The config of one imbalance-strategy run (run name ``imbalance_<name>``)."""
        if name not in self.imbalance.strategies:
            raise ConfigError(
                f"unknown imbalance strategy {name!r}; the profile defines "
                f"{sorted(self.imbalance.strategies)}"
            )
        overrides = {**self.imbalance.common, **self.imbalance.strategies[name]}
        return self.run_config(self.imbalance.arch, f"imbalance_{name}", overrides)


def _items(overrides: dict[str, Any]) -> list[str]:
    return [f"{k}={_yaml_value(v)}" for k, v in overrides.items()]


def _yaml_value(value: Any) -> str:
    import yaml

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


def load_study_profile(profile: str | Path, overrides: list[str] | None = None) -> StudyProfile:
    """Read a profile; ``overrides`` (``section.key=value``) change its run config."""
    path = resolve_profile_path(profile)
    data = load_profile(path)
    known = {"study", "config", "architectures", "recipes", "imbalance", "evaluation", "trust"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"profile {path}: unknown section(s) {unknown}; expected {sorted(known)}")
    study = data.get("study") or path.stem
    base = config_from_dict({**(data.get("config") or {}), "study": study})
    config = apply_overrides(base, overrides)
    archs = data.get("architectures") or [config.model.arch]
    profile = StudyProfile(
        study=study,
        config=config,
        architectures=list(archs),
        imbalance=_section(ImbalanceStudy, data.get("imbalance"), "imbalance"),
        evaluation=_section(EvaluationSettings, data.get("evaluation"), "evaluation"),
        path=path,
        recipes=dict(data.get("recipes") or {}),
        overrides=list(overrides or []),
        profile_config=base,
        trust=_section(TrustSettings, data.get("trust"), "trust"),
    )
    _check_recipes(profile, path)
    return profile


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
