"""Recorded values in words: once when the runs share them, per run when they do not
(thesis/phrasing.py)."""

from __future__ import annotations

from types import SimpleNamespace

from skinlib.config import Config, apply_overrides
from skinlib.thesis import phrasing


def _runs(**values):
    return [SimpleNamespace(name=name, value=v) for name, v in values.items()]


def test_fmt_reads_as_the_thesis_writes_numbers():
    assert phrasing.fmt(1200) == "1,200" and phrasing.fmt(0.002) == "0.002"
    assert phrasing.fmt(True) == "on" and phrasing.fmt([0.9, 0.95]) == "0.9, 0.95"


def test_a_shared_value_is_stated_once_and_a_split_one_per_run():
    shared = _runs(a=3, b=3)
    assert phrasing.per_run(shared, lambda r: r.value, " epochs") == "3 epochs"
    assert phrasing.disagreement(shared, lambda r: r.value, "the seed") == ""
    split = _runs(a=3, b=5, c=3)
    assert phrasing.per_run(split, lambda r: r.value) == "3 for `a` and `c`; 5 for `b`"
    assert phrasing.disagreement(split, lambda r: r.value, "the seed").startswith(
        "The runs disagree on the seed: 3 (`a` and `c`); 5 (`b`)"
    )


def test_config_differences_leave_out_what_differs_by_construction():
    base = Config()
    run = apply_overrides(base, ["train.lr=0.001", "model.arch=vit_tiny", "run=x"])
    assert phrasing.config_differences(base, run) == {"train.lr": (base.train.lr, 0.001)}
