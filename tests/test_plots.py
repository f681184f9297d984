"""Figures come back as figures, drawn in the thesis style at their printed size (thesis/plots.py)."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import seaborn as sns
from fixtures.results import weak_site_audit
from PIL import Image

from skinlib.evaluation.calibration import reliability
from skinlib.evaluation.selective import risk_coverage
from skinlib.thesis import plots

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def _drawings() -> dict:
    """Every plot function, as ``{name: draw(ax) -> figure}``."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 200)
    proba = rng.dirichlet(np.ones(3), 200)
    cm = pd.DataFrame([[5, 1, 0], [2, 4, 0], [0, 0, 0]], index=list("abc"), columns=list("abc"))
    history = pd.DataFrame(
        {"epoch": [1, 2, 3], "train_loss": [1, 0.8, 0.7], "val_loss": [1.1, 0.9, 0.85]}
    )
    history["val_balanced_accuracy"] = [0.3, 0.5, 0.55]
    recall = pd.DataFrame(
        {"ce": [0.2, 0.9], "focal": [0.4, 0.8]}, index=pd.Index(["mel", "nv"], name="class")
    )
    models = pd.DataFrame(
        {"name": ["a", "b"], "value": [0.6, 0.7], "low": [0.5, 0.6], "high": [0.7, 0.8]}
    )
    calibration = {"before": reliability(y, proba), "after": reliability(y, proba**0.5 / 2)}
    roc = {"mel": (np.array([0, 0.5, 1]), np.array([0, 0.8, 1]), 0.9)}
    return {
        "confusion": lambda ax: plots.confusion_matrix(cm, ax=ax),
        "counts": lambda ax: plots.class_counts(pd.Series({"nv": 600, "mel": 100}), ax=ax),
        "reliability": lambda ax: plots.reliability_diagram(calibration, ax=ax),
        "roc": lambda ax: plots.roc_curves(roc, {"95% spec.": (0.05, 0.5)}, ax=ax),
        "learning": lambda ax: plots.learning_curves({"r": history}, ax=ax),
        "loss": lambda ax: plots.loss_curves(history, ax=ax),
        "bars": lambda ax: plots.grouped_bars(recall, ax=ax),
        "forest": lambda ax: plots.forest(models, ax=ax),
    }


def test_every_plot_returns_its_figure_and_draws_on_a_given_axis():
    for name, draw in _drawings().items():
        fig = draw(None)
        assert isinstance(fig, plt.Figure) and fig.axes[0].has_data(), name
        fig, ax = plt.subplots()
        assert draw(ax) is fig and ax.has_data(), name


def test_operating_points_take_their_curves_colour():
    roc = {m: (np.array([0, 0.5, 1]), np.array([0, 0.8, 1]), 0.9) for m in ("a", "b")}
    fig = plots.roc_curves(roc, {"b op.": (0.05, 0.5), "other": (0.1, 0.6)})
    lines = {line.get_label(): line.get_color() for line in fig.axes[0].get_lines()}
    assert lines["b op."] == lines["b (AUC 0.900)"] != lines["a (AUC 0.900)"]
    assert lines["other"] == "black"


def test_reliability_grid_has_a_panel_per_model_and_one_legend():
    rng = np.random.default_rng(0)
    y, proba = rng.integers(0, 3, 100), rng.dirichlet(np.ones(3), 100)
    tables = {"before": reliability(y, proba), "after": reliability(y, proba**0.5 / 2)}
    fig = plots.reliability_grid({f"model{i}": tables for i in range(5)})
    shown = [ax for ax in fig.axes if ax.axison]
    assert len(shown) == 5 and [ax.get_title() for ax in shown] == [f"model{i}" for i in range(5)]
    assert all(ax.get_legend() is None for ax in fig.axes) and len(fig.legends) == 1
    assert [t.get_text() for t in fig.legends[0].get_texts()] == [
        "perfect calibration",
        "before",
        "after",
        "images per bin (scaled)",
    ]


def test_galleries():
    rng = np.random.default_rng(1)
    images = [rng.random((40, 40, 3)) for _ in range(4)]
    cams = [rng.random((8, 8)).astype(np.float32) for _ in range(4)]
    titles = [f"true positive\np(mel)={p:.2f}" for p in (0.9, 0.8, 0.7, 0.6)]
    fig = plots.cam_gallery(images, cams, titles, ncols=2)
    assert len(fig.axes) == 8  # image and map for each
    assert fig.texts[0].get_text().startswith("true positive")
    assert len([ax for ax in plots.image_gallery(images, titles, ncols=3).axes if ax.images]) == 4


def _title_boxes(fig):
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    texts = list(fig.texts) + [ax.title for ax in fig.axes if ax.get_title()]
    return [t.get_window_extent(renderer) for t in texts if t.get_text()]


@pytest.mark.parametrize("gallery", ["image", "cam"])
def test_gallery_titles_never_overlap_at_print_size(gallery):
    """06's gallery at the thesis's width: six panels a row, long titles (the demo's read
    "false negative / mel, p(mel)=0.96" over its neighbour's)."""
    rng = np.random.default_rng(0)
    n = 12
    images = [rng.random((48, 48, 3)) for _ in range(n)]
    titles = [
        f"false negative\nmelanoma, p(melanoma)=0.9{i % 10}, lesion HAM_00{i}" for i in range(n)
    ]
    if gallery == "image":
        fig = plots.image_gallery(images, titles, ncols=6)
    else:
        cams = [rng.random((6, 6)).astype(np.float32) for _ in range(n)]
        fig = plots.cam_gallery(images, cams, titles, ncols=3)
    boxes = _title_boxes(fig)
    assert len(boxes) == n
    overlaps = [(i, j) for i in range(n) for j in range(i + 1, n) if boxes[i].overlaps(boxes[j])]
    assert not overlaps
    width = fig.bbox.width
    assert all(b.x0 >= 0 and b.x1 <= width for b in boxes)  # inside the page width


def test_save_figure_writes_pdf_and_png_at_300_dpi(tmp_path):
    fig = plots.confusion_matrix(
        pd.DataFrame([[5, 1], [2, 4]], index=list("ab"), columns=list("ab"))
    )
    written = plots.save_figure(fig, tmp_path / "figs" / "cm_v1.2")
    assert [p.name for p in written] == ["cm_v1.2.pdf", "cm_v1.2.png"]
    assert written[0].read_bytes().startswith(b"%PDF")
    with Image.open(written[1]) as png:
        assert png.info["dpi"] == pytest.approx((300, 300), abs=0.5)


def test_thesis_style_is_scoped_and_set_style_is_global():
    before = dict(plt.rcParams)
    with plots.thesis_style():
        assert plt.rcParams["savefig.dpi"] == 300
        colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
        assert [matplotlib.colors.to_rgb(c) for c in colours] == sns.color_palette("colorblind")
    assert plt.rcParams["savefig.dpi"] == before["savefig.dpi"]
    assert plt.rcParams["axes.prop_cycle"] == before["axes.prop_cycle"]
    with plt.rc_context():  # keep the global change inside this test
        plots.set_style()
        assert plt.rcParams["font.size"] == plots.STYLE["font.size"]


def test_subgroup_forest_draws_the_tested_difference_against_zero():
    """The figure shows what the table tests: each group minus the rest, with that interval,
    against a zero line, in the order of the ticks (top row first)."""
    audit = weak_site_audit()
    ax = plots.subgroup_forest(audit).axes[0]
    drawn = []
    for bars in ax.containers:
        (x,), (y,) = bars.lines[0].get_xdata(), bars.lines[0].get_ydata()
        (low, _), (high, _) = bars.lines[2][0].get_segments()[0]
        drawn.append((y, x, low, high))
    drawn = [row[1:] for row in sorted(drawn, reverse=True)]  # top row first
    expected = audit[["difference", "difference_low", "difference_high"]].to_numpy()
    np.testing.assert_allclose(drawn, expected)
    assert any(list(line.get_xdata()) == [0, 0] for line in ax.lines)  # no difference
    label = ax.get_xlabel()
    assert "difference in balanced accuracy" in label and "rest of the test set" in label
    assert "_" not in label


def test_risk_coverage_and_set_size_figures():
    y = np.array([0, 1, 0, 1])
    p = np.array([[0.9, 0.1], [0.2, 0.8], [0.4, 0.6], [0.7, 0.3]])
    fig = plots.risk_coverage_curves(
        {"max_probability": risk_coverage(y, p, p.max(1))}, error_rate=0.5
    )
    assert len(fig.axes[0].lines) == 2
    sizes = {"known": pd.Series([0, 3, 1]), "blank": pd.Series([0, 0, 4])}
    fig = plots.set_size_bars(sizes)
    assert len(fig.axes[0].patches) == 6


def test_grouped_bars_draw_more_strategies_than_the_palette_has_colours():
    recall = pd.DataFrame(
        {f"arm{i}": [0.1 * (i % 10), 0.5] for i in range(12)},
        index=pd.Index(["mel", "nv"], name="class"),
    )
    fig = plots.grouped_bars(recall)
    assert len(fig.axes[0].get_legend().get_texts()) == 12
