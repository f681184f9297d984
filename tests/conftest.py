"""Shared fixtures: tiny image folders in the real datasets' layouts (see fixtures/builders.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fixtures.builders import (  # noqa: F401  (FIXTURES, write_jpeg: `from conftest import ...`)
    FIXTURES,
    make_ham10000_folder,
    make_isic2019_folder,
    make_isic2020_folder,
    write_jpeg,
)


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
