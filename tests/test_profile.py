"""Study profiles and the pipeline's step graph."""

from __future__ import annotations

import pytest
import yaml

from skinlib import paths
from skinlib.cli import main
from skinlib.errors import ConfigError
from skinlib.profile import imbalance_settings, load_study_profile, parse_external_sets
from skinlib.study.pipeline import PipelineError, build_steps, select_steps

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
    assert study.strategy_config("none").imbalance.loss == "ce"
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
    assert names[0] == "01_eda" and names[-2:] == ["08_trust", "09_audit"]
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


@pytest.mark.parametrize("profile", ["params/ham10000.yaml", "params/isic2019.yaml"])
def test_each_imbalance_arm_is_the_neutral_base_plus_its_own_change(profile):
    """The real profiles train with focal loss; the arms must not inherit it (regression)."""
    study = load_study_profile(profile)
    assert study.config.imbalance.loss == "focal"  # the architecture runs' setting
    arms = {
        name: imbalance_settings(study.strategy_config(name)) for name in study.imbalance.strategies
    }
    neutral = {
        "loss": "ce",
        "class weights": "none",
        "sampler": "none",
        "selection rate": 1.0,
        "label smoothing": 0.0,
        "inputs": "image",
    }
    assert arms["none"] == neutral
    assert arms["weighted_ce"] == {**neutral, "class weights": "inverse"}
    assert arms["focal"] == {**neutral, "loss": "focal (gamma 2)"}
    assert arms["oversampling"] == {**neutral, "sampler": "weighted"}
    assert arms["selection"] == {**neutral, "selection rate": 0.25}


def test_a_shared_non_neutral_base_is_written_in_common(tmp_path):
    (tmp_path / "p.yaml").write_text(
        "study: x\narchitectures: [resnet18]\n"
        "imbalance: {arch: resnet18, common: {imbalance.label_smoothing: 0.1},"
        " strategies: {none: {}, focal: {imbalance.loss: focal}}}\n"
        "config: {imbalance: {loss: focal, sampler: weighted}}\n"
    )
    study = load_study_profile(tmp_path / "p.yaml", ["train.selection_rate=0.5"])
    none = study.strategy_config("none")
    assert (none.imbalance.loss, none.imbalance.sampler) == ("ce", "none")
    assert none.train.selection_rate == 1.0  # --set does not leak into the arms either
    assert none.imbalance.label_smoothing == 0.1
    assert study.strategy_config("focal").imbalance.label_smoothing == 0.1


def _train_config(*argv: str):
    """The config `skinlib train ARGV --print-config` prints."""
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["train", *argv, "--print-config"]) == 0
    return yaml.safe_load(out.getvalue())


def test_train_cli_resolves_a_run_as_the_pipeline_does():
    """One resolution path: profile < recipe < --set < strategy, the same for CLI and pipeline."""
    study = load_study_profile("params/demo.yaml", ["train.epochs=2"])
    cli = _train_config(
        "--profile", "params/demo.yaml", "--arch", "efficientnet_b0", "--set", "train.epochs=2"
    )
    assert cli == study.run_config("efficientnet_b0").to_dict()
    assert cli["train"]["lr"] == 0.005 and cli["train"]["epochs"] == 2  # the recipe applies
    arm = _train_config("--profile", "params/ham10000.yaml", "--strategy", "none")
    assert arm == load_study_profile("params/ham10000.yaml").strategy_config("none").to_dict()
    assert arm["imbalance"]["loss"] == "ce"


def test_train_cli_refuses_a_profile_given_as_a_run_config():

    assert main(["train", "--config", "params/demo.yaml"]) != 0


def test_study_config_is_derived_and_its_name_has_one_rule(tmp_path):
    study = load_study_profile("params/demo.yaml", ["train.epochs=3"])
    assert study.config.train.epochs == 3 and study.base.train.epochs == 5
    assert study.config.study == study.run_config("resnet18").study == "demo"
    (tmp_path / "mine.yaml").write_text("architectures: [resnet18]\n")
    assert load_study_profile(tmp_path / "mine.yaml").config.study == "mine"  # the file name
    with pytest.raises(ConfigError, match="study name comes from the profile"):
        load_study_profile("params/demo.yaml", ["study=other"])


def test_profile_external_sets(tmp_path):
    from skinlib.profile import load_study_profile

    profile = tmp_path / "p.yaml"
    profile.write_text(
        "evaluation:\n  external:\n"
        "    - {name: isic2018_test, format: isic2018, root: data/ISIC2018}\n"
        "    - {name: ph2, format: ph2, root: /data/PH2Dataset/PH2_dataset.txt}\n"
    )
    sets = load_study_profile(profile).evaluation.external
    assert [(s.name, s.format, s.skip_missing) for s in sets] == [
        ("isic2018_test", "isic2018", False),
        ("ph2", "ph2", False),
    ]
    assert (
        sets[0].path().is_absolute() and str(sets[1].path()) == "/data/PH2Dataset/PH2_dataset.txt"
    )
    assert load_study_profile("params/demo.yaml").evaluation.external == []
    for bad, message in [
        ([{"name": "a", "format": "ph3", "root": "x"}], "unknown format 'ph3'"),
        ([{"name": "a", "format": "ph2"}], r"missing key\(s\) \['root'\]"),
        ([{"name": "a", "format": "ph2", "root": "x", "tta": True}], r"unknown key\(s\) \['tta'\]"),
        ([{"name": "a", "format": "ph2", "root": "x"}] * 2, r"\['a'\] used twice"),
        (["ph2"], "expected a mapping"),
    ]:
        with pytest.raises(ConfigError, match=message):
            parse_external_sets(bad)


def test_profile_trust_section(tmp_path):
    import pytest

    from skinlib.errors import ConfigError
    from skinlib.profile import load_study_profile

    path = tmp_path / "p.yaml"
    path.write_text(
        "study: x\narchitectures: [resnet18]\ntrust: {coverages: [0.8], run: resnet18}\n"
    )
    trust = load_study_profile(path).trust
    assert trust.coverages == [0.8] and trust.run == "resnet18" and trust.set_method == "lac"
    assert load_study_profile("params/demo.yaml").trust.coverages == [0.9, 0.95]
    path.write_text("study: x\narchitectures: [resnet18]\ntrust: {coverage: 0.8}\n")
    with pytest.raises(ConfigError, match="coverage"):
        load_study_profile(path)


def test_unknown_profile_key_is_refused(tmp_path):
    (tmp_path / "p.yaml").write_text("config:\n  train:\n    lr: 0.1\n    warmup: 2\n")
    with pytest.raises(ConfigError, match="warmup"):
        load_study_profile(tmp_path / "p.yaml")


BUDGETED = (
    "study: x\narchitectures: [resnet18, vit_tiny]\n"
    "imbalance: {arch: resnet18, strategies: {none: {}, focal: {imbalance.loss: focal},"
    " selection: {train.selection_rate: 0.5}}}\n"
    "config: {train: {epochs: 30}}\n"
)


def test_the_budget_section_gives_each_run_its_share(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("budget: {total_min: 60, architectures: 0.5, imbalance: 0.3, reserve: 0.2}\n")
    path.write_text(path.read_text() + BUDGETED)
    study = load_study_profile(path)
    # architectures: 60 * 0.5 / 2 runs; imbalance: 60 * 0.3 / 3 arms, equal per arm
    assert [study.run_config(a).train.budget_min for a in study.architectures] == [15.0, 15.0]
    arms = [study.strategy_config(s).train.budget_min for s in study.imbalance.strategies]
    assert arms == [6.0, 6.0, 6.0]
    assert study.run_config("resnet18").train.epochs == 30  # the cap stays
    # --set budget.total_min (what --budget-min writes) scales every share; the shares stay
    halved = load_study_profile(path, ["budget.total_min=30"])
    assert halved.run_config("vit_tiny").train.budget_min == 7.5
    assert halved.strategy_config("focal").train.budget_min == 3.0
    assert halved.overrides == [] and halved.budget.reserve == 0.2
    # a --set of one run's minutes is the command line's, above the share
    assert (
        load_study_profile(path, ["train.budget_min=2"]).run_config("resnet18").train.budget_min
        == 2
    )
    # without a budget: the epochs as given
    (tmp_path / "plain.yaml").write_text(BUDGETED)
    assert load_study_profile(tmp_path / "plain.yaml").run_config("resnet18").train.budget_min == 0


@pytest.mark.parametrize(
    ("budget", "extra", "needle"),
    [
        ("{total_min: 60, architectures: 0.5, imbalance: 0.3, reserve: 0.3}", "", "add up to 1.1"),
        ("{total_min: -5}", "", r"budget.total_min=-5: expected a number, 0 or more"),
        ("{total_min: soon}", "", "budget.total_min='soon': expected a number"),
        ("{total: 60}", "", "unknown key.*total"),
        ("{total_min: 60, architectures: 0.9, imbalance: 0, reserve: 0.1}", "", "imbalance is 0"),
        ("{total_min: 60}", "recipes: {vit_tiny: {train.budget_min: 5}}\n", "recipes.vit_tiny"),
        ("{total_min: 60}", "", None),
    ],
)
def test_bad_budgets_are_refused(tmp_path, budget, extra, needle):
    (tmp_path / "p.yaml").write_text(f"budget: {budget}\n{extra}{BUDGETED}")
    if needle is None:
        assert load_study_profile(tmp_path / "p.yaml").budget.total_min == 60
        return
    with pytest.raises(ConfigError, match=needle):
        load_study_profile(tmp_path / "p.yaml")


@pytest.mark.parametrize(
    "overrides", [["budget.total_min=soon"], ["budget.total=5"], ["budget.total_min"]]
)
def test_bad_budget_overrides_are_refused(overrides):
    with pytest.raises(ConfigError, match="budget.total"):
        load_study_profile("params/demo.yaml", overrides)


def test_pipeline_budget_flag_sets_the_total(tmp_path, monkeypatch, capsys):
    from skinlib.study import pipeline

    (tmp_path / "p.yaml").write_text("budget: {total_min: 60}\n" + BUDGETED)
    seen = {}
    monkeypatch.setattr(pipeline, "run_pipeline", lambda p, o, *a, **k: seen.update(o=o) or {})
    argv = ["pipeline", "--profile", str(tmp_path / "p.yaml"), "--set", "train.lr=0.1"]
    assert main([*argv, "--budget-min", "12"]) == 0
    assert seen["o"] == ["train.lr=0.1", "budget.total_min=12"]  # the notebooks get it too
    study = load_study_profile(tmp_path / "p.yaml", seen["o"])
    assert study.run_config("resnet18").train.budget_min == 3.9  # 12 * 0.65 / 2
    assert study.strategy_config("none").train.budget_min == 1.0  # 12 * 0.25 / 3
    assert main([*argv, "--budget-min", "-1", "--list"]) == 2
    assert "budget.total_min=-1: expected a number, 0 or more" in capsys.readouterr().err


@pytest.mark.parametrize(("profile", "total"), [("ham10000_cpu", 60), ("demo", 8)])
def test_the_cpu_profiles_state_a_budget_their_runs_share(profile, total):
    study = load_study_profile(f"params/{profile}.yaml")
    assert study.budget.total_min == total
    runs = [study.run_config(a) for a in study.architectures]
    runs += [study.strategy_config(s) for s in study.imbalance.strategies]
    minutes = [cfg.train.budget_min for cfg in runs]
    assert all(m > 0 for m in minutes)
    assert sum(minutes) + total * study.budget.reserve == pytest.approx(total, abs=0.01)
    assert all(cfg.train.epochs >= 2 for cfg in runs)  # the caps


def test_the_laptop_profiles_lever_arms_are_the_neutral_base_plus_their_own_change():
    study = load_study_profile("params/ham10000_cpu.yaml")
    arms = {
        name: imbalance_settings(study.strategy_config(name)) for name in study.imbalance.strategies
    }
    neutral = arms["none"]
    assert neutral["loss"] == "ce" and neutral["inputs"] == "image"
    assert arms["logit_adjusted"] == {**neutral, "loss": "logit adjusted (tau 1)"}
    assert arms["balanced_softmax"] == {**neutral, "loss": "balanced softmax"}
    assert arms["drw"] == {**neutral, "class weights": "effective from epoch 2 (deferred)"}
    assert arms["metadata"] == {**neutral, "inputs": "image, age, sex, site"}
    assert study.strategy_config("metadata").model.metadata
    # the levers enter only the recipe validation chose them for (ResNet-18, the fourth round)
    levers = {
        arch: (c.imbalance.loss, c.imbalance.tau, c.imbalance.drw_epoch, c.model.metadata)
        for arch in study.architectures
        for c in [study.run_config(arch)]
    }
    assert levers == {
        "resnet18": ("logit_adjusted", 0.5, 0, True),
        "efficientnet_b0": ("ce", 1.0, 0, False),
    }


def test_an_architectures_tuned_tau_does_not_leak_into_the_arms():
    """ResNet-18's recipe sets tau 0.5; the arms (balanced softmax refuses it) start from 1."""
    study = load_study_profile("params/ham10000_cpu.yaml")
    assert study.run_config("resnet18").imbalance.tau == 0.5
    for name in study.imbalance.strategies:
        cfg = study.strategy_config(name)
        assert cfg.imbalance.tau == 1.0, name
