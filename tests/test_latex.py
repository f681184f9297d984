"""LaTeX for the generated thesis: the one escaper and the markup (thesis/latex.py)."""

from __future__ import annotations

from skinlib.thesis import sections, write


def test_latex_escapes_text_and_renders_citations_and_code():
    section = sections.Section(
        "Data & more", "sec:x", [["50% of `efficientnet_b0` [@he2016resnet; @lin2017focal]."]]
    )
    tex = write.to_latex([section])
    assert "\\section{Data \\& more}\\label{sec:x}" in tex
    assert (
        "50\\% of \\texttt{efficientnet\\_\\allowbreak{}b0}~\\cite{he2016resnet,lin2017focal}."
        in tex
    )
