"""The training augmentation in words, read off the transforms skinlib builds."""

from __future__ import annotations

from collections.abc import Sequence

from skinlib.data.transforms import build_batch_augment, build_transforms
from skinlib.thesis.sections.base import percent


def describe_augmentation(preset: str, size: int = 224) -> str:
    """The training augmentation of a preset in words, read off the transform skinlib builds.

    >>> describe_augmentation("none")
    'no augmentation'
    """
    stats = {"mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5)}
    if preset == "none":
        return "no augmentation"
    ops = build_transforms(stats, train=True, augment=preset, size=size).transforms
    ops = [*ops, build_batch_augment(stats, preset)]
    words = [w for w in (_describe_op(op) for op in ops) if w]
    return ", ".join(words)


def _range(pair: Sequence[float], scale: float = 1.0, digits: int = 2) -> str:
    low, high = (round(v * scale, digits) for v in pair)
    return f"{low:g}-{high:g}"


def _describe_op(op) -> str:
    """One torchvision v2 transform in words; preprocessing steps (resize, normalise) are skipped."""
    name = type(op).__name__
    if name == "RandomResizedCrop":
        return (
            f"random resized crops of {_range(op.scale, 100, 0)}% of the image area "
            f"(aspect ratio {_range(op.ratio)})"
        )
    if name in ("RandomHorizontalFlip", "RandomVerticalFlip"):
        return f"{'horizontal' if 'Horizontal' in name else 'vertical'} flips (p = {op.p:g})"
    if name == "RandomRotation":
        return f"rotations by up to {max(abs(d) for d in op.degrees):g} degrees"
    if name in ("ColorJitter", "BatchColorJitter"):
        parts = [
            f"{k} {max(abs(v - (0 if k == 'hue' else 1)) for v in getattr(op, k)):g}"
            for k in ("brightness", "contrast", "saturation", "hue")
            if getattr(op, k) is not None
        ]
        if name == "BatchColorJitter":  # hue rotates the YIQ chroma plane: say so
            parts[-1] = parts[-1].replace("hue ", "hue (YIQ rotation, in turns) ")
        return f"colour jitter ({', '.join(parts)})"
    if name == "RandomAffine":
        bits = [f"rotation up to {max(abs(d) for d in op.degrees):g} degrees"]
        if op.translate:
            bits.append(f"translation up to {percent(max(op.translate))}")
        if op.scale:
            bits.append(f"scaling {_range(op.scale)}")
        if op.shear:
            bits.append(f"shear up to {max(abs(s) for s in op.shear):g} degrees")
        return f"random affine transforms ({', '.join(bits)})"
    if name == "RandomApply":
        inner = "; ".join(_describe_op(t) for t in op.transforms)
        return f"{inner} with probability {op.p:g}"
    if name == "GaussianBlur":
        return f"Gaussian blur (kernel {op.kernel_size[0]}, sigma {_range(op.sigma)})"
    if name == "RandomErasing":
        return (
            f"random erasing of {_range(op.scale, 100, 0)}% of the image with probability {op.p:g}"
        )
    if name in ("ToImage", "ToDtype", "Normalize", "Resize", "CenterCrop"):
        return ""
    return name
