"""Figures come back as figures in the thesis style; tables are valid booktabs LaTeX with copies."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import seaborn as sns
from PIL import Image
from pylatexenc.latexwalker import LatexEnvironmentNode, LatexWalker

from skinlib.evaluation.calibration import reliability
from skinlib.formatting import format_ci, format_p
from skinlib.thesis import plots
from skinlib.thesis.tables import to_latex, write_table

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
    assert fig.axes[0].get_title(loc="left").startswith("true positive")
    assert len(plots.image_gallery(images, titles, ncols=3).axes) == 4


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


def _body_rows(tex: str) -> list[str]:
    body = tex.split("\\midrule")[1].split("\\bottomrule")[0]
    return [r for r in body.split("\\\\") if r.strip()]


def _balanced(tex: str) -> bool:
    depth = 0
    for i, ch in enumerate(tex):
        if ch in "{}" and (i == 0 or tex[i - 1] != "\\"):
            depth += 1 if ch == "{" else -1
            if depth < 0:
                return False
    return depth == 0


def results_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "model_name": ["resnet_18", "vit 100%", "swin & co"],
            "balanced accuracy": [0.81234, np.nan, 0.5],
            "95% CI": [format_ci(0.8, 0.75, 0.85), "--", format_ci(0.5, 0.4, 0.6)],
            "img/s": [1234.5, 12.34, 3.0],
        }
    )


def test_latex_table_is_booktabs_escaped_and_well_formed():
    tex = to_latex(results_frame(), "Results & more, $\\pm$ 95% CI of x_i", "tab:r")
    for part in ("\\toprule", "\\midrule", "\\bottomrule", "\\label{tab:r}"):
        assert part in tex
    assert "resnet\\_18" in tex and "vit 100\\%" in tex and "swin \\& co" in tex
    assert "\\caption{Results \\& more, $\\pm$ 95\\% CI of x\\_i}" in tex
    assert "0.812" in tex and "1234" in tex and "0.800 [0.750, 0.850]" in tex
    assert _balanced(tex)
    assert all(row.count("&") - row.count("\\&") == 3 for row in _body_rows(tex))
    nodes, _, _ = LatexWalker(tex).get_latex_nodes()
    envs = [n for n in nodes if isinstance(n, LatexEnvironmentNode)]
    assert [e.environmentname for e in envs] == ["table"]


def test_named_index_becomes_a_column():
    df = pd.DataFrame({"recall": [0.5, 0.75]}, index=pd.Index(["mel", "nv"], name="class"))
    tex = to_latex(df, "Per class", "tab:pc")
    assert "class & recall" in tex and all(r.count("&") == 1 for r in _body_rows(tex))


def test_write_table_writes_tex_csv_and_strict_json(tmp_path):
    df = results_frame()
    paths = write_table(df, tmp_path / "tables" / "results", "Results")
    assert set(paths) == {"tex", "csv", "json"}
    assert "\\label{tab:results}" in paths["tex"].read_text()
    pd.testing.assert_frame_equal(pd.read_csv(paths["csv"]), df, check_dtype=False)

    def no_nan(token):
        raise AssertionError(f"{token} is not JSON")

    records = json.loads(paths["json"].read_text(), parse_constant=no_nan)
    assert records[1]["balanced accuracy"] is None and records[0]["model_name"] == "resnet_18"


@pytest.mark.skipif(
    shutil.which("pdflatex") is None or shutil.which("bibtex") is None,
    reason="pdflatex/bibtex not installed (apt-get install texlive-latex-extra texlive-bibtex-extra)",
)
def test_table_compiles_with_pdflatex_and_bibtex(tmp_path):
    tex = to_latex(results_frame(), "Results", "tab:r")
    # the thesis's bibliography, as its captions cite it
    cited = "HAM10000~\\cite{tschandl2018ham10000}, timm~\\cite{wightman2019timm}."
    doc = (
        "\\documentclass{article}\\usepackage{booktabs,xurl}"
        "\\usepackage[numbers]{natbib}\\begin{document}"
        + tex
        + cited
        + "\\bibliographystyle{plainnat}\\bibliography{references}\\end{document}"
    )
    (tmp_path / "t.tex").write_text(doc)
    shutil.copy(ROOT / "thesis" / "references.bib", tmp_path / "references.bib")
    for cmd in (["pdflatex"], ["bibtex"], ["pdflatex"], ["pdflatex"]):
        args = [*cmd, "t"] if cmd == ["bibtex"] else [*cmd, "-interaction=nonstopmode", "t.tex"]
        run = subprocess.run(args, cwd=tmp_path, capture_output=True, timeout=60)
        assert run.returncode == 0, (cmd, run.stdout[-2000:])
    log = (tmp_path / "t.log").read_text()
    assert "Overfull \\hbox" not in log
    assert "undefined" not in log, [line for line in log.splitlines() if "undefined" in line]
    assert (tmp_path / "t.bbl").read_text().count("\\bibitem") == 2


def test_tables_are_never_scaled_below_the_caption_size():
    """A thesis table is set in \\small (the captions' size) and never shrunk to fit: a table too
    wide for the page must lose columns (the thesis build test then fails on an overfull box)."""
    wide = pd.concat([results_frame()] * 4, axis=1)
    wide.columns = [f"{c} {i}" for i, c in enumerate(wide.columns)]
    for tex in (to_latex(results_frame(), "Results", "tab:r"), to_latex(wide, "Wide", "tab:w")):
        assert "\\small" in tex
        for shrink in ("adjustbox", "resizebox", "scalebox", "footnotesize", "scriptsize", "tiny"):
            assert shrink not in tex


def test_format_ci():
    assert format_ci(0.81234, 0.7, 0.9) == "0.812 [0.700, 0.900]"
    assert format_ci(0.81234, 0.7, 0.9, digits=2) == "0.81 [0.70, 0.90]"
    assert format_ci(float("nan"), 0, 1) == "--"
    assert format_ci(0.5, float("nan"), float("nan")) == "0.500"


def test_format_p_never_prints_zero():
    assert format_p(0.0) == "<0.001" and format_p(2.5e-22) == "<0.001"
    assert format_p(0.001) == "0.001" and format_p(0.04123) == "0.041"
    assert format_p(0.004, digits=2) == "<0.01" and format_p(float("nan")) == "--"
