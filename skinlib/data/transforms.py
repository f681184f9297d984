"""Augmentation presets on torchvision transforms v2, normalised with the model's own statistics.

Dermoscopy has no up or down, so flips and any rotation keep the label; colour jitter stays mild
because colour is diagnostic (blue-grey, red, white structures).

Geometry runs per image in the loader (:func:`build_transforms`); colour jitter runs per image but
on the whole batch at once, on the training device (:func:`build_batch_augment`).
"""

from __future__ import annotations

import math

import torch
from PIL import Image
from torch import nn
from torchvision.transforms import InterpolationMode
from torchvision.transforms import v2 as T

from skinlib.errors import ConfigError

PRESETS = ("none", "basic", "strong")


def _interpolation(name: str) -> InterpolationMode:
    return {"bilinear": InterpolationMode.BILINEAR, "bicubic": InterpolationMode.BICUBIC}.get(
        name, InterpolationMode.BILINEAR
    )


def eval_geometry(size: int, interpolation: InterpolationMode = InterpolationMode.BILINEAR) -> list:
    """The evaluation geometry: shorter side resized to ``size``, then the central ``size`` square.

    The one definition of what the model sees of an image at evaluation: the evaluation transform,
    the lesion masks its maps are scored against and the images the maps are drawn over all use it.
    """
    return [T.Resize(size, interpolation=interpolation, antialias=True), T.CenterCrop(size)]


def centre_square(
    image: Image.Image, size: int, interpolation: InterpolationMode = InterpolationMode.BICUBIC
) -> Image.Image:
    """The part of a PIL image the model sees (:func:`eval_geometry`), ``size`` pixels a side.

    >>> centre_square(Image.new("L", (40, 20)), 10).size
    (10, 10)
    """
    return T.Compose(eval_geometry(size, interpolation))(image)


def build_transforms(model_data_cfg: dict, train: bool, augment: str = "basic", size: int = 224):
    """PIL image -> normalised float tensor (3, size, size).

    Args:
        model_data_cfg: ``skinlib.models.architectures.data_config(model)`` (mean, std, interpolation).
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
        return T.Compose([*head, *eval_geometry(size, interp), *tail])
    ops = [
        T.RandomResizedCrop(
            size, scale=(0.6, 1.0), ratio=(0.8, 1.25), interpolation=interp, antialias=True
        ),
        T.RandomHorizontalFlip(),
        T.RandomVerticalFlip(),
    ]
    if augment == "basic":
        ops += [T.RandomRotation(180)]
    else:
        ops += [
            T.RandomAffine(180, translate=(0.05, 0.05), scale=(0.9, 1.1), shear=5),
            T.RandomApply([T.GaussianBlur(5, sigma=(0.1, 1.5))], p=0.3),
        ]
    post = [T.RandomErasing(p=0.25, scale=(0.02, 0.1))] if augment == "strong" else []
    # The random ops run on the PIL image and only their small result becomes a tensor: Pillow's
    # C kernels cost about a third less per sample than the same ops on one uint8 tensor each,
    # and on a laptop the DataLoader workers take that CPU time from the training step.
    return T.Compose([*ops, *head, *tail, *post])


# brightness, contrast, saturation, hue of each preset's colour jitter (torchvision's meaning)
JITTER = {"basic": (0.1, 0.1, 0.05, 0.01), "strong": (0.2, 0.2, 0.1, 0.02)}
GREY = (0.299, 0.587, 0.114)  # ITU-R 601 luma, as torchvision's rgb_to_grayscale
RGB_TO_YIQ = ((0.299, 0.587, 0.114), (0.596, -0.274, -0.322), (0.211, -0.523, 0.312))


def build_batch_augment(model_data_cfg: dict, augment: str = "basic") -> nn.Module | None:
    """The preset's colour jitter as a module on normalised batches; None for ``none``."""
    if augment not in PRESETS:
        raise ConfigError(f"train.augment={augment!r}; choose one of {PRESETS}")
    if augment == "none":
        return None
    return BatchColorJitter(*JITTER[augment], model_data_cfg["mean"], model_data_cfg["std"])


class BatchColorJitter(nn.Module):
    """Colour jitter with its own random factors for each image, applied to a normalised batch.

    Why not ``torchvision.transforms.v2.ColorJitter`` in the loader: on a 2-core laptop its hue step
    (a Pillow HSV round trip) cost 0.37 ms of the 0.95 ms the loader spent per 64 px image, time
    taken from the training step, and its exact HSV version on tensors costs more still. Here
    brightness, contrast and saturation are torchvision's steps (in that fixed order); the hue step
    rotates the chroma plane of YIQ by the drawn fraction of a turn, as NVIDIA DALI's hue operator
    does, instead of shifting the H of HSV (luma is kept exactly). All four are linear in RGB
    (contrast with the image's mean grey as offset), so they compose into one 3x3 matrix and one
    offset per image, applied in one batched product and clamped to [0, 1] once; torchvision
    clamps after each step, which differs only where a step saturates a pixel.

    Args:
        brightness, contrast, saturation: factors drawn uniformly from [1 - v, 1 + v].
        hue: shift drawn uniformly from [-v, v] of a full turn.
        mean, std: the normalisation the batch carries (the model's), undone and redone here.
    """

    def __init__(
        self,
        brightness: float,
        contrast: float,
        saturation: float,
        hue: float,
        mean: tuple[float, ...],
        std: tuple[float, ...],
    ):
        super().__init__()
        self.brightness = (1 - brightness, 1 + brightness)
        self.contrast = (1 - contrast, 1 + contrast)
        self.saturation = (1 - saturation, 1 + saturation)
        self.hue = (-hue, hue)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32))
        self.register_buffer("grey", torch.tensor(GREY))
        self.register_buffer("yiq", torch.tensor(RGB_TO_YIQ))

    def _draw(self, low_high: tuple[float, float], n: int) -> torch.Tensor:
        """(n, 1, 1) factors, uniform in ``low_high``."""
        return torch.empty(n, 1, 1, device=self.mean.device).uniform_(*low_high)

    def _hue_matrices(self, turns: torch.Tensor) -> torch.Tensor:
        """(n, 3, 3) RGB -> RGB matrices that rotate the IQ chroma plane by ``turns``."""
        angle = -turns.flatten() * 2 * math.pi  # the direction in which HSV hue grows
        cos, sin = torch.cos(angle), torch.sin(angle)
        rotate = torch.zeros(len(angle), 3, 3, device=angle.device)
        rotate[:, 0, 0] = 1
        rotate[:, 1, 1], rotate[:, 1, 2] = cos, -sin
        rotate[:, 2, 1], rotate[:, 2, 2] = sin, cos
        return torch.linalg.inv(self.yiq) @ rotate @ self.yiq

    def matrices(self, n: int) -> torch.Tensor:
        """(n, 3, 3) colour matrices and the contrast factors (n, 1, 1) of one random draw.

        brightness b, contrast c, saturation s, hue H: ``H (s I + (1 - s) 1 g^T) (c b x)`` plus
        the offset ``(1 - c) b mean_grey`` on every channel (saturation and hue keep grey).
        """
        b, c, s = (self._draw(r, n) for r in (self.brightness, self.contrast, self.saturation))
        eye = torch.eye(3, device=self.mean.device)
        saturate = s * eye + (1 - s) * torch.ones(3, 1, device=eye.device) @ self.grey[None]
        return (b * c) * self._hue_matrices(self._draw(self.hue, n)) @ saturate, b, c

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        """(n, 3, h, w) normalised -> the same, jittered, in the channels-last layout."""
        n, _, h, w = batch.shape
        pixels = batch.float().permute(0, 2, 3, 1).reshape(n, h * w, 3)  # a view if channels-last
        raw = (pixels * self.std + self.mean).clamp_(0, 1)
        matrix, b, c = self.matrices(n)
        offset = (1 - c) * b * (raw @ self.grey).mean(1).view(n, 1, 1)
        out = torch.baddbmm(offset, raw, matrix.transpose(1, 2)).clamp_(0, 1)
        out = (out - self.mean) / self.std
        return out.view(n, h, w, 3).permute(0, 3, 1, 2).to(batch.dtype)
