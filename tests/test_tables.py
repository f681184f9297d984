"""Thesis tables: booktabs LaTeX beside CSV and JSON copies, captions at their size (thesis/tables.py)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pylatexenc.latexwalker import LatexEnvironmentNode, LatexWalker

from skinlib.formatting import format_ci
from skinlib.thesis.tables import to_latex, write_table

ROOT = Path(__file__).resolve().parents[1]


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
