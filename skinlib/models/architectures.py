"""One model factory over timm: architectures by short name, their preprocessing, their Grad-CAM
layer, and parameter groups. Nothing outside this module names an architecture.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import timm
import torch
from torch import nn

from skinlib.config import ModelConfig
from skinlib.data.metadata import MetadataEncoder
from skinlib.errors import ConfigError, TrainingError
from skinlib.models.metadata import MetadataNet

log = logging.getLogger(__name__)

# short name -> (timm name, family). Families decide the Grad-CAM reshape, nothing else.
ARCHITECTURES: dict[str, tuple[str, str]] = {
    **{f"resnet{d}": (f"resnet{d}", "cnn") for d in (18, 34, 50, 101)},
    **{f"efficientnet_b{i}": (f"efficientnet_b{i}", "cnn") for i in range(6)},
    "densenet121": ("densenet121", "cnn"),
    "densenet201": ("densenet201", "cnn"),
    "vit_tiny": ("vit_tiny_patch16_224", "vit"),
    "vit_small": ("vit_small_patch16_224", "vit"),
    "vit_base": ("vit_base_patch16_224", "vit"),
    "swin_tiny": ("swin_tiny_patch4_window7_224", "swin"),
    "swin_small": ("swin_small_patch4_window7_224", "swin"),
    "swin_base": ("swin_base_patch4_window7_224", "swin"),
}
# EfficientNets are compound-scaled: each width/depth comes with its own resolution (Tan & Le 2019,
# Table 1). Every other model's native size is the input size of its timm pretrained config.
PAPER_RESOLUTION = {"efficientnet_b1": 240, "efficientnet_b2": 260, "efficientnet_b3": 300}
PAPER_RESOLUTION |= {"efficientnet_b4": 380, "efficientnet_b5": 456}


class ArchitectureError(TrainingError, ConfigError):
    """An architecture name that neither the registry nor timm knows."""


def resolve_arch(name: str) -> tuple[str, str]:
    """(timm name, family) for a short name or a timm name; unknown names list close ones."""
    if name in ARCHITECTURES:
        return ARCHITECTURES[name]
    if name in timm.list_models():
        family = "vit" if name.startswith(("vit", "deit")) else "swin" if "swin" in name else "cnn"
        return name, family
    candidates = list(dict.fromkeys(list(ARCHITECTURES) + timm.list_models()))
    close = difflib.get_close_matches(name, candidates, n=5)
    raise ArchitectureError(
        f"unknown architecture {name!r}; close names: {close or 'none'}; "
        f"the study's short names are {sorted(ARCHITECTURES)}"
    )


def native_size(arch: str) -> int:
    """The input side in pixels the architecture was designed (and pretrained) for."""
    timm_name, _ = resolve_arch(arch)
    if arch in PAPER_RESOLUTION:
        return PAPER_RESOLUTION[arch]
    return int(timm.models.get_pretrained_cfg(timm_name).input_size[-1])


def _pretrained_kwargs(cfg: ModelConfig) -> dict:
    if not cfg.pretrained:
        return {"pretrained": False}
    if not cfg.weights:
        return {"pretrained": True}
    path = Path(cfg.weights).expanduser()
    if path.is_dir():  # a hub cache folder, filled once where the hub was reachable
        return {"pretrained": True, "cache_dir": str(path)}
    if not path.is_file():
        raise ConfigError(f"model.weights={cfg.weights}: no such file or directory")
    return {"pretrained": True, "pretrained_cfg_overlay": {"file": str(path)}}


def create_model(
    cfg: ModelConfig,
    num_classes: int,
    img_size: int | None = None,
    metadata: MetadataEncoder | None = None,
) -> nn.Module:
    """A timm model with a fresh head for ``num_classes`` outputs (1 for a binary task).

    Args:
        cfg: architecture, pretrained weights, dropout and drop-path; with ``cfg.metadata`` the
            timm model is the backbone (``num_classes=0``) of a
            :class:`~skinlib.models.metadata.MetadataNet`.
        num_classes: outputs of the new head.
        img_size: input side for models whose position embeddings or attention windows depend
            on it (ViT, Swin; timm resamples pretrained position embeddings and shrinks Swin's
            windows to fit, so tiny test images of 32 px work).
        metadata: the encoder fitted on the training split (``cfg.metadata`` only): its width
            and its encoding of "nothing recorded".
    """
    timm_name, family = resolve_arch(cfg.arch)
    if cfg.metadata and metadata is None:
        raise ConfigError("model.metadata=true needs the metadata encoder of the training split")
    source = _pretrained_kwargs(cfg)
    kwargs = {"num_classes": 0 if cfg.metadata else num_classes, "drop_rate": cfg.drop_rate}
    if cfg.drop_path_rate:
        kwargs["drop_path_rate"] = cfg.drop_path_rate
    if family in ("vit", "swin") and img_size:
        kwargs["img_size"] = img_size
    try:
        model = _timm_model(timm_name, source, kwargs)
    except (OSError, RuntimeError, ValueError) as err:
        if not cfg.pretrained:
            raise
        raise ConfigError(
            f"could not load pretrained weights for {cfg.arch} ({timm_name}): {err}. Offline? "
            "Download them once where the hub is reachable and point model.weights at the file "
            "(e.g. model.weights=/path/to/model.safetensors) or at the cache folder, or train "
            "from scratch with model.pretrained=false"
        ) from None
    if not cfg.metadata:
        return model
    return MetadataNet(model, num_classes, torch.from_numpy(metadata.missing_row()))


def _timm_model(timm_name: str, source: dict, kwargs: dict) -> nn.Module:
    """timm.create_model; a model without stochastic depth (DenseNet) is built without it, so one
    profile can set ``drop_path_rate`` for every architecture of a study."""
    try:
        return timm.create_model(timm_name, **source, **kwargs)
    except TypeError as err:
        if "drop_path_rate" not in str(err):
            raise
        log.warning("%s has no stochastic depth: model.drop_path_rate is ignored", timm_name)
        kwargs = {k: v for k, v in kwargs.items() if k != "drop_path_rate"}
        return timm.create_model(timm_name, **source, **kwargs)


def image_backbone(model: nn.Module) -> nn.Module:
    """The timm model that sees the images: the model itself, or a metadata model's backbone."""
    return model.backbone if isinstance(model, MetadataNet) else model


def data_config(model: nn.Module) -> dict:
    """Preprocessing the model expects (mean, std, interpolation, input_size, crop_pct)."""
    return timm.data.resolve_model_data_config(image_backbone(model))


def family_of(model: nn.Module) -> str:
    model = image_backbone(model)
    name = model.pretrained_cfg.get("architecture", type(model).__name__.lower())
    return resolve_arch(name)[1] if name else "cnn"


# A class activation map has one cell per feature-map position. ResNet's last stage at 224 px has
# 7x7 cells, the coarsest grid Grad-CAM is usually read at; at the demo's 48 px it has 2x2 (and
# DenseNet's 1x1), so the upsampled map peaks in a corner whatever the model looks at. Smaller
# inputs are therefore explained at the deepest stage that still has at least this many cells a side.
MIN_CAM_GRID = 6


@dataclass
class CamSpec:
    """What pytorch-grad-cam needs for one model, and which layer that is (for reports)."""

    target_layers: list[nn.Module]
    reshape_transform: Callable[[torch.Tensor], torch.Tensor] | None
    layer: str = ""  # module name of the target layer
    grid: int = 0  # cells per side of the map at the input size asked for (0 = not known)


def _vit_reshape(model: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    prefix = getattr(model, "num_prefix_tokens", 1)
    grid = model.patch_embed.grid_size

    def reshape(tokens: torch.Tensor) -> torch.Tensor:
        x = tokens[:, prefix:, :]
        return x.reshape(x.shape[0], grid[0], grid[1], x.shape[-1]).permute(0, 3, 1, 2)

    return reshape


def _swin_reshape(tokens: torch.Tensor) -> torch.Tensor:
    return tokens.permute(0, 3, 1, 2)  # timm's Swin blocks are channels-last (B, H, W, C)


def _cam_stage(model: nn.Module, input_size: int | None) -> tuple[dict, int]:
    """The deepest feature stage with at least MIN_CAM_GRID cells a side, and its side.

    Without ``input_size`` (or when even the first stage is coarser) the last stage is used.
    """
    stages = list(model.feature_info)
    if not input_size:
        return stages[-1], 0
    for stage in reversed(stages):
        side = input_size // stage["reduction"]
        if side >= MIN_CAM_GRID:
            return stage, side
    return stages[-1], input_size // stages[-1]["reduction"]


def cam_spec(model: nn.Module, input_size: int | None = None) -> CamSpec:
    """Grad-CAM target layer and token reshape for this model's family.

    Args:
        input_size: side of the images to explain; below about 200 px CNN and Swin maps move
            to an earlier stage (see ``MIN_CAM_GRID``). ViT's tokens have one grid in every block.

    A metadata model is explained at its backbone's layers (named as in the backbone).
    """
    family = family_of(model)
    model = image_backbone(model)
    if family == "vit":
        name = f"blocks.{len(model.blocks) - 1}.norm1"
        grid = input_size // model.patch_embed.patch_size[0] if input_size else 0
        return CamSpec([model.get_submodule(name)], _vit_reshape(model), name, grid)
    stage, grid = _cam_stage(model, input_size)
    if family == "swin":
        blocks = model.get_submodule(stage["module"]).blocks
        name = f"{stage['module']}.blocks.{len(blocks) - 1}.norm1"
        return CamSpec([model.get_submodule(name)], _swin_reshape, name, grid)
    return CamSpec([model.get_submodule(stage["module"])], None, stage["module"], grid)


def param_groups(
    model: nn.Module, lr: float, backbone_lr_mult: float, weight_decay: float
) -> list[dict]:
    """Backbone and head as separate groups (head at ``lr``, backbone at ``lr * mult``; a
    metadata model's metadata MLP is new, so it goes with the head); norms and biases get no
    weight decay."""
    head_ids = _head_ids(model)
    groups: dict[tuple[str, bool], list] = {}
    for name, param in model.named_parameters():
        part = "head" if id(param) in head_ids else "backbone"
        decay = param.ndim > 1 and not name.endswith(".bias")
        groups.setdefault((part, decay), []).append(param)
    return [
        {
            "params": params,
            "lr": lr if part == "head" else lr * backbone_lr_mult,
            "weight_decay": weight_decay if decay else 0.0,
            "name": f"{part}{'' if decay else '_no_decay'}",
        }
        for (part, decay), params in groups.items()
    ]


def set_backbone_trainable(model: nn.Module, trainable: bool) -> None:
    """Freeze (two-stage training, stage one) or unfreeze everything but the head (and a
    metadata model's metadata MLP)."""
    head_ids = _head_ids(model)
    for param in model.parameters():
        if id(param) not in head_ids:
            param.requires_grad_(trainable)


def _head_ids(model: nn.Module) -> set[int]:
    """Ids of the parameters trained from scratch on top of the backbone."""
    modules = model.new_modules() if isinstance(model, MetadataNet) else [model.get_classifier()]
    return {id(p) for m in modules for p in m.parameters()}


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
