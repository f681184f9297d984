"""A run killed with SIGKILL in the middle of an epoch and resumed ends exactly like an
uninterrupted one: same metrics, same predictions."""

from __future__ import annotations

import signal
import subprocess
import time

import numpy as np
import pandas as pd
import pytest
import torch
from train_helpers import cli_env, make_synth, skinlib_train, tiny_config

from skinlib.config import apply_overrides, save_config
from skinlib.evaluation.predictions import Predictions
from skinlib.training import train

QUIET = {"stdout": subprocess.DEVNULL, "stderr": subprocess.PIPE}


def wait_for_epochs(
    metrics, n: int, process: subprocess.Popen, timeout: float = 300
) -> pd.DataFrame:
    deadline = time.time() + timeout
    while time.time() < deadline and process.poll() is None:
        if metrics.exists() and len(frame := pd.read_csv(metrics)) >= n:
            return frame
        time.sleep(0.05)
    raise AssertionError(f"no {n} epochs in {metrics}: {process.stderr.read().decode()[-2000:]}")


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_matches_uninterrupted_run(tmp_path, monkeypatch):
    # DataLoader workers augment the images: their seeds must survive the restart too.
    changes = {"train.epochs": 3, "data.num_workers": 1, "train.augment": "strong"}
    cfg = tiny_config(make_synth(tmp_path / "synth"), **changes)
    save_config(cfg, tmp_path / "c.yaml")
    env = cli_env(tmp_path)
    full = skinlib_train(tmp_path / "c.yaml", env, "--set", "run=full", **QUIET)
    victim = skinlib_train(tmp_path / "c.yaml", env, "--set", "run=killed", **QUIET)
    runs = tmp_path / "exp" / "t"
    done = wait_for_epochs(runs / "killed" / "metrics.csv", 1, victim)
    time.sleep(done["seconds"].iloc[-1] / 3)  # a third into the second epoch's training
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    last = torch.load(runs / "killed" / "checkpoints" / "last.pt", weights_only=True)
    assert last["run_state"]["epoch"] == 0  # one epoch done, the second one lost
    assert not (runs / "killed" / "meta.json").exists()

    resumed = skinlib_train(tmp_path / "c.yaml", env, "--set", "run=killed", "--resume", **QUIET)
    assert resumed.wait() == 0, resumed.stderr.read().decode()[-2000:]
    assert full.wait() == 0, full.stderr.read().decode()[-2000:]
    a, b = (pd.read_csv(runs / r / "metrics.csv") for r in ("full", "killed"))
    cols = [c for c in a if c not in ("seconds", "images_per_s")]
    assert len(a) == 3 and "val_auc" in cols
    pd.testing.assert_frame_equal(a[cols], b[cols], rtol=0, atol=1e-6)
    for split in ("val", "test"):
        p, q = (Predictions.load(runs / r / f"predictions_{split}.csv") for r in ("full", "killed"))
        assert (p.image_id == q.image_id).all()
        np.testing.assert_allclose(p.logits, q.logits, rtol=0, atol=1e-6)

    # Resuming a complete run with the same config returns it untouched.
    monkeypatch.setenv("SKINLIB_EXPERIMENTS", env["SKINLIB_EXPERIMENTS"])
    meta = runs / "killed" / "meta.json"
    stamp = meta.stat().st_mtime_ns
    assert train(apply_overrides(cfg, ["run=killed"]), resume=True) == runs / "killed"
    assert meta.stat().st_mtime_ns == stamp
