"""The training engine: every family, complete run folders, resume after SIGKILL, DDP."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from skinlib.config import Config, apply_overrides, save_config
from skinlib.errors import ConfigError
from skinlib.models import cam_spec, create_model, param_groups, resolve_arch
from skinlib.predictions import Predictions
from skinlib.runs import load_model
from skinlib.training import train
from skinlib.training.tables import prepare_table

FAMILIES = ["resnet18", "efficientnet_b0", "densenet121", "vit_tiny", "swin_tiny"]
RUN_FILES = [
    "config.yaml",
    "meta.json",
    "metrics.csv",
    "split.csv",
    "predictions_val.csv",
    "predictions_test.csv",
    "checkpoints/best.pt",
    "checkpoints/last.pt",
]


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory):
    from skinlib.data.synthetic import generate

    return generate(
        tmp_path_factory.mktemp("synth"), n=120, size=40, seed=2, balanced=True, progress=False
    )


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("SKINLIB_EXPERIMENTS", str(tmp_path / "exp"))
    monkeypatch.setenv("SKINLIB_CACHE", str(tmp_path / "cache"))
    return tmp_path


def tiny_config(root, **changes) -> Config:
    items = [
        f"data.root={root}",
        "data.image_size=32",
        "data.num_workers=0",
        "train.epochs=2",
        "train.batch_size=16",
        "train.lr=0.002",
        "train.warmup_epochs=0",
        "study=t",
    ]
    return apply_overrides(Config(), items + [f"{k}={v}" for k, v in changes.items()])


@pytest.mark.slow
@pytest.mark.parametrize("arch", FAMILIES)
def test_each_family_produces_a_complete_run(arch, synth_root, env):
    run = train(tiny_config(synth_root, **{"model.arch": arch}), progress=False)
    for name in RUN_FILES:
        assert (run / name).is_file(), name
    assert any((run / "tb").iterdir())
    metrics = pd.read_csv(run / "metrics.csv")
    assert len(metrics) == 2 and metrics["val_balanced_accuracy"].between(0, 1).all()
    meta = yaml.safe_load((run / "meta.json").read_text())
    assert meta["status"] == "complete" and meta["n_params"] > 0 and len(meta["git"]["commit"]) > 6
    test = Predictions.load(run / "predictions_test.csv")
    assert test.logits.shape[1] == 7 and np.isfinite(test.logits).all()
    loaded = load_model(run)
    assert not loaded.model.training and loaded.classes == test.classes
    assert torch.load(run / "checkpoints/best.pt", weights_only=True)["classes"] == test.classes
    spec = cam_spec(loaded.model)
    assert spec.target_layers and (spec.reshape_transform is None) == (
        arch not in ("vit_tiny", "swin_tiny")
    )


def test_binary_task_with_strategies(synth_root, env):
    cfg = tiny_config(
        synth_root,
        **{
            "data.task": "binary",
            "data.positive": "[mel]",
            "imbalance.loss": "focal",
            "imbalance.class_weights": "effective",
            "imbalance.sampler": "weighted",
            "train.selection_rate": 0.5,
            "train.ema": "true",
            "train.freeze_epochs": 1,
            "train.scheduler": "onecycle",
            "train.grad_clip": 1.0,
            "train.accum_steps": 2,
        },
    )
    run = train(cfg, progress=False)
    preds = Predictions.load(run / "predictions_val.csv")
    assert preds.binary and preds.classes == ["other", "mel"]
    metrics = pd.read_csv(run / "metrics.csv")
    assert metrics["activation_rate"].between(0.3, 0.7).all()
    assert (metrics["backward_saved"] == 1 - metrics["activation_rate"]).all()


def test_mixup_and_strong_augment_run(synth_root, env):
    cfg = tiny_config(
        synth_root,
        **{
            "train.mixup": 0.2,
            "train.cutmix": 1.0,
            "train.epochs": 1,
            "train.augment": "strong",
            "imbalance.label_smoothing": 0.1,
            "train.progressive_resize": "true",
            "train.scheduler": "plateau",
        },
    )
    assert (train(cfg, progress=False) / "meta.json").is_file()


def test_clear_errors(synth_root, env):
    with pytest.raises(ConfigError, match="close names.*resnet18"):
        resolve_arch("resnet_18")
    with pytest.raises(ConfigError, match="train.optimizer"):
        train(tiny_config(synth_root, **{"train.optimizer": "adam"}), progress=False)
    from skinlib.errors import TrainingError

    with pytest.raises(
        TrainingError, match=r"loss became nan at epoch 1, step \d+; try a lower train.lr"
    ):
        train(tiny_config(synth_root, **{"train.lr": float("inf")}), progress=False)


def test_param_groups_split_backbone_and_head():
    from skinlib.config import ModelConfig

    model = create_model(ModelConfig(arch="resnet18"), 3)
    groups = {g["name"]: g for g in param_groups(model, 1e-3, 0.1, 0.05)}
    assert groups["head"]["lr"] == 1e-3 and groups["backbone"]["lr"] == pytest.approx(1e-4)
    assert groups["backbone_no_decay"]["weight_decay"] == 0.0
    n = sum(p.numel() for g in groups.values() for p in g["params"])
    assert n == sum(p.numel() for p in model.parameters())


def test_offline_pretrained_gives_clear_error_and_local_file_loads(tmp_path):
    from skinlib.config import ModelConfig

    model = create_model(ModelConfig(arch="resnet18"), 1000)
    torch.save(model.state_dict(), tmp_path / "w.pth")
    local = create_model(
        ModelConfig(arch="resnet18", pretrained=True, weights=str(tmp_path / "w.pth")), 4
    )
    torch.testing.assert_close(local.conv1.weight, model.conv1.weight)
    code = (
        "from skinlib.models import create_model; from skinlib.config import ModelConfig; "
        "create_model(ModelConfig(arch='resnet18', pretrained=True), 3)"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert (
        out.returncode != 0
        and "model.weights" in out.stderr
        and "model.pretrained=false" in out.stderr
    )


def _cli(args, env, **kw):
    return subprocess.Popen([sys.executable, "-m", "skinlib", "train", *args], env=env, **kw)


@pytest.mark.slow
def test_sigkill_then_resume_matches_uninterrupted_run(synth_root, tmp_path):
    cfg = tiny_config(synth_root, **{"train.epochs": 4, "data.image_size": 40})
    save_config(cfg, tmp_path / "c.yaml")
    env = {
        **os.environ,
        "SKINLIB_EXPERIMENTS": str(tmp_path / "exp"),
        "SKINLIB_CACHE": str(tmp_path / "cache"),
    }
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    assert (
        _cli(
            ["--config", str(tmp_path / "c.yaml"), "--set", "run=full", "--no-progress"],
            env,
            **quiet,
        ).wait()
        == 0
    )
    victim = _cli(
        ["--config", str(tmp_path / "c.yaml"), "--set", "run=killed", "--no-progress"], env, **quiet
    )
    metrics = tmp_path / "exp" / "t" / "killed" / "metrics.csv"
    deadline = time.time() + 300
    while time.time() < deadline and not (metrics.exists() and len(pd.read_csv(metrics)) >= 2):
        time.sleep(0.05)
    time.sleep(0.3)  # into the third epoch
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    killed = tmp_path / "exp" / "t" / "killed"
    assert not (killed / "meta.json").exists()  # it did not finish
    resumed = _cli(
        ["--config", str(tmp_path / "c.yaml"), "--set", "run=killed", "--resume", "--no-progress"],
        env,
        **quiet,
    )
    assert resumed.wait() == 0
    full = tmp_path / "exp" / "t" / "full"
    cols = ["epoch", "train_loss", "val_loss", "val_balanced_accuracy", "val_auc"]
    pd.testing.assert_frame_equal(
        pd.read_csv(full / "metrics.csv")[cols],
        pd.read_csv(killed / "metrics.csv")[cols],
        rtol=1e-6,
    )
    for split in ("val", "test"):
        a, b = (Predictions.load(d / f"predictions_{split}.csv") for d in (full, killed))
        np.testing.assert_allclose(a.logits, b.logits, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_two_process_gloo_ddp_matches_single_process(synth_root, tmp_path):
    cfg = tiny_config(
        synth_root,
        **{
            "model.arch": "vit_tiny",
            "train.augment": "none",
            "train.epochs": 2,
            "data.cache": "false",
            "train.batch_size": 16,
            "train.channels_last": "false",
        },
    )
    save_config(cfg, tmp_path / "c.yaml")
    env = {**os.environ, "SKINLIB_EXPERIMENTS": str(tmp_path / "exp"), "OMP_NUM_THREADS": "1"}
    single = _cli(
        ["--config", str(tmp_path / "c.yaml"), "--set", "run=single", "--no-progress"],
        env,
        stdout=subprocess.DEVNULL,
    )
    assert single.wait() == 0
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--master_port=29533",
        "-m",
        "skinlib",
        "train",
        "--config",
        str(tmp_path / "c.yaml"),
        "--set",
        "run=ddp",
        "--no-progress",
    ]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    runs = tmp_path / "exp" / "t"
    meta = yaml.safe_load((runs / "ddp" / "meta.json").read_text())
    assert meta["world_size"] == 2
    a, b = (pd.read_csv(runs / r / "metrics.csv") for r in ("single", "ddp"))
    np.testing.assert_allclose(a["val_loss"], b["val_loss"], rtol=1e-3)
    np.testing.assert_allclose(a["train_loss"], b["train_loss"], rtol=1e-3)
    pa, pb = (Predictions.load(runs / r / "predictions_test.csv") for r in ("single", "ddp"))
    assert (pa.image_id == pb.image_id).all()
    np.testing.assert_allclose(pa.logits, pb.logits, atol=2e-3)


def test_prepare_table_uses_saved_split(synth_root, env, tmp_path):
    cfg = tiny_config(synth_root)
    table = prepare_table(cfg, progress=False)
    from skinlib.data.splits import save_split

    flipped = table.copy()
    flipped["split"] = flipped["split"].replace({"val": "test", "test": "val"})
    save_split(flipped, tmp_path / "s.csv")
    again = prepare_table(
        apply_overrides(cfg, [f"data.split_file={tmp_path / 's.csv'}"]), progress=False
    )
    assert (again["split"].to_numpy() == flipped["split"].to_numpy()).all()
