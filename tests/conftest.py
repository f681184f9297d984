"""Shared fixtures: tiny image folders in the real datasets' layouts (see fixtures/builders.py)
and the session's one tiny trained run (see fixtures/runs.py)."""

from __future__ import annotations

import os
from pathlib import Path

# Under pytest-xdist (the quick tests of `make test`: two workers) each worker gets its share
# of the cores, so two workers' PyTorch and BLAS threads do not fight over two cores. Set
# before torch loads.
if os.environ.get("PYTEST_XDIST_WORKER"):
    _workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // _workers)))

import pytest  # noqa: E402
import yaml  # noqa: E402
from fixtures.builders import (  # noqa: E402, F401  (FIXTURES, write_jpeg: `from conftest import ...`)
    FIXTURES,
    make_ham10000_folder,
    make_isic2019_folder,
    make_isic2020_folder,
    write_jpeg,
)
from fixtures.runs import build_tiny_run, built_once, copy_run  # noqa: E402
from fixtures.studies import PROFILE, make_run  # noqa: E402

from skinlib.profile import load_study_profile  # noqa: E402

# The architecture families the study compares: a CNN of each kind, a ViT and a Swin.
FAMILIES = ["resnet18", "efficientnet_b0", "densenet121", "vit_tiny", "swin_tiny"]


@pytest.fixture
def one_thread():
    """Two threads on two busy cores run tiny models several times slower than one."""
    import torch  # here, not at the top: the environment above must be set before torch loads

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def ham_folder(tmp_path) -> Path:
    """HAM10000 layout (50 rows of the real metadata) with images over part_1 and part_2."""
    return make_ham10000_folder(tmp_path, 50)


@pytest.fixture
def isic2019_folder(tmp_path) -> Path:
    """ISIC 2019 layout: fixture ground truth (CRLF, 0/1) and metadata, one JPEG per row."""
    return make_isic2019_folder(tmp_path)


@pytest.fixture
def isic2020_folder(tmp_path) -> Path:
    """ISIC 2020 layout: fixture ground truth and one JPEG per row in train/."""
    return make_isic2020_folder(tmp_path)


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory) -> Path:
    """The session's tiny trained run, trained once for all workers. Read only: a test that
    changes files takes :func:`tiny_run` or its own :func:`copy_run`."""
    return built_once(tmp_path_factory, "tiny_run", build_tiny_run)


@pytest.fixture(scope="session")
def metadata_run(tmp_path_factory) -> Path:
    """The tiny run with the metadata branch (``model.metadata``), trained once for all
    workers; read only, like :func:`trained_run`."""
    return built_once(
        tmp_path_factory, "metadata_run", lambda root: build_tiny_run(root, metadata=True)
    )


@pytest.fixture(scope="session")
def tiny_run(trained_run, tmp_path_factory) -> Path:
    """This worker's copy of the trained run (a test that changes a file puts it back)."""
    return copy_run(trained_run, tmp_path_factory.mktemp("tiny_run"))


@pytest.fixture
def study_dirs(tmp_path, monkeypatch):
    """Experiments and thesis folders in tmp; returns a function that writes the profile and
    the study's complete runs, with optional per-run seeds."""
    monkeypatch.setenv("SKINLIB_EXPERIMENTS", str(tmp_path / "experiments"))
    monkeypatch.setenv("SKINLIB_THESIS", str(tmp_path / "thesis"))
    monkeypatch.setenv("SKINLIB_FIGURES", str(tmp_path / "figures"))

    def build(profile_values: dict = PROFILE, seeds: dict | None = None) -> Path:
        file = tmp_path / "mini.yaml"
        file.write_text(yaml.safe_dump(profile_values))
        profile = load_study_profile(file)
        seeds = seeds or {}
        for arch in profile.architectures:
            make_run(profile, arch, profile.run_config(arch), seeds.get(arch))
        for name in profile.imbalance.strategies:
            make_run(profile, f"imbalance_{name}", profile.strategy_config(name))
        return file

    return build


@pytest.fixture(scope="session")
def predictor(tiny_run):
    """The app's Predictor on this worker's tiny run."""
    from skinlib.app.predictor import Predictor

    return Predictor(tiny_run)
