"""The test-look ledger: every read of test predictions is a look, counted by configuration."""

from __future__ import annotations

import errno
import json
import logging
import multiprocessing
import os

import numpy as np
import pytest

from skinlib.config import Config, apply_overrides, save_config
from skinlib.evaluation.predictions import Predictions
from skinlib.runs import ledger
from skinlib.runs.folder import RunFolder
from skinlib.study.front import Study

CLASSES = ["bcc", "mel", "nv"]


def _predictions(seed: int) -> Predictions:
    rng = np.random.default_rng(seed)
    labels = np.arange(60) % 3
    logits = rng.normal(0, 1, (60, 3)) + 2 * np.eye(3)[labels]
    return Predictions(np.arange(60), np.arange(60) // 2, labels, logits, CLASSES)


def make_run(study_dir, name: str, cfg: Config) -> RunFolder:
    """A run folder with its config and val/test predictions, as training leaves it."""
    folder = RunFolder(study_dir / name)
    folder.path.mkdir(parents=True)
    save_config(cfg, folder.config_file)
    for seed, split in enumerate(("val", "test")):
        folder.write_predictions(_predictions(seed), split)
    return folder


def looks(study_dir) -> list[ledger.Look]:
    return ledger.read_looks(study_dir) or []


@pytest.fixture
def study(tmp_path, monkeypatch):
    for var, sub in (("EXPERIMENTS", "exp"), ("FIGURES", "fig"), ("THESIS", "thesis")):
        monkeypatch.setenv(f"SKINLIB_{var}", str(tmp_path / sub))
    return Study("params/smoke.yaml")


def test_scoring_test_predictions_records_a_look_and_validation_does_not(study):
    cfg = study.profile.run_config("resnet18")
    make_run(study.dir, "resnet18", cfg)
    assert ledger.read_looks(study.dir) is None  # no ledger yet: nothing to say, not "no looks"
    study.reference_model(["resnet18"])  # chosen on validation: not a look at test
    assert looks(study.dir) == []
    with ledger.entered("03_train.ipynb"):
        study.headline("resnet18")
    (look,) = looks(study.dir)
    assert (look.run, look.scored, look.tta, look.entry) == (
        "resnet18",
        "test",
        False,
        "03_train.ipynb",
    )
    assert look.config == ledger.config_fingerprint(cfg)
    line = (study.dir / ledger.LEDGER).read_text().splitlines()[0]
    assert set(json.loads(line)) == {"time", "run", "config", "scored", "tta", "entry"}


def test_fingerprint_ignores_names_paths_and_workers_not_settings():
    base = Config()
    same = apply_overrides(
        base, ["run=renamed", "study=other", "data.num_workers=7", "train.device=cpu"]
    )
    assert ledger.config_fingerprint(same) == ledger.config_fingerprint(base)
    here = apply_overrides(base, ["data.root=/data/HAM10000"])
    moved = apply_overrides(base, ["data.root=/scratch/HAM10000"])
    assert ledger.config_fingerprint(here) == ledger.config_fingerprint(moved)
    assert ledger.config_fingerprint(here) != ledger.config_fingerprint(base)  # real vs SynthDerm
    for change in ("train.lr=0.001", "train.seed=1", "model.arch=vit_tiny", "data.fold=1"):
        changed = apply_overrides(base, [change])
        assert ledger.config_fingerprint(changed) != ledger.config_fingerprint(base), change


def test_distinct_configurations_ignore_repeats_of_the_same_config(tmp_path):
    base = Config()
    first = make_run(tmp_path, "resnet18", base)
    renamed = make_run(tmp_path, "resnet18_again", apply_overrides(base, ["data.num_workers=0"]))
    other = make_run(tmp_path, "resnet18_lr", apply_overrides(base, ["train.lr=0.001"]))
    for folder in (first, first, renamed, other, first):
        folder.predictions("test")
    first.write_predictions(_predictions(2), "test", tta=True)
    first.predictions("test", tta=True)
    recorded = looks(tmp_path)
    assert [x.run for x in recorded][:4] == [
        "resnet18",
        "resnet18",
        "resnet18_again",
        "resnet18_lr",
    ]
    assert len(recorded) == 6 and recorded[-1].tta
    fingerprints = [ledger.config_fingerprint(base), other.fingerprint()]
    assert ledger.distinct_configurations(recorded) == fingerprints
    # scored before the reported one was last scored: the lr variant, once however often it ran
    assert ledger.scored_before(recorded, [fingerprints[0]]) == [fingerprints[1]]
    assert ledger.scored_before(recorded, [fingerprints[1]]) == [fingerprints[0]]
    assert ledger.scored_before(recorded, fingerprints) == []
    assert ledger.scored_before(recorded, ["never scored"]) is None


def test_an_ensemble_is_a_configuration_of_its_members(tmp_path):
    a = make_run(tmp_path, "a", Config())
    b = make_run(tmp_path, "b", apply_overrides(Config(), ["model.arch=vit_tiny"]))
    ens = RunFolder(tmp_path / "ensemble")
    ens.path.mkdir()
    ens.write_predictions(_predictions(3), "test")
    ens.write_ensemble(["a", "b"], [0.6, 0.8], "mean of calibrated probabilities")
    weighted = ens.fingerprint()
    ens.write_ensemble(["b", "a"], [0.7, 0.5], "mean of calibrated probabilities")
    assert ens.fingerprint() == weighted  # same members, weights from validation
    assert weighted not in (a.fingerprint(), b.fingerprint())
    ens.write_ensemble(["a", "b"], None, "mean of calibrated probabilities")
    assert ens.fingerprint() != weighted
    ens.predictions("test")
    assert [(x.run, x.config) for x in looks(tmp_path)] == [("ensemble", ens.fingerprint())]


def _append_looks(study_dir: str, worker: int) -> None:
    for i in range(100):
        ledger.record_look(study_dir, f"run{worker}", f"config{i % 3}")


def test_looks_from_parallel_processes_land_as_whole_lines(tmp_path):
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_append_looks, args=(str(tmp_path), w)) for w in range(4)]
    for p in workers:
        p.start()
    for p in workers:
        p.join()
    lines = (tmp_path / ledger.LEDGER).read_text().splitlines()
    assert len(lines) == 400 and all(json.loads(line)["run"] for line in lines)
    assert sorted(ledger.distinct_configurations(looks(tmp_path))) == [
        "config0",
        "config1",
        "config2",
    ]


@pytest.mark.parametrize("failure", ["read-only study folder", "ledger path is a folder"])
def test_a_ledger_that_cannot_be_written_warns_and_the_run_goes_on(
    tmp_path, monkeypatch, caplog, failure
):
    folder = make_run(tmp_path, "resnet18", Config())
    monkeypatch.setattr(ledger, "_warned", set())
    if failure == "ledger path is a folder":
        (tmp_path / ledger.LEDGER).mkdir()
    else:
        tmp_path.chmod(0o555)
        if os.access(tmp_path, os.W_OK):  # root ignores the mode: refuse as the OS would others
            real_open = os.open

            def refuse(path, *args, **kwargs):
                if str(path).endswith(ledger.LEDGER):
                    raise PermissionError(errno.EACCES, "Permission denied", str(path))
                return real_open(path, *args, **kwargs)

            monkeypatch.setattr(ledger.os, "open", refuse)
    try:
        with caplog.at_level(logging.WARNING, logger="skinlib.runs.ledger"):
            first = folder.predictions("test")
            again = folder.predictions("test")
    finally:
        tmp_path.chmod(0o755)
    np.testing.assert_allclose(first.logits, _predictions(1).logits)  # the work is not lost
    np.testing.assert_allclose(again.logits, first.logits)
    warnings = [r for r in caplog.records if "test look of resnet18 not recorded" in r.message]
    assert len(warnings) == 1  # once per ledger and run, not on every read
    assert not (tmp_path / ledger.LEDGER).is_file()
