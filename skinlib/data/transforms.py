"""Augmentation presets on torchvision transforms v2, normalised with the model's own statistics.

Dermoscopy has no up or down, so flips and any rotation keep the label; colour jitter stays mild
because colour is diagnostic (blue-grey, red, white structures).
"""

from __future__ import annotations

import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms import v2 as T

from skinlib.errors import ConfigError

PRESETS = ("none", "basic", "strong")


def _interpolation(name: str) -> InterpolationMode:
    return {"bilinear": InterpolationMode.BILINEAR, "bicubic": InterpolationMode.BICUBIC}.get(
        name, InterpolationMode.BILINEAR
    )


def build_transforms(model_data_cfg: dict, train: bool, augment: str = "basic", size: int = 224):
    """PIL image -> normalised float tensor (3, size, size).

    Args:
        model_data_cfg: ``skinlib.models.data_config(model)`` (mean, std, interpolation).
        train: random augmentation (train) or resize + centre crop (evaluation).
        augment: none | basic | strong.
        size: output side in pixels.
    """
    if augment not in PRESETS:
        raise ConfigError(f"train.augment={augment!r}; choose one of {PRESETS}")
    interp = _interpolation(model_data_cfg.get("interpolation", "bilinear"))
    head = [T.ToImage()]
    tail = [
        T.ToDtype(torch.float32, scale=True),
        T.Normalize(mean=model_data_cfg["mean"], std=model_data_cfg["std"]),
    ]
    if not train or augment == "none":
        # The whole (square, cached) image: skinlib.study crops lesion masks the same way.
        return T.Compose(
            [*head, T.Resize(size, interpolation=interp, antialias=True), T.CenterCrop(size), *tail]
        )
    ops = [
        T.RandomResizedCrop(
            size, scale=(0.6, 1.0), ratio=(0.8, 1.25), interpolation=interp, antialias=True
        ),
        T.RandomHorizontalFlip(),
        T.RandomVerticalFlip(),
    ]
    if augment == "basic":
        ops += [T.RandomRotation(180), T.ColorJitter(0.1, 0.1, 0.05, 0.01)]
    else:
        ops += [
            T.RandomAffine(180, translate=(0.05, 0.05), scale=(0.9, 1.1), shear=5),
            T.ColorJitter(0.2, 0.2, 0.1, 0.02),
            T.RandomApply([T.GaussianBlur(5, sigma=(0.1, 1.5))], p=0.3),
        ]
    post = [T.RandomErasing(p=0.25, scale=(0.02, 0.1))] if augment == "strong" else []
    # The random ops run on the PIL image and only their small result becomes a tensor: Pillow's
    # C kernels cost about a third less per sample than the same ops on one uint8 tensor each,
    # and on a laptop the DataLoader workers take that CPU time from the training step.
    return T.Compose([*ops, *head, *tail, *post])
