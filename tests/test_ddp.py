"""The same entry point under torchrun: two CPU processes (gloo) train like one process over the
same global batch, and only rank 0 writes the run folder."""

from __future__ import annotations

import socket
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from train_helpers import cli_env, make_synth, skinlib_train, tiny_config

from skinlib.config import save_config
from skinlib.evaluation.predictions import Predictions
from skinlib.io import read_json


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_process_gloo_ddp_matches_single_process(tmp_path):
    # ViT has no BatchNorm, whose batch statistics would differ between B and two halves of B.
    changes = {
        "model.arch": "vit_tiny",
        "train.augment": "none",
        "data.cache": "false",
        "imbalance.sampler": "weighted",  # the distributed weighted sampler too
        "train.channels_last": "false",
    }
    save_config(tiny_config(make_synth(tmp_path / "synth"), **changes), tmp_path / "c.yaml")
    env = cli_env(tmp_path)
    single = skinlib_train(tmp_path / "c.yaml", env, "--set", "run=single")
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2"]
    cmd = [*torchrun, f"--master_port={free_port()}", "-m", "skinlib", "train"]
    cmd += ["--config", str(tmp_path / "c.yaml"), "--set", "run=ddp", "--no-progress"]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert single.wait() == 0

    runs = tmp_path / "exp" / "t"
    meta = read_json(runs / "ddp" / "meta.json")
    assert meta["world_size"] == 2
    assert meta["train_images_per_s"] > 0
    a, b = (pd.read_csv(runs / r / "metrics.csv") for r in ("single", "ddp"))
    assert len(a) == len(b) == 2
    np.testing.assert_allclose(a["train_loss"], b["train_loss"], rtol=1e-3)
    np.testing.assert_allclose(a["val_loss"], b["val_loss"], rtol=1e-3)
    for split in ("val", "test"):  # gathered from both ranks, in the table's order
        p, q = (Predictions.load(runs / r / f"predictions_{split}.csv") for r in ("single", "ddp"))
        assert (p.image_id == q.image_id).all()
        np.testing.assert_allclose(p.logits, q.logits, atol=2e-3)
    assert len(list((runs / "ddp" / "tb").iterdir())) == 1  # one TensorBoard writer: rank 0
