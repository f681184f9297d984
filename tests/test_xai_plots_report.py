"""Grad-CAM for every family with scores; figures; LaTeX tables."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import torch
from pylatexenc.latexwalker import LatexEnvironmentNode, LatexWalker

from skinlib import plots
from skinlib.config import ModelConfig
from skinlib.models import create_model
from skinlib.report import format_ci, to_latex, write_table
from skinlib.xai import compute_cams, faithfulness_scores, gallery_indices, mask_scores, overlay


@pytest.mark.parametrize(
    "arch", ["resnet18", "efficientnet_b0", "densenet121", "vit_tiny", "swin_tiny"]
)
def test_gradcam_runs_for_each_family(arch):
    torch.manual_seed(0)
    model = create_model(ModelConfig(arch=arch), 3, img_size=64).eval()
    images = torch.randn(2, 3, 64, 64)
    cams = compute_cams(model, images)
    assert cams.shape == (2, 64, 64) and cams.min() >= 0 and cams.max() <= 1
    assert np.isfinite(cams).all()


@pytest.mark.parametrize("method", ["gradcam++", "eigencam", "scorecam"])
def test_other_cam_methods(method):
    model = create_model(ModelConfig(arch="resnet18"), 3).eval()
    cams = compute_cams(model, torch.randn(1, 3, 32, 32), targets=[2], method=method)
    assert cams.shape == (1, 32, 32)


def test_binary_model_cam_and_faithfulness():
    model = create_model(ModelConfig(arch="resnet18"), 1).eval()
    images = torch.randn(2, 3, 32, 32)
    cams = compute_cams(model, images)
    scores = faithfulness_scores(model, images, cams)
    assert scores.shape == (2,) and np.isfinite(scores).all()


def test_mask_scores_known_maps():
    mask = np.zeros((10, 10), bool)
    mask[2:6, 2:6] = True
    inside = np.zeros((10, 10), np.float32)
    inside[3, 3] = 1.0
    outside = np.zeros((10, 10), np.float32)
    outside[8, 8] = 1.0
    half = np.where(mask, 1.0, 0.0).astype(np.float32) + np.where(~mask, 16 / 84, 0).astype(
        np.float32
    )
    scores = mask_scores(np.stack([inside, outside, half]), [mask, mask, mask])
    assert scores["pointing"].tolist() == [1.0, 0.0, 1.0]
    np.testing.assert_allclose(scores["energy_inside"], [1.0, 0.0, 0.5], atol=1e-6)


def test_mask_is_resized_to_the_map():
    mask = np.zeros((40, 40), bool)
    mask[:20] = True
    cam = np.zeros((10, 10), np.float32)
    cam[:5] = 1
    assert mask_scores(cam[None], [mask])["energy_inside"].item() == pytest.approx(1.0)


def test_gallery_picks_the_right_kinds():
    labels = np.array([0, 0, 1, 1])
    proba = np.array([[0.9, 0.1], [0.3, 0.7], [0.6, 0.4], [0.2, 0.8]])
    out = gallery_indices(labels, proba, cls=1)
    assert out == {"true positive": [3], "false negative": [2], "false positive": [1]}


def test_overlay_shape_and_type():
    img = np.random.default_rng(0).random((50, 40, 3))
    out = overlay(img, np.random.default_rng(1).random((8, 8)).astype(np.float32))
    assert out.shape == (50, 40, 3) and out.dtype == np.uint8


def test_plots_return_figures_and_save(tmp_path):
    plots.set_style()
    cm = pd.DataFrame([[5, 1], [2, 4]], index=["a", "b"], columns=["a", "b"])
    figs = [
        plots.confusion_matrix(cm),
        plots.class_counts(pd.Series({"nv": 600, "mel": 100})),
        plots.reliability_diagram(
            {
                "before": pd.DataFrame(
                    {"count": [1, 2], "confidence": [0.3, 0.8], "accuracy": [0.2, 0.6]}
                )
            }
        ),
        plots.roc_curves(
            {"m": (np.array([0, 0.5, 1]), np.array([0, 0.8, 1]), 0.9)}, {"op": (0.05, 0.5)}
        ),
        plots.learning_curves(
            {"r": pd.DataFrame({"epoch": [1, 2], "val_balanced_accuracy": [0.3, 0.5]})}
        ),
        plots.grouped_bars(
            pd.DataFrame(
                {"ce": [0.2, 0.9], "focal": [0.4, 0.8]}, index=pd.Index(["mel", "nv"], name="class")
            )
        ),
        plots.forest(
            pd.DataFrame(
                {"name": ["a", "b"], "value": [0.6, 0.7], "low": [0.5, 0.6], "high": [0.7, 0.8]}
            )
        ),
    ]
    fig, ax = plt.subplots()
    assert plots.confusion_matrix(cm, ax=ax) is fig
    written = plots.save_figure(figs[0], tmp_path / "cm")
    assert [p.suffix for p in written] == [".pdf", ".png"] and all(
        p.stat().st_size > 0 for p in written
    )
    for f in figs:
        plt.close(f)


def _rows(tex: str) -> list[str]:
    body = tex.split("\\midrule")[1].split("\\bottomrule")[0]
    return [r for r in body.split("\\\\") if r.strip()]


def test_latex_table_parses_and_has_booktabs(tmp_path):
    df = pd.DataFrame(
        {
            "model_name": ["resnet_18", "vit 100%"],
            "balanced accuracy": [0.81234, np.nan],
            "ci": [format_ci(0.8, 0.75, 0.85), "--"],
        }
    )
    tex = to_latex(df, "Results & more", "tab:r")
    for rule in ("\\toprule", "\\midrule", "\\bottomrule", "\\caption", "\\label{tab:r}"):
        assert rule in tex
    assert "resnet\\_18" in tex and "vit 100\\%" in tex and "0.812" in tex
    nodes, _, _ = LatexWalker(tex).get_latex_nodes()
    envs = [n for n in nodes if isinstance(n, LatexEnvironmentNode)]
    assert envs and envs[0].environmentname == "table"
    assert all(r.count("&") == 2 for r in _rows(tex))
    paths = write_table(df, tmp_path / "results", "Results", "tab:results")
    assert pd.read_csv(paths["csv"]).shape == (2, 3) and paths["tex"].read_text().startswith(
        "\\begin{table}"
    )


def test_format_ci():
    assert format_ci(0.81234, 0.7, 0.9) == "0.812 [0.700, 0.900]"
    assert format_ci(float("nan"), 0, 1) == "--"
