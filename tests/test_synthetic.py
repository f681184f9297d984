"""SynthDerm: layout, determinism, masks, and a learnable-but-not-trivial task."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from scipy.ndimage import binary_dilation

from skinlib.cli import main
from skinlib.config import SynthConfig
from skinlib.data import load_table
from skinlib.data.eda import sample_grid
from skinlib.data.splits import audit_split, make_split
from skinlib.data.synthetic import ensure_synthderm, generate


def _digest(root):
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(path.relative_to(root).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    return generate(tmp_path_factory.mktemp("sd"), n=150, size=48, seed=0, progress=False)


def test_layout_header_and_images(synth):
    header = (synth / "HAM10000_metadata.csv").read_text().splitlines()[0]
    assert header == "lesion_id,image_id,dx,dx_type,age,sex,localization"
    table = load_table(synth, "ham10000")
    assert len(table) == 150 and table["mask_path"].notna().all()
    assert {p.split("/")[-2] for p in table["path"]} == {
        "HAM10000_images_part_1",
        "HAM10000_images_part_2",
    }
    image = Image.open(table["path"].iloc[0])
    assert image.format == "JPEG" and image.mode == "RGB" and image.size == (48, 48)
    assert set(table["label"]) == {"akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"}
    shares = table["label"].value_counts(normalize=True)
    assert shares.idxmax() == "nv" and 0.5 < shares["nv"] < 0.8
    assert (table.groupby("group").size() > 1).sum() >= 10  # lesions photographed more than once


def test_masks_are_binary_and_cover_the_lesion(synth):
    table = load_table(synth, "ham10000")
    for _, row in table.head(20).iterrows():
        mask = np.asarray(Image.open(row["mask_path"]))
        assert set(np.unique(mask)) <= {0, 255}
        share = (mask > 0).mean()
        assert 0.03 < share < 0.8
        image = np.asarray(Image.open(row["path"]), dtype=float)
        inside = mask > 0
        ring = binary_dilation(inside, iterations=4) & ~inside  # skin just outside the border
        assert np.abs(image[inside].mean(0) - image[ring].mean(0)).max() > 8


def test_loads_and_splits_by_lesion_without_leak(synth, capsys):
    split = make_split(load_table(synth, "ham10000"), seed=0)
    assert audit_split(split).shared_groups == 0
    assert main(["validate", str(synth), "--report", str(synth.parent / "r.csv")]) in (0, 1)
    report = pd.read_csv(synth.parent / "r.csv")
    # only the deliberately small 48 px size may be reported
    assert set(report["problem"]) <= {"extreme_size"}


def test_same_seed_same_bytes_any_workers(tmp_path):
    a = generate(tmp_path / "a", n=40, size=32, seed=5, workers=1, progress=False)
    b = generate(tmp_path / "b", n=40, size=32, seed=5, workers=2, progress=False)
    c = generate(tmp_path / "c", n=40, size=32, seed=6, workers=1, progress=False)
    assert _digest(a) == _digest(b)
    assert _digest(a) != _digest(c)


def test_isic2019_layout_loads(tmp_path):
    root = generate(tmp_path, n=60, size=32, classes="isic2019", layout="isic2019", progress=False)
    table = load_table(root, "isic2019")
    assert "scc" in set(table["label"]) and len(table) == 60


def test_ensure_reuses_complete_copy(tmp_path, monkeypatch):
    monkeypatch.setenv("SKINLIB_CACHE", str(tmp_path))
    cfg = SynthConfig(n=30, size=32, seed=1)
    root = ensure_synthderm(cfg, progress=False)
    stamp = (root / "HAM10000_metadata.csv").stat().st_mtime_ns
    assert ensure_synthderm(cfg, progress=False) == root
    assert (root / "HAM10000_metadata.csv").stat().st_mtime_ns == stamp


def test_sample_grid_has_a_row_per_class(synth):
    fig = sample_grid(load_table(synth, "ham10000"), per_class=3)
    assert len(fig.axes) == 7 * 3
    assert [fig.axes[i * 3].get_ylabel() for i in range(7)] == [
        "akiec",
        "bcc",
        "bkl",
        "df",
        "mel",
        "nv",
        "vasc",
    ]


def test_cli_synth(tmp_path):
    assert main(["synth", "--out", str(tmp_path), "--n", "20", "--size", "32"]) == 0
    assert len(pd.read_csv(tmp_path / "HAM10000_metadata.csv")) == 20


@pytest.mark.slow
def test_small_cnn_beats_chance_but_not_perfect(tmp_path):
    """A tiny CNN on balanced SynthDerm (default difficulty): well above 1/7, below 1."""
    import torch
    from sklearn.metrics import balanced_accuracy_score
    from torch import nn

    root = generate(tmp_path, n=900, size=48, seed=3, balanced=True, progress=False)
    table = make_split(load_table(root, "ham10000"), seed=0)
    classes = sorted(table["label"].unique())
    x = torch.tensor(
        np.stack([np.asarray(Image.open(p), dtype=np.float32) / 255 for p in table["path"]])
    ).permute(0, 3, 1, 2)
    x = (x - x.mean((0, 2, 3), keepdim=True)) / x.std((0, 2, 3), keepdim=True)
    y = torch.tensor(table["label"].map(classes.index).to_numpy())
    train = torch.tensor((table["split"] != "test").to_numpy())
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(64, len(classes)),
    )
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    xt, yt = x[train], y[train]
    for _ in range(8):
        model.train()
        for idx in torch.randperm(len(xt)).split(32):
            opt.zero_grad()
            nn.functional.cross_entropy(model(xt[idx]), yt[idx]).backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        pred = model(x[~train]).argmax(1)
    score = balanced_accuracy_score(y[~train], pred)
    assert 1 / 7 + 0.2 < score < 0.99, score
