"""The overlap guard: an external set never holds an image the run has seen (external/guard.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from fixtures.runs import copy_run

from skinlib.errors import DataError
from skinlib.models.checkpoint import load_model


@pytest.fixture(scope="module")
def run(trained_run, tmp_path_factory):
    return copy_run(trained_run, tmp_path_factory.mktemp("evalrun"))


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """External validation caches image hashes under SKINLIB_CACHE: one cache per test."""
    monkeypatch.setenv("SKINLIB_CACHE", str(tmp_path / "cache"))


def test_the_runs_own_images_are_never_external(run):
    """The run's own data, offered as an external set, leaves nothing to score (no flag skips it)."""
    from skinlib.external.guard import external_set

    with pytest.raises(DataError, match="no external images"):
        external_set(load_model(run), run_data(run), "ham10000", progress=False)


def test_a_run_without_split_file_cannot_be_evaluated_externally(run, tmp_path):
    from skinlib.external.guard import external_set

    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    (copy / "split.csv").unlink()
    with pytest.raises(DataError, match="split.csv not found: external validation needs"):
        external_set(load_model(copy), run_data(run), "ham10000", progress=False)


def run_data(run: Path) -> Path:
    """The SynthDerm folder the tiny run was trained on (see fixtures.runs.build_tiny_run)."""
    return run.parents[2] / "synthderm"
