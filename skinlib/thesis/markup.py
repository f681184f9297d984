"""The markup the generated thesis prose is written in, and its LaTeX rendering.

Sentences are plain text with two marks: `` `code` `` (run names, config keys, hashes) and
``[@key]`` or ``[@a; @b]`` citations of ``thesis/references.bib`` (pandoc's syntax, so the
Markdown copies stay as written).
"""

from __future__ import annotations

import re

TOKEN = re.compile(r"(\[@[^\]]+\]|`[^`]*`)")
LATEX_SPECIAL = {c: f"\\{c}" for c in "&%$#_{}"} | {
    "\\": r"\textbackslash{}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def latex_escape(text: str) -> str:
    r"""Plain text for LaTeX: ``& % $ # _ { } \ ~ ^`` escaped.

    >>> latex_escape("50% of x_1")
    '50\\% of x\\_1'
    """
    return "".join(LATEX_SPECIAL.get(c, c) for c in text)


def citation_keys(text: str) -> list[str]:
    """The citation keys a markup text uses, in order.

    >>> citation_keys("ResNet [@he2016resnet] and ViT [@dosovitskiy2021vit; @wightman2019timm]")
    ['he2016resnet', 'dosovitskiy2021vit', 'wightman2019timm']
    """
    keys = []
    for group in re.findall(r"\[(@[^\]]+)\]", text):
        keys += [k.strip().lstrip("@") for k in group.split(";")]
    return keys


def inline_latex(text: str) -> str:
    """Markup to LaTeX: citations become ``~\\cite{...}``, code ``\\texttt`` that may break."""
    out = []
    for part in TOKEN.split(text):
        if part.startswith("[@"):
            if out and out[-1].endswith(" "):
                out[-1] = out[-1][:-1]
            out.append("~\\cite{" + ",".join(citation_keys(part)) + "}")
        elif part.startswith("`") and part.endswith("`") and len(part) > 1:
            code = latex_escape(part[1:-1])
            code = re.sub(r"([/._\-])(?=.)", r"\1\\allowbreak{}", code.replace("\\_", "_"))
            out.append("\\texttt{" + code.replace("_", "\\_") + "}")
        else:
            out.append(latex_escape(part))
    return "".join(out)
