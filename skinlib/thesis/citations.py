"""What the generated methods cite: the papers behind architectures, explanations, conformal
scores and software, by their keys in ``thesis/references.bib``, and the citation mark."""

from __future__ import annotations

ARCH_PAPERS = {  # timm name prefix -> citation key of the architecture's paper
    "resnet": "he2016resnet",
    "efficientnet": "tan2019efficientnet",
    "densenet": "huang2017densenet",
    "vit": "dosovitskiy2021vit",
    "swin": "liu2021swin",
}


XAI_PAPERS = {
    "gradcam": ("Grad-CAM", "selvaraju2017gradcam"),
    "gradcam++": ("Grad-CAM++", "chattopadhay2018gradcampp"),
    "scorecam": ("Score-CAM", "wang2020scorecam"),
    "eigencam": ("Eigen-CAM", "muhammad2020eigencam"),
}


SOFTWARE = {  # meta.json versions key -> (name in the text, citation key or "")
    "torch": ("PyTorch", "paszke2019pytorch"),
    "torchvision": ("torchvision", ""),
    "timm": ("timm", "wightman2019timm"),
    "scikit-learn": ("scikit-learn", "pedregosa2011sklearn"),
    "netcal": ("netcal", "kuppers2020netcal"),
    "grad-cam": ("pytorch-grad-cam", "gildenblat2021gradcam"),
    "numpy": ("NumPy", ""),
    "pandas": ("pandas", ""),
    "skinlib": ("skinlib", ""),
}


def citation(*keys: str) -> str:
    """The markup citation of ``keys`` (`` [@a; @b]``), nothing for none."""
    keys = [k for k in keys if k]
    return f" [{'; '.join('@' + k for k in keys)}]" if keys else ""


# the papers of the conformal scores 08 offers (skinlib.evaluation.conformal)
CONFORMAL_PAPERS = {
    "lac": "sadinle2019lac",
    "aps": "romano2020aps",
    "raps": "angelopoulos2021raps",
}
