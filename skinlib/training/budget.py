"""A run's time budget: the epochs that fit it, planned from the step time of its first steps.

With ``train.budget_min`` set, the engine times a few training steps (after warm-up steps that
it leaves out: first-touch allocations, lazy initialisation) through the real loader, and a few
validation batches, then :func:`plan` turns the measurement into the epochs that fit the
budget, capped by ``train.epochs``. Everything that follows from the number of epochs is built
for the planned ones (the learning-rate schedule, its warm-up, the EMA's horizon), so a budgeted
run trains exactly as the same config with ``train.epochs`` set to the plan would.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

from skinlib.config import TrainConfig

WARMUP_STEPS = 2  # steps run but not timed: the first ones pay one-off costs
# steps timed; their median is the step time (one step slowed by another process on a shared
# machine would move a mean; a slowdown that lasts is the guard's, see no_room)
TIMED_STEPS = 6
EVAL_BATCHES = 3  # validation batches timed (after one untimed) for the cost per image
# share of the budget kept back for what the measurement cannot see: checkpoints written after
# every epoch, the machine's speed drifting by a few per cent
MARGIN = 0.05
WARMUP_SHARE = 0.5  # a warm-up never takes more than half the planned epochs
# the EMA forgets the initial (random) weights down to this share by the last step: an average
# over more steps than the run has would score a model that was hardly trained
EMA_INITIAL_SHARE = 0.05


@dataclass(frozen=True)
class Measurement:
    """What the first steps of a run measured, in seconds."""

    step_s: float  # one training step: loading, augmenting, forward, backward, optimiser, EMA
    start_s: float  # the loader's first batch (worker start-up): paid once per epoch
    steps_per_epoch: int
    val_s: float  # one validation pass over every validation image
    final_s: float  # the predictions of the best checkpoint at the end (val, test, calibration)
    spent_s: float  # already gone when planning: data, cache, model, the measurement itself

    @property
    def epoch_s(self) -> float:
        """One epoch: its training steps and its validation."""
        return self.start_s + self.steps_per_epoch * self.step_s + self.val_s


@dataclass(frozen=True)
class Plan:
    """The epochs a budget allows and the settings that follow from them (``meta.json``)."""

    budget_min: float
    epochs: int  # the epochs planned
    cap: int  # train.epochs: the most the run may plan
    limited_by: str  # "budget", "cap" (the budget allowed more), "minimum" (not even one fits)
    warmup_epochs: float  # the schedule's warm-up, at most WARMUP_SHARE of the planned epochs
    ema_decay: float  # train.ema_decay, lowered where the planned steps are too few for it
    step_s: float
    start_s: float
    steps_per_epoch: int
    val_s: float
    final_s: float
    spent_s: float

    @property
    def epoch_s(self) -> float:
        """One epoch as measured: its training steps and its validation."""
        return self.start_s + self.steps_per_epoch * self.step_s + self.val_s

    def train_config(self, cfg: TrainConfig) -> TrainConfig:
        """``cfg`` as the run trains it: the planned epochs, warm-up and EMA decay."""
        return replace(
            cfg, epochs=self.epochs, warmup_epochs=self.warmup_epochs, ema_decay=self.ema_decay
        )

    def record(self) -> dict:
        return asdict(self)

    @classmethod
    def from_record(cls, record: dict) -> Plan:
        return cls(**record)


def plan_epochs(budget_s: float, m: Measurement, cap: int, margin: float = MARGIN) -> int:
    """The whole epochs that fit what is left of the budget, at least 1 and at most ``cap``.

    What is left: the budget less the margin, what is already spent and the final predictions.

    >>> m = Measurement(step_s=0.5, start_s=0.0, steps_per_epoch=100, val_s=10.0, final_s=20.0,
    ...                 spent_s=30.0)
    >>> plan_epochs(600, m, cap=50)  # (600 * 0.95 - 30 - 20) / (100 * 0.5 + 10) = 8.7
    8
    >>> plan_epochs(600, m, cap=5), plan_epochs(10, m, cap=5)
    (5, 1)
    """
    left = budget_s * (1 - margin) - m.spent_s - m.final_s
    fits = math.floor(left / m.epoch_s) if m.epoch_s > 0 else cap
    return max(1, min(cap, fits))


def ema_decay_for(decay: float, steps: int, initial_share: float = EMA_INITIAL_SHARE) -> float:
    """``decay``, or the largest decay whose average keeps at most ``initial_share`` of the
    initial weights after ``steps`` optimiser steps (``decay ** steps <= initial_share``).

    >>> ema_decay_for(0.99, 1000)  # 0.99 ** 1000 = 4e-5: the decay stands
    0.99
    >>> round(ema_decay_for(0.998, 500), 5)  # 0.998 ** 500 = 0.37: lowered to 0.05 ** (1 / 500)
    0.99403
    """
    return min(decay, initial_share ** (1 / max(1, steps)))


def plan(budget_min: float, m: Measurement, cfg: TrainConfig) -> Plan:
    """The plan of a run of ``cfg`` (``train.epochs`` the cap) for a budget of ``budget_min``."""
    epochs = plan_epochs(budget_min * 60, m, cfg.epochs)
    fits = plan_epochs(budget_min * 60, m, cap=10**9)
    left = budget_min * 60 * (1 - MARGIN) - m.spent_s - m.final_s
    limited = "minimum" if left < m.epoch_s else "cap" if fits >= cfg.epochs else "budget"
    optimiser_steps = epochs * max(1, math.ceil(m.steps_per_epoch / cfg.accum_steps))
    return Plan(
        budget_min=budget_min,
        epochs=epochs,
        cap=cfg.epochs,
        limited_by=limited,
        warmup_epochs=min(cfg.warmup_epochs, WARMUP_SHARE * epochs),
        ema_decay=ema_decay_for(cfg.ema_decay, optimiser_steps) if cfg.ema else cfg.ema_decay,
        step_s=m.step_s,
        start_s=m.start_s,
        steps_per_epoch=m.steps_per_epoch,
        val_s=m.val_s,
        final_s=m.final_s,
        spent_s=m.spent_s,
    )


def no_room(elapsed_s: float, epoch_s: float, final_s: float, budget_min: float) -> bool:
    """Another epoch of ``epoch_s`` and the final predictions would overrun the budget: the
    run stops early (the machine slowed down after the measurement).

    >>> no_room(500, 60, 20, 10), no_room(500, 90, 20, 10)
    (False, True)
    """
    return elapsed_s + epoch_s + final_s > budget_min * 60
