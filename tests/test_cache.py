"""The pre-resized cache: shorter side to ``size``, built once, rebuilt when a source changes."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fixtures.builders import make_ham10000_folder, write_dicom, write_jpeg
from PIL import Image

from skinlib.cli import main
from skinlib.data import load_table
from skinlib.data.cache import build_cache, cache_key
from skinlib.data.images import load_image
from skinlib.errors import DataError


def _table(paths: list[Path]) -> pd.DataFrame:
    return pd.DataFrame(
        {"image_id": [p.stem for p in paths], "path": [str(p) for p in paths], "label": "nv"}
    )


def _smooth_jpeg(path: Path, size: tuple[int, int]) -> Path:
    """Photograph-like smooth content (noise would measure JPEG loss, not the resize)."""
    x, y = np.meshgrid(np.linspace(0, 1, size[0]), np.linspace(0, 1, size[1]))
    pixels = np.stack([200 * x + 30, 150 * y + 50, 120 * (1 - x * y) + 40], axis=-1)
    Image.fromarray(pixels.astype(np.uint8)).save(path, quality=95)
    return path


def _mtimes(table: pd.DataFrame) -> list[int]:
    return [os.stat(p).st_mtime_ns for p in table["path"]]


def test_shorter_side_resized_aspect_kept(tmp_path):
    sources = [
        _smooth_jpeg(tmp_path / "landscape.jpg", (600, 450)),
        write_jpeg(tmp_path / "portrait.jpg", size=(450, 600), seed=2),
        write_jpeg(tmp_path / "small.jpg", size=(50, 40), seed=3),  # never upsampled
    ]
    write_dicom(tmp_path / "scan.dcm", np.full((300, 200, 3), (120, 60, 30), np.uint8))
    sources.append(tmp_path / "scan.dcm")
    table = _table(sources)
    before = table.copy()
    cached = build_cache(table, 100, cache_root=tmp_path / "cache", workers=1, progress=False)
    assert table.equals(before)  # input untouched
    assert cached["source_path"].tolist() == table["path"].tolist()
    assert [Image.open(p).size for p in cached["path"]] == [
        (133, 100),
        (100, 133),
        (50, 40),
        (100, 150),
    ]
    assert all(Path(p).parent == tmp_path / "cache" / "100" for p in cached["path"])
    assert all(Image.open(p).format == "JPEG" for p in cached["path"])
    # same picture: the cached file matches a direct antialiased resize of the source
    direct = np.asarray(load_image(sources[0]).resize((133, 100), Image.BICUBIC), dtype=float)
    assert np.abs(np.asarray(load_image(cached["path"][0]), dtype=float) - direct).mean() < 1.0
    assert np.abs(np.asarray(load_image(cached["path"][3]), dtype=int) - (120, 60, 30)).max() <= 3


def test_built_once_and_rebuilt_when_the_source_changes(tmp_path):
    sources = [write_jpeg(tmp_path / f"{i}.jpg", size=(120, 90), seed=i) for i in range(3)]
    table = _table(sources)
    first = build_cache(table, 64, cache_root=tmp_path / "c", workers=1, progress=False)
    built = _mtimes(first)
    again = build_cache(table, 64, cache_root=tmp_path / "c", workers=1, progress=False)
    assert again["path"].tolist() == first["path"].tolist() and _mtimes(again) == built
    write_jpeg(sources[0], size=(120, 90), seed=99)  # new content, new mtime
    os.utime(sources[0], ns=(built[0] + 10**9, built[0] + 10**9))
    rebuilt = build_cache(table, 64, cache_root=tmp_path / "c", workers=1, progress=False)
    assert rebuilt["path"][0] != first["path"][0]
    assert rebuilt["path"][1:].tolist() == first["path"][1:].tolist()
    other_size = build_cache(table, 48, cache_root=tmp_path / "c", workers=1, progress=False)
    assert Image.open(other_size["path"][1]).size == (64, 48)
    assert cache_key(sources[1], 48) != cache_key(sources[1], 64)


def test_parallel_build_matches_serial(tmp_path):
    sources = [write_jpeg(tmp_path / f"{i}.jpg", size=(90, 70), seed=i) for i in range(12)]
    table = _table(sources)
    serial = build_cache(table, 32, cache_root=tmp_path / "a", workers=1, progress=False)
    parallel = build_cache(table, 32, cache_root=tmp_path / "b", workers=2, progress=False)
    for a, b in zip(serial["path"], parallel["path"], strict=True):
        assert Path(a).name == Path(b).name and Path(a).read_bytes() == Path(b).read_bytes()


def test_unreadable_sources_keep_their_path(tmp_path):
    good = write_jpeg(tmp_path / "good.jpg", size=(80, 60))
    (tmp_path / "bad.jpg").write_text("not an image")
    table = _table([good, tmp_path / "bad.jpg", tmp_path / "gone.jpg"])
    cached = build_cache(table, 32, cache_root=tmp_path / "c", workers=1, progress=False)
    assert cached["path"].tolist()[1:] == table["path"].tolist()[1:]
    assert cached["path"][0] != table["path"][0]
    with pytest.raises(DataError, match="without an image path"):
        build_cache(table.assign(path=np.nan), 32, cache_root=tmp_path / "c", progress=False)


def test_default_root_and_cli(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SKINLIB_CACHE", str(tmp_path / "cache_home"))
    root = make_ham10000_folder(tmp_path / "ham", 4, size=(60, 45))
    cached = build_cache(load_table(root), 30, workers=1, progress=False)
    assert all(Path(p).parent == tmp_path / "cache_home" / "images" / "30" for p in cached["path"])
    assert main(["cache", str(root), "--size", "20", "--workers", "1"]) == 0
    assert "cached 4 images at 20 px" in capsys.readouterr().out
    assert len(list((tmp_path / "cache_home" / "images" / "20").glob("*.jpg"))) == 4
