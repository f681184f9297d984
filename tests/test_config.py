"""The run config: overrides parsed as YAML, keys and value types checked, config.yaml written and read back (config.py)."""

from __future__ import annotations

import pytest

from skinlib.config import Config, ConfigError, apply_overrides, load_config, save_config


def test_config_overrides_parse_yaml_values(tmp_path):
    cfg = apply_overrides(
        Config(), ["train.epochs=3", "model.arch=vit_tiny", "data.positive=[mel,bcc]"]
    )
    assert cfg.train.epochs == 3
    assert cfg.model.arch == "vit_tiny"
    assert cfg.data.positive == ["mel", "bcc"]
    save_config(cfg, tmp_path / "c.yaml")
    assert load_config(tmp_path / "c.yaml") == cfg


@pytest.mark.parametrize(
    "override, needle",
    [("train.epochz=3", "epochz"), ("nosection.x=1", "nosection"), ("train.epochs", "key=value")],
)
def test_config_errors_name_the_key(override, needle):
    with pytest.raises(ConfigError, match=needle):
        apply_overrides(Config(), [override])


def test_config_checks_value_types():
    cfg = apply_overrides(Config(), ["train.lr=1e-3", "train.epochs=3.0"])
    assert cfg.train.lr == 0.001 and isinstance(cfg.train.epochs, int)
    with pytest.raises(ConfigError, match="train.epochs: expected a whole number"):
        apply_overrides(Config(), ["train.epochs=2.5"])
    with pytest.raises(ConfigError, match="train.ema: expected true or false"):
        apply_overrides(Config(), ["train.ema=maybe"])
    with pytest.raises(ConfigError, match="train.lr: expected a number"):
        apply_overrides(Config(), ["train.lr=fast"])


@pytest.mark.parametrize("value", ["-1", ".nan", ".inf"])
def test_a_time_budget_is_minutes_zero_or_more(value):
    assert apply_overrides(Config(), ["train.budget_min=2.5"]).train.budget_min == 2.5
    assert Config().train.budget_min == 0  # off: train.epochs as given
    with pytest.raises(ConfigError, match=r"train.budget_min=.*0 or more"):
        apply_overrides(Config(), [f"train.budget_min={value}"])


def test_a_budget_needs_an_epoch_cap():
    with pytest.raises(ConfigError, match="train.epochs=0: with train.budget_min"):
        apply_overrides(Config(), ["train.budget_min=5", "train.epochs=0"])
