"""Study profiles and the pipeline's step graph."""

from __future__ import annotations

import pytest

from skinlib import paths
from skinlib.errors import ConfigError
from skinlib.pipeline import PipelineError, build_steps, select_steps
from skinlib.profile import load_study_profile

PROFILES = sorted(paths.params_dir().glob("*.yaml"))


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.stem)
def test_every_profile_loads(profile):
    study = load_study_profile(profile)
    assert study.study == study.config.study
    assert study.architectures
    for name in study.imbalance.strategies:
        cfg = study.strategy_config(name)
        assert cfg.run == f"imbalance_{name}"
        assert cfg.model.arch == study.imbalance.arch


def test_strategy_overrides_reach_the_config():
    study = load_study_profile("params/demo.yaml")
    assert study.strategy_config("focal").imbalance.loss == "focal"
    assert study.strategy_config("selection").train.selection_rate == 0.25
    assert study.strategy_config("none").imbalance.loss == study.config.imbalance.loss
    with pytest.raises(ConfigError, match="unknown imbalance strategy"):
        study.strategy_config("smote")


def test_unknown_profile_section_is_refused(tmp_path):
    (tmp_path / "p.yaml").write_text("study: x\narchitectures: [resnet18]\nevaluaton: {}\n")
    with pytest.raises(ConfigError, match="evaluaton"):
        load_study_profile(tmp_path / "p.yaml")


def test_steps_expand_per_architecture_and_only_pulls_dependencies():
    study = load_study_profile("params/demo.yaml")
    steps = build_steps(study, "params/demo.yaml", [])
    names = [s.name for s in steps]
    assert names[0] == "01_eda" and names[-1] == "08_trust"
    assert [n for n in names if n.startswith("03_train_")] == [
        f"03_train_{a}" for a in study.architectures
    ]
    chosen = {s.name for s in select_steps(steps, ["05_thresholds"])}
    assert chosen == {"05_thresholds", "04_calibration"} | {
        f"03_train_{a}" for a in study.architectures
    }
    assert {s.name for s in select_steps(steps, ["01_eda"])} == {"01_eda"}
    with pytest.raises(PipelineError, match="no such step"):
        select_steps(steps, ["08_nothing"])


def test_recipes_sit_between_the_profile_and_the_set_overrides(tmp_path):
    (tmp_path / "p.yaml").write_text(
        "study: x\narchitectures: [resnet18, swin_tiny]\n"
        "recipes: {swin_tiny: {train.lr: 0.0005, train.warmup_epochs: 2}}\n"
        "imbalance: {arch: swin_tiny, strategies: {focal: {imbalance.loss: focal, train.lr: 0.01}}}\n"
        "config: {train: {lr: 0.002, epochs: 3}}\n"
    )
    study = load_study_profile(tmp_path / "p.yaml")
    assert study.run_config("resnet18").train.lr == 0.002
    swin = study.run_config("swin_tiny")
    assert (swin.train.lr, swin.train.warmup_epochs, swin.train.epochs) == (0.0005, 2, 3)
    assert study.strategy_config("focal").train.lr == 0.01  # the strategy is the variable
    cli = load_study_profile(tmp_path / "p.yaml", ["train.lr=0.1", "model.arch=vit_tiny"])
    assert cli.run_config("swin_tiny").train.lr == 0.1  # --set beats the recipe
    assert cli.run_config("swin_tiny").model.arch == "swin_tiny"
    assert cli.run_config("swin_tiny").train.warmup_epochs == 2


@pytest.mark.parametrize(
    ("recipes", "needle"),
    [("{vit_base: {train.lr: 0.1}}", "does not train"), ("{resnet18: {train.lrr: 1}}", "lrr")],
)
def test_bad_recipes_are_refused(tmp_path, recipes, needle):
    (tmp_path / "p.yaml").write_text(f"study: x\narchitectures: [resnet18]\nrecipes: {recipes}\n")
    with pytest.raises(ConfigError, match=needle):
        load_study_profile(tmp_path / "p.yaml")
