"""LaTeX for the generated thesis: the one escaper, and the markup the prose is written in.

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
# outside math: an already escaped special (kept), or a special to escape
ESCAPED_OR_SPECIAL = re.compile(r"\\[&%$#_{}]|[&%$#_{}\\~^]")


def latex_escape(text: str, math: bool = False) -> str:
    r"""Plain text for LaTeX: ``& % $ # _ { } \ ~ ^`` escaped.

    Args:
        math: the text may hold ``$...$`` math (a caption with ``$\pm$`` or ``$x_i$``): the math
            is kept as written, and so is a character already escaped outside it (``\%``).

    >>> latex_escape("50% of x_1")
    '50\\% of x\\_1'
    >>> latex_escape(r"95% CI, $\pm$ x_i \& more", math=True)
    '95\\% CI, $\\pm$ x\\_i \\& more'
    """
    if not math:
        return "".join(LATEX_SPECIAL.get(c, c) for c in text)
    parts = text.split("$")
    parts[::2] = [ESCAPED_OR_SPECIAL.sub(_escape_match, p) for p in parts[::2]]
    return "$".join(parts)


def _escape_match(match: re.Match) -> str:
    token = match.group(0)
    return token if len(token) == 2 else LATEX_SPECIAL[token]


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
