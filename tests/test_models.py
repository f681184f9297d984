"""The model factory: registry, heads, preprocessing, Grad-CAM layers, parameter groups, weights."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import timm
import torch
from conftest import FAMILIES

from skinlib.config import ModelConfig
from skinlib.errors import ConfigError, TrainingError
from skinlib.models.architectures import (
    ARCHITECTURES,
    cam_spec,
    create_model,
    data_config,
    native_size,
    param_groups,
    resolve_arch,
    set_backbone_trainable,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


def test_registry_covers_the_study_and_names_real_timm_models():
    expected = {f"resnet{d}" for d in (18, 34, 50, 101)}
    expected |= {f"efficientnet_b{i}" for i in range(6)}
    expected |= {"densenet121", "densenet201", "vit_tiny", "vit_small", "vit_base"}
    expected |= {"swin_tiny", "swin_small", "swin_base"}
    assert set(ARCHITECTURES) == expected
    known = set(timm.list_models())
    assert all(timm_name in known for timm_name, _ in ARCHITECTURES.values())
    assert ARCHITECTURES["vit_tiny"] == ("vit_tiny_patch16_224", "vit")
    assert ARCHITECTURES["swin_tiny"] == ("swin_tiny_patch4_window7_224", "swin")
    assert resolve_arch("convnext_atto") == ("convnext_atto", "cnn")  # any timm name works too


def test_unknown_architecture_lists_close_names():
    with pytest.raises(TrainingError, match=r"close names.*'resnet18'") as err:
        resolve_arch("resnet_18")
    assert isinstance(err.value, ConfigError)  # a config value the user can fix
    with pytest.raises(TrainingError, match="efficientnet_b0"):
        create_model(ModelConfig(arch="efficientnet-b0"), 3)


def test_native_resolution_follows_the_architecture():
    # EfficientNet's compound scaling (Tan & Le 2019); the others their timm pretrained size.
    sizes = [native_size(f"efficientnet_b{i}") for i in range(6)]
    assert sizes == [224, 240, 260, 300, 380, 456]
    assert native_size("resnet50") == native_size("vit_small") == 224


@pytest.mark.parametrize("arch", FAMILIES)
def test_head_dropout_and_drop_path(arch):
    cfg = ModelConfig(arch=arch, drop_rate=0.3, drop_path_rate=0.1)
    model = create_model(cfg, 1, img_size=32)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 1)  # one logit for a binary task
    assert model.get_classifier().out_features == 1
    dropouts = [m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)]
    assert getattr(model, "drop_rate", None) == 0.3 or 0.3 in dropouts
    drop_paths = [m.drop_prob for m in model.modules() if type(m).__name__ == "DropPath"]
    if arch == "densenet121":  # no stochastic depth in DenseNet: built without it
        assert not drop_paths
    else:  # it grows with depth up to the rate (EfficientNet stops one block short)
        assert drop_paths and 0.09 <= max(drop_paths) <= 0.1 + 1e-6


def test_preprocessing_comes_from_the_model():
    vit = data_config(create_model(ModelConfig(arch="vit_tiny"), 3, img_size=32))
    resnet = data_config(create_model(ModelConfig(arch="resnet18"), 3))
    assert vit["mean"] == (0.5, 0.5, 0.5) and vit["std"] == (0.5, 0.5, 0.5)
    assert resnet["mean"] == pytest.approx((0.485, 0.456, 0.406))
    assert {"interpolation", "input_size", "crop_pct"} <= set(resnet)


@pytest.mark.parametrize(("arch", "size"), [(a, 64) for a in FAMILIES] + [("swin_tiny", 32)])
def test_cam_spec_drives_grad_cam_for_every_family(arch, size):
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    model = create_model(ModelConfig(arch=arch), 3, img_size=size).eval()
    spec = cam_spec(model)
    assert (spec.reshape_transform is None) == (arch not in ("vit_tiny", "swin_tiny"))
    captured = {}
    hook = spec.target_layers[0].register_forward_hook(lambda m, i, o: captured.update(out=o))
    model(torch.randn(2, 3, size, size))
    hook.remove()
    feature = captured["out"]
    if spec.reshape_transform is not None:
        feature = spec.reshape_transform(feature)
    assert feature.ndim == 4 and feature.shape[0] == 2  # (B, C, H, W) as Grad-CAM expects
    images = torch.randn(2, 3, size, size)
    with GradCAM(model, spec.target_layers, reshape_transform=spec.reshape_transform) as cam:
        maps = cam(images, targets=[ClassifierOutputTarget(1)] * 2)
    assert maps.shape == (2, size, size) and np.isfinite(maps).all()


@pytest.mark.parametrize(
    ("arch", "size", "layer", "grid"),
    [
        ("resnet18", 224, "layer4", 7),
        ("resnet18", 48, "layer2", 6),
        ("densenet121", 224, "features.norm5", 7),
        ("densenet121", 48, "features.denseblock2", 6),
        ("efficientnet_b0", 48, "blocks.2", 6),
        ("swin_tiny", 48, "layers.1.blocks.1.norm1", 6),
        ("vit_tiny", 48, "blocks.11.norm1", 3),
    ],
)
def test_small_inputs_are_explained_at_a_finer_stage(arch, size, layer, grid):
    """At 48 px DenseNet's last stage is 1x1 (a flat map) and ResNet's 2x2 (a corner): the spec
    moves to the deepest stage with at least 6x6 cells, and keeps the last one at 224 px."""
    model = create_model(ModelConfig(arch=arch), 3, img_size=size).eval()
    spec = cam_spec(model, size)
    assert (spec.layer, spec.grid) == (layer, grid)
    assert spec.target_layers[0] is model.get_submodule(layer)
    captured = {}
    hook = spec.target_layers[0].register_forward_hook(lambda m, i, o: captured.update(out=o))
    with torch.no_grad():
        model(torch.randn(1, 3, size, size))
    hook.remove()
    feature = captured["out"]
    feature = spec.reshape_transform(feature) if spec.reshape_transform else feature
    assert min(feature.shape[-2:]) >= grid  # the grid it reports is what the layer gives


def test_param_groups_split_backbone_and_head():
    model = create_model(ModelConfig(arch="resnet18"), 3)
    groups = {g["name"]: g for g in param_groups(model, 1e-3, 0.1, 0.05)}
    assert groups["head"]["lr"] == 1e-3 and groups["backbone"]["lr"] == pytest.approx(1e-4)
    assert groups["backbone_no_decay"]["weight_decay"] == 0.0
    assert groups["head"]["params"][0] is model.get_classifier().weight
    n = sum(p.numel() for g in groups.values() for p in g["params"])
    assert n == sum(p.numel() for p in model.parameters())


def test_freezing_leaves_only_the_head_trainable():
    model = create_model(ModelConfig(arch="vit_tiny"), 3, img_size=32)
    set_backbone_trainable(model, False)
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert trainable == {id(p) for p in model.get_classifier().parameters()}
    set_backbone_trainable(model, True)
    assert all(p.requires_grad for p in model.parameters())


def test_local_weights_file_loads(tmp_path):
    reference = create_model(ModelConfig(arch="resnet18"), 1000)
    torch.save(reference.state_dict(), tmp_path / "resnet18.pth")
    cfg = ModelConfig(arch="resnet18", pretrained=True, weights=str(tmp_path / "resnet18.pth"))
    local = create_model(cfg, 4)
    torch.testing.assert_close(local.conv1.weight, reference.conv1.weight)
    torch.testing.assert_close(local.layer4[1].bn2.running_var, reference.layer4[1].bn2.running_var)
    assert local.get_classifier().out_features == 4  # the ImageNet head was replaced
    with pytest.raises(ConfigError, match="no such file"):
        create_model(ModelConfig(arch="resnet18", pretrained=True, weights="/nowhere.pth"), 4)


def test_offline_pretrained_gives_clear_error():
    # huggingface_hub reads HF_HUB_OFFLINE when imported, so the attempt runs in a fresh process.
    code = (
        "from skinlib.models.architectures import create_model; from skinlib.config import ModelConfig; "
        "create_model(ModelConfig(arch='resnet18', pretrained=True), 3)"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert out.returncode != 0
    message = out.stderr.strip().splitlines()[-1]
    assert message.startswith("skinlib.errors.ConfigError: could not load pretrained weights")
    assert "model.weights=" in message and "model.pretrained=false" in message
