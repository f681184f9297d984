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
from skinlib.runs.folder import RunFolder
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


def test_deferred_reweighting_switches_at_its_epoch_across_a_resume(tmp_path, monkeypatch):
    """imbalance.drw_epoch=1: epoch 1 trains unweighted, epoch 2 with effective-number weights,
    also when the run stopped after its first epoch and resumed from last.pt."""
    from skinlib.training import engine
    from skinlib.training.imbalance import class_weights

    monkeypatch.setenv("SKINLIB_EXPERIMENTS", str(tmp_path / "exp"))
    monkeypatch.setenv("SKINLIB_CACHE", str(tmp_path / "cache"))
    cfg = tiny_config(make_synth(tmp_path / "synth"), **{"imbalance.drw_epoch": 1})
    weights: dict[str, list] = {}
    begin = engine.Trainer._begin_epoch

    def spy(self, epoch):
        begin(self, epoch)
        weights.setdefault(self.cfg.run_name, []).append(self.loss_fn.weight)

    monkeypatch.setattr(engine.Trainer, "_begin_epoch", spy)
    full = train(apply_overrides(cfg, ["run=full"]), progress=False)
    run_epoch = engine.Trainer._run_epoch

    def stop_before_the_second(self, epoch):
        if epoch == 1:
            raise KeyboardInterrupt  # as a kill between epochs would stop it
        return run_epoch(self, epoch)

    with monkeypatch.context() as crash:
        crash.setattr(engine.Trainer, "_run_epoch", stop_before_the_second)
        with pytest.raises(KeyboardInterrupt):
            train(apply_overrides(cfg, ["run=cut"]), progress=False)
    cut = train(apply_overrides(cfg, ["run=cut"]), resume=True, progress=False)

    split = pd.read_csv(full / "split.csv")
    trained = split.loc[split["split"] == "train", "label"]
    counts = [int((trained == c).sum()) for c in RunFolder(full).meta()["classes"]]
    for run in ("full", "cut"):
        first, second = weights[run]
        assert first is None  # plain cross-entropy first
        torch.testing.assert_close(second.cpu(), class_weights(counts, "effective", 0.999))
    a, b = (pd.read_csv(r / "metrics.csv") for r in (full, cut))
    cols = [c for c in a if c not in ("seconds", "images_per_s")]
    pd.testing.assert_frame_equal(a[cols], b[cols], rtol=0, atol=1e-6)
