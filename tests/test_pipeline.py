"""The whole study on the smoke profile: every output exists and holds sane values."""

from __future__ import annotations

import json
import time

import nbformat
import pandas as pd
import pytest
from pylatexenc.latexwalker import LatexWalker

from skinlib import paths
from skinlib.study.pipeline import PipelineError, Step, execute_step, run_pipeline

FIGURES = [
    "eda_samples",
    "eda_class_counts",
    "imbalance_recall",
    "calibration_reliability",
    "thresholds_roc",
    "xai_gallery",
    "comparison_forest",
    "comparison_curves",
    "train_resnet18_confusion",
    "train_vit_tiny_loss",
    "label_issues_gallery",
    "top_losses",
]
TABLES = [
    "eda_counts",
    "split_audit",
    "imbalance",
    "imbalance_arms",
    "metrics_resnet18",
    "calibration",
    "operating_points",
    "operating_points_all",
    "xai_scores",
    "comparison",
    "comparison_details",
    "paired_tests",
    "label_issue_counts",
    "skin_tone_bands",
    "skin_tone_performance",
    "confused_pairs",
]


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    root = tmp_path_factory.mktemp("study")
    env = {
        "SKINLIB_EXPERIMENTS": root / "exp",
        "SKINLIB_FIGURES": root / "fig",
        "SKINLIB_THESIS": root / "thesis",
        "SKINLIB_CACHE": root / "cache",
    }
    mp = pytest.MonkeyPatch()
    for key, value in env.items():
        mp.setenv(key, str(value))
    outcome = run_pipeline("params/smoke.yaml", progress=False)
    yield root, outcome
    mp.undo()


@pytest.mark.slow
def test_every_step_runs_and_writes_its_outputs(smoke):
    root, outcome = smoke
    assert set(outcome.values()) == {"ran"} and len(outcome) == 10  # 01-09, 03 per architecture
    for name in FIGURES:
        for suffix in (".pdf", ".png"):
            assert (root / "fig" / "smoke" / f"{name}{suffix}").stat().st_size > 1000, name
    for name in TABLES:
        tex = (root / "thesis" / "generated" / "smoke" / f"{name}.tex").read_text()
        assert "\\toprule" in tex and "\\bottomrule" in tex
        LatexWalker(tex).get_latex_nodes()  # parses
        assert (root / "thesis" / "generated" / "smoke" / f"{name}.csv").is_file()
    for nb in (root / "exp" / "smoke" / "notebooks").glob("*.ipynb"):
        cells = nbformat.read(nb, as_version=4).cells
        assert not any(o.get("output_type") == "error" for c in cells for o in c.get("outputs", []))


@pytest.mark.slow
def test_saved_notebooks_keep_progress_bars_short(smoke):
    """tqdm in papermill runs: a few lines per bar, not one per step, and no widget warning
    (text bars, or widget bars where ipywidgets is installed: their plain-text copy is read)."""
    root, _ = smoke
    nb = nbformat.read(root / "exp" / "smoke" / "notebooks" / "02_imbalance.ipynb", as_version=4)
    text = "\n".join(_output_text(o) for c in nb.cells for o in c.get("outputs", []))
    assert "IProgress not found" not in text
    draws = [line for line in text.replace("\r", "\n").splitlines() if "it/s" in line]
    bars = {line.split(":")[0].strip() for line in draws if line.strip().startswith("epoch")}
    epoch_draws = [line for line in draws if line.strip().startswith("epoch")]
    assert bars and len(epoch_draws) <= 3 * len(bars) * 3  # 3 strategy runs, <= 3 draws each


@pytest.mark.slow
def test_results_hold_sane_values(smoke):
    root, _ = smoke
    gen = root / "thesis" / "generated" / "smoke"
    metrics = pd.read_csv(gen / "metrics_resnet18.csv")
    assert metrics[["value", "low", "high"]].stack().between(0, 1).all()
    assert (metrics["low"] <= metrics["value"]).all() and (
        metrics["value"] <= metrics["high"]
    ).all()
    calib = pd.read_csv(gen / "calibration.csv").set_index(["model", "error"])
    for model in calib.index.unique("model"):
        nll = calib.loc[(model, "NLL")]
        assert nll["val_after"] <= nll["val_before"] + 1e-9  # temperature minimises val NLL
        ece = calib.loc[(model, "ECE")]
        values = ["val_before", "val_after", "test_before", "test_after"]
        assert ece[values].between(0, 1).all()
        assert ece["test_after_low"] <= ece["test_after_high"]
    run = root / "exp" / "smoke" / "resnet18"
    assert json.loads((run / "calibration.json").read_text())["temperature"] > 0
    assert (
        json.loads((run / "thresholds.json").read_text())["operating_points"][0]["val_specificity"]
        >= 0.9
    )
    assert (root / "exp" / "smoke" / "ensemble" / "predictions_test.csv").is_file()
    assert json.loads((run / "conformal.json").read_text())["coverage"] == 0.9
    points = pd.read_csv(gen / "operating_points_all.csv")
    assert points["threshold"].between(0, 1).all()
    # the profile's 0.9 target is also a standard one: listed once
    assert not points.duplicated(["model", "positive", "criterion (val)"]).any()
    body = pd.read_csv(gen / "operating_points.csv")
    assert len(body) == 2 * len(body["model"].unique())  # one point per model and positive set
    assert not any("_" in c for c in body.columns)  # human headers, not test_sensitivity_low
    arms = pd.read_csv(gen / "imbalance_arms.csv").set_index("strategy")
    assert arms.loc["none", "loss"] == "ce" and arms.loc["focal", "loss"].startswith("focal")
    assert (run / "calibration_tta.json").is_file() and (run / "thresholds_tta.json").is_file()


@pytest.mark.slow
def test_notebooks_state_their_findings(smoke):
    root, _ = smoke
    expected = {
        "02_imbalance": ["Best: ", "Epochs per run: none 2 (as given)"],
        "04_calibration": ["Temperature scaling lowered the test ECE for "],
        "05_thresholds": ["At the threshold chosen for 90% specificity on validation, mel"],
        "06_xai": ["'s maps peak on the lesion in "],
        "07_comparison": ["Intervals overlapping the best one's", "Epochs per run: resnet18 2"],
        "08_trust": ["Conformal sets for 90%"],
    }
    for name, sentences in expected.items():
        nb = nbformat.read(root / "exp" / "smoke" / "notebooks" / f"{name}.ipynb", as_version=4)
        text = "".join(_output_text(o) for c in nb.cells for o in c.get("outputs", []))
        for sentence in sentences:
            assert sentence in text, (name, sentence)


def _output_text(output) -> str:
    """What a saved cell output says: streams, results, displays (Markdown and plain text)."""
    data = output.get("data", {})
    return output.get("text", "") + data.get("text/markdown", "") + data.get("text/plain", "")


@pytest.mark.slow
def test_outputs_are_clean_for_a_reader(smoke):
    """No list of PosixPath above a figure, no error output, findings rendered as Markdown."""
    root, _ = smoke
    for path in sorted((root / "exp" / "smoke" / "notebooks").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        outputs = [o for c in nb.cells for o in c.get("outputs", [])]
        assert not [o for o in outputs if o.get("output_type") == "error"], path.name
        assert "PosixPath" not in "".join(map(_output_text, outputs)), path.name
    comparison = nbformat.read(root / "exp" / "smoke" / "notebooks" / "07_comparison.ipynb", 4)
    markdown = [
        o["data"]["text/markdown"]
        for c in comparison.cells
        for o in c.get("outputs", [])
        if "text/markdown" in o.get("data", {})
    ]
    assert any("**" in m for m in markdown)  # numbers in bold


@pytest.mark.slow
def test_second_run_skips_every_step(smoke):
    start = time.perf_counter()
    outcome = run_pipeline("params/smoke.yaml", progress=False)
    assert set(outcome.values()) == {"skipped"}
    assert time.perf_counter() - start < 30


def test_failing_notebook_names_the_cell(tmp_path, monkeypatch):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.cells = [
        nbformat.v4.new_code_cell("x = 1"),
        nbformat.v4.new_code_cell("raise ValueError('bad input row 7')"),
    ]
    nbformat.write(nb, tmp_path / "99_broken.ipynb")
    monkeypatch.setattr(paths, "notebooks_dir", lambda: tmp_path)
    out = tmp_path / "out" / "99_broken.ipynb"
    with pytest.raises(PipelineError) as err:
        execute_step(Step("99_broken", "99_broken.ipynb", {}), out, progress=False)
    message = str(err.value)
    assert (
        "99_broken failed in cell 1" in message
        and "bad input row 7" in message
        and str(out) in message
    )
    assert out.is_file()
