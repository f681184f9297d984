"""A run's time budget (training/budget.py): the epochs planned from a measured step time, and
the engine training the plan (schedule, warm-up, records, resume, the guard)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from train_helpers import make_synth, tiny_config

from skinlib.config import TrainConfig
from skinlib.evaluation.predictions import Predictions
from skinlib.io import read_json
from skinlib.training import budget, engine, train
from skinlib.training.budget import Measurement, plan, plan_epochs

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


def measured(step_s=0.5, steps=100, val_s=10.0, final_s=20.0, spent_s=30.0, start_s=0.0):
    return Measurement(
        step_s=step_s,
        start_s=start_s,
        steps_per_epoch=steps,
        val_s=val_s,
        final_s=final_s,
        spent_s=spent_s,
    )


@pytest.mark.parametrize(
    "budget_s, m, cap, epochs",
    [
        # (600 * 0.95 - 30 - 20) / (100 * 0.5 + 10) = 520 / 60 = 8.7: eight whole epochs
        (600, measured(), 50, 8),
        (600, measured(), 5, 5),  # train.epochs caps the plan
        (60, measured(), 5, 1),  # not even one fits: at least one
        # a loader that starts up for 6 s every epoch: 520 / 66 = 7.9
        (600, measured(start_s=6.0), 50, 7),
        # the validation pass counts: without it 520 / 50 = 10.4
        (600, measured(val_s=0.0), 50, 10),
        # what was spent before the plan (the cache, the measurement) counts: 540 / 60 = 9
        (600, measured(spent_s=10.0), 50, 9),
    ],
)
def test_epochs_planned_from_a_measured_step_time(budget_s, m, cap, epochs):
    assert plan_epochs(budget_s, m, cap) == epochs


def test_a_plan_says_what_limited_it_and_fits_warmup_and_ema_to_its_steps():
    cfg = TrainConfig(epochs=50, warmup_epochs=3.0, ema=True, ema_decay=0.999)
    fitted = plan(10, measured(), cfg)  # 10 min: (570 - 50) / 60 = 8 epochs
    assert (fitted.epochs, fitted.cap, fitted.limited_by) == (8, 50, "budget")
    assert fitted.warmup_epochs == 3.0  # under half the plan: as configured
    # 800 optimiser steps: 0.999 ** 800 = 0.45 of the initial weights would remain
    assert fitted.ema_decay == pytest.approx(0.05 ** (1 / 800))
    assert fitted.ema_decay**800 == pytest.approx(0.05)
    assert plan(1000, measured(), cfg).limited_by == "cap"
    short = plan(1, measured(), cfg)
    assert (short.epochs, short.limited_by, short.warmup_epochs) == (1, "minimum", 0.5)
    trained = short.train_config(cfg)
    assert (trained.epochs, trained.warmup_epochs, trained.ema_decay) == (1, 0.5, short.ema_decay)
    assert cfg.epochs == 50  # the config is not changed in place
    assert budget.Plan.from_record(fitted.record()) == fitted
    # accumulation: fewer optimiser steps for the same epochs, so a shorter EMA
    accumulated = plan(10, measured(), TrainConfig(epochs=50, ema=True, accum_steps=4))
    assert accumulated.ema_decay == pytest.approx(0.05 ** (1 / 200))


def test_the_guard_stops_when_another_epoch_would_overrun():
    assert not budget.no_room(elapsed_s=500, epoch_s=60, final_s=20, budget_min=10)  # 580 s
    assert budget.no_room(elapsed_s=500, epoch_s=90, final_s=20, budget_min=10)  # 610 s


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory):
    return make_synth(tmp_path_factory.mktemp("synth"))


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("SKINLIB_EXPERIMENTS", str(tmp_path / "exp"))
    monkeypatch.setenv("SKINLIB_CACHE", str(tmp_path / "cache"))
    return tmp_path


TIMES = ["seconds", "images_per_s"]


def test_a_budget_for_one_epoch_trains_exactly_the_one_epoch_run(synth_root, env):
    # A budget of 0.06 s leaves room for no epoch: one is planned, of a cap of 3, with the
    # warm-up cut to half of it. The run must equal the same config given one epoch and that
    # warm-up: the measured steps are undone and the schedule is the one-epoch schedule.
    given = {"train.epochs": 3, "train.warmup_epochs": 1}
    budgeted = train(
        tiny_config(synth_root, **given, **{"train.budget_min": 0.001}), progress=False
    )
    fixed = {"train.epochs": 1, "train.warmup_epochs": 0.5, "run": "fixed"}
    reference = train(tiny_config(synth_root, **fixed), progress=False)
    a, b = (pd.read_csv(r / "metrics.csv").drop(columns=TIMES) for r in (budgeted, reference))
    pd.testing.assert_frame_equal(a, b, rtol=0, atol=1e-6)
    for split in ("val", "test"):
        p, q = (Predictions.load(r / f"predictions_{split}.csv") for r in (budgeted, reference))
        np.testing.assert_allclose(p.logits, q.logits, rtol=0, atol=1e-6)
    meta = read_json(budgeted / "meta.json")
    record = meta["budget"]
    assert (record["epochs"], record["cap"], record["limited_by"]) == (1, 3, "minimum")
    assert record["epochs_run"] == meta["epochs_run"] == 1 and meta["stopped_by"] == "epochs"
    assert record["budget_min"] == 0.001 and record["warmup_epochs"] == 0.5
    assert record["step_s"] > 0 and record["val_s"] > 0 and record["final_s"] > record["val_s"]
    assert record["spent_s"] > 0 and record["elapsed_s"] > record["spent_s"]
    last = torch.load(budgeted / "checkpoints" / "last.pt", weights_only=True)
    assert last["scheduler"]["last_epoch"] == record["steps_per_epoch"]  # one epoch's steps
    assert read_json(reference / "meta.json")["budget"] is None


def test_resume_keeps_the_plan(synth_root, env, monkeypatch):
    cfg = tiny_config(synth_root, **{"train.epochs": 3, "train.budget_min": 1000})
    run_epoch = engine.Trainer._run_epoch

    def interrupted(self, epoch):
        if epoch == 1:
            raise KeyboardInterrupt
        return run_epoch(self, epoch)

    monkeypatch.setattr(engine.Trainer, "_run_epoch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, progress=False)
    monkeypatch.setattr(engine.Trainer, "_run_epoch", run_epoch)

    def measure_again(self):
        raise AssertionError("a resumed run planned again")

    monkeypatch.setattr(engine.Trainer, "_time_training_steps", measure_again)
    run = train(cfg, resume=True, progress=False)
    meta = read_json(run / "meta.json")
    assert meta["budget"]["epochs"] == 3 and meta["budget"]["limited_by"] == "cap"
    assert meta["epochs_run"] == 3 and len(pd.read_csv(run / "metrics.csv")) == 3


def test_a_run_that_falls_behind_its_plan_stops_at_the_budget(synth_root, env, monkeypatch):
    # the machine slows down after the measurement: the guard finds no room after epoch 1
    monkeypatch.setattr(budget, "no_room", lambda *args: True)
    run = train(tiny_config(synth_root, **{"train.budget_min": 1000}), progress=False)
    meta = read_json(run / "meta.json")
    assert meta["budget"]["epochs"] == 2 and meta["epochs_run"] == 1
    assert meta["stopped_by"] == "budget" and meta["budget"]["epochs_run"] == 1
