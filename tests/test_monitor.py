"""What picks the best epoch: the monitored validation number, alone or over a window
(training/monitor.py and the engine's record of each epoch)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest

from skinlib.config import Config
from skinlib.training.engine import RunState, Trainer
from skinlib.training.monitor import window_mean


def _rows(values):
    return [{"val_balanced_accuracy": v} for v in values]


def test_window_mean_known_answer_and_nan_epochs():
    history = _rows([0.2, 0.4, math.nan, 0.6])
    assert window_mean(history, "balanced_accuracy", 1) == pytest.approx(0.6)
    assert window_mean(history, "balanced_accuracy", 3) == pytest.approx(0.5)  # NaN left out
    assert window_mean(history[:1], "balanced_accuracy", 3) == pytest.approx(0.2)
    assert math.isnan(window_mean(_rows([math.nan]), "balanced_accuracy", 2))


@pytest.mark.parametrize(("window", "best"), [(1, 2), (3, 6)])
def test_a_window_picks_the_plateau_not_the_peak(window, best):
    """One noisy peak at epoch 2; a plateau from epoch 4 on: one epoch picks the peak, a
    three-epoch window the end of the plateau's best stretch."""
    cfg = Config()
    cfg.train.monitor_window = window
    trainer = SimpleNamespace(state=RunState(), cfg=cfg)
    scores = [0.30, 0.40, 0.62, 0.45, 0.57, 0.58, 0.59, 0.55]
    for epoch, row in enumerate(_rows(scores)):
        Trainer._update_state(trainer, epoch, row)
    assert trainer.state.best_epoch == best
