"""Class activation maps for every family, scored against masks; galleries; faithfulness."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from skinlib.config import ModelConfig
from skinlib.data.transforms import centre_square
from skinlib.evaluation.predictions import Predictions
from skinlib.inference.xai import (
    compute_cams,
    faithfulness_scores,
    gallery_indices,
    gallery_selection,
    gallery_titles,
    load_mask,
    mask_as_seen,
    mask_scores,
    overlay,
    score_cams,
    summarise_cam_scores,
)
from skinlib.models.architectures import CamSpec, create_model

SIZE = 32


class Brightness(nn.Module):
    """A model whose evidence is known: class 1 = mean brightness, class 0 = its negative.

    Its feature map is the image's summed channels, so a faithful map lights up the bright part.
    """

    def __init__(self, outputs: int = 2):
        super().__init__()
        self.features = nn.Conv2d(3, 1, 1, bias=False)
        self.head = nn.Linear(1, outputs, bias=False)
        with torch.no_grad():
            self.features.weight.fill_(1.0)
            self.head.weight.copy_(torch.tensor([[-1.0], [1.0]][2 - outputs :]))

    def forward(self, x):
        return self.head(torch.relu(self.features(x)).mean((2, 3)))


def square_image(top: int, left: int, side: int = 8) -> tuple[torch.Tensor, np.ndarray]:
    """A dark image with one bright square, and the square's mask."""
    mask = np.zeros((SIZE, SIZE), bool)
    mask[top : top + side, left : left + side] = True
    image = torch.zeros(3, SIZE, SIZE)
    image[:, torch.from_numpy(mask)] = 1.0
    return image, mask


def toy_batch():
    (a, mask_a), (b, mask_b) = square_image(4, 4), square_image(20, 18)
    return torch.stack([a, b]), [mask_a, mask_b]


def test_mask_scores_known_maps():
    mask = np.zeros((10, 10), bool)
    mask[2:6, 2:6] = True  # 16 of 100 pixels
    inside = np.zeros((10, 10), np.float32)
    inside[3, 3] = 1.0
    outside = np.zeros((10, 10), np.float32)
    outside[8, 8] = 1.0
    # 1 on the 16 lesion pixels and 16/84 on the 84 others: half the energy inside
    half = np.where(mask, 1.0, 16 / 84).astype(np.float32)
    flat = np.full((10, 10), 0.5, np.float32)
    scores = mask_scores(np.stack([inside, outside, half, flat]), [mask] * 4)
    np.testing.assert_array_equal(scores["pointing"][:3], [1.0, 0.0, 1.0])
    assert np.isnan(scores["pointing"][3])  # a flat map points nowhere
    np.testing.assert_allclose(scores["energy_inside"], [1.0, 0.0, 0.5, 0.16], atol=1e-6)
    np.testing.assert_allclose(scores["mask_share"], 0.16)
    assert scores.mean()["energy_inside"] == pytest.approx((1 + 0 + 0.5 + 0.16) / 4)


def test_mask_is_resized_to_the_map(tmp_path):
    from PIL import Image

    mask = np.zeros((40, 40), np.uint8)
    mask[:20] = 255
    Image.fromarray(mask).save(tmp_path / "m.png")
    cam = np.zeros((10, 10), np.float32)
    cam[:5] = 1
    assert mask_scores(cam[None], [mask])["energy_inside"].item() == pytest.approx(1.0)
    loaded = load_mask(str(tmp_path / "m.png"), (10, 10))
    assert loaded.shape == (10, 10) and loaded[:5].all() and not loaded[5:].any()


def test_a_mask_lies_on_the_image_the_model_saw(tmp_path):
    """8 x 4 (wide) mask, lesion in columns 2-3: the centre 4 x 4 square keeps columns 2-5, so the
    lesion is the square's first two columns (a plain resize would squash it to columns 1)."""
    from PIL import Image

    mask = np.zeros((4, 8), np.uint8)
    mask[:, 2:4] = 255
    Image.fromarray(mask).save(tmp_path / "m.png")
    seen = mask_as_seen(str(tmp_path / "m.png"), 4)
    expected = np.zeros((4, 4), bool)
    expected[:, :2] = True
    np.testing.assert_array_equal(seen, expected)
    # the image drawn under a map: the same square; a 7 x 3 image at side 3 keeps columns 2-4
    pixels = np.arange(21, dtype=np.uint8).reshape(3, 7)
    square = np.asarray(centre_square(Image.fromarray(pixels), 3))
    np.testing.assert_array_equal(square, pixels[:, 2:5])


@pytest.mark.parametrize("method", ["gradcam", "gradcam++", "scorecam"])
def test_maps_of_a_known_model_point_at_the_evidence(method):
    model = Brightness()
    images, masks = toy_batch()
    cams = compute_cams(
        model, images, targets=[1, 1], method=method, spec=CamSpec([model.features], None)
    )
    assert cams.shape == (2, SIZE, SIZE) and cams.dtype == np.float32
    scores = mask_scores(cams, masks)
    assert scores["pointing"].tolist() == [1.0, 1.0]
    assert (scores["energy_inside"] > 0.9).all()  # the square is 1/16 of the image


def test_binary_model_and_default_targets():
    model = Brightness(outputs=1)
    images, masks = toy_batch()
    spec = CamSpec([model.features], None)
    cams = compute_cams(model, images, spec=spec)  # predicted: positive (bright) for both
    assert mask_scores(cams, masks)["pointing"].tolist() == [1.0, 1.0]
    assert compute_cams(model, images, targets=[0, 1], spec=spec).shape == (2, SIZE, SIZE)


def test_bad_targets_and_methods_raise():
    model = Brightness()
    images, _ = toy_batch()
    spec = CamSpec([model.features], None)
    with pytest.raises(ValueError, match="class indices"):
        compute_cams(model, images, targets=[1, 5], spec=spec)
    with pytest.raises(ValueError, match="unknown CAM method"):
        compute_cams(model, images, method="saliency", spec=spec)


def test_model_mode_and_inputs_are_left_as_they_were():
    model = Brightness().train()
    images, _ = toy_batch()
    before = images.clone()
    compute_cams(model, images, spec=CamSpec([model.features], None))
    assert model.training and torch.equal(images, before)


def test_faithfulness_prefers_the_true_map():
    model = Brightness()
    images, _ = toy_batch()
    cams = compute_cams(model, images, targets=[1, 1], spec=CamSpec([model.features], None))
    state = torch.get_rng_state()
    good = faithfulness_scores(model, images, cams, [1, 1], percentiles=[50])
    bad = faithfulness_scores(model, images, 1 - cams, [1, 1], percentiles=[50])
    assert good.shape == (2,) and (good > bad).all()
    assert torch.equal(torch.get_rng_state(), state)  # ROAD's noise drew from a forked RNG
    again = faithfulness_scores(model, images, cams, [1, 1], percentiles=[50])
    np.testing.assert_array_equal(good, again)
    # keeping only the map's pixels keeps more of the evidence than keeping the rest
    keep_map = faithfulness_scores(model, images, cams, [1, 1], metric="cam_mult")
    keep_rest = faithfulness_scores(model, images, 1 - cams, [1, 1], metric="cam_mult")
    assert (keep_map > keep_rest).all()


@pytest.mark.parametrize(
    "arch", ["resnet18", "efficientnet_b0", "densenet121", "vit_tiny", "swin_tiny"]
)
def test_gradcam_runs_for_each_family(arch):
    """Every family through skinlib.models.architectures.cam_spec (pretrained=False, 64 px): finite maps in
    [0, 1] that are not flat, and mask scores computed on them."""
    torch.manual_seed(0)
    model = create_model(ModelConfig(arch=arch, pretrained=False), 3, img_size=64).eval()
    cams = compute_cams(model, torch.randn(2, 3, 64, 64))
    assert cams.shape == (2, 64, 64) and np.isfinite(cams).all()
    assert cams.min() >= 0 and cams.max() <= 1 and (cams.max((1, 2)) > cams.min((1, 2))).all()
    yy, xx = np.mgrid[:64, :64]
    lesion = (yy - 32) ** 2 + (xx - 32) ** 2 < 20**2
    scores = mask_scores(cams, [lesion, lesion])
    assert scores["pointing"].isin([0.0, 1.0]).all() and scores["energy_inside"].between(0, 1).all()


def test_eigencam_on_a_real_model():
    model = create_model(ModelConfig(arch="resnet18"), 3).eval()
    cams = compute_cams(model, torch.randn(1, 3, 64, 64), method="eigencam")
    assert cams.shape == (1, 64, 64) and np.isfinite(cams).all()


def test_gallery_picks_the_right_kinds():
    labels = np.array([0, 0, 1, 1, 1])
    proba = np.array([[0.9, 0.1], [0.3, 0.7], [0.6, 0.4], [0.2, 0.8], [0.45, 0.55]])
    out = gallery_indices(labels, proba, cls=1)
    # TP ranked by p (0.8 before 0.55); FN: row 2; FP: row 1
    assert out == {"true positive": [3, 4], "false negative": [2], "false positive": [1]}
    preds = Predictions(
        ["i0", "i1", "i2", "i3", "i4"], list("abcde"), labels, np.log(proba), ["nv", "mel"]
    )
    table = gallery_selection(preds, "mel", k=1)
    assert table["image_id"].tolist() == ["i3", "i2", "i1"]
    assert table["probability"].tolist() == pytest.approx([0.8, 0.4, 0.7])
    with pytest.raises(ValueError, match="not among"):
        gallery_selection(preds, "bcc")


def test_maps_are_scored_against_masks_where_there_are_masks_else_by_road():
    model = Brightness()
    images, masks = toy_batch()
    cams = np.stack([m.astype(np.float32) for m in masks])  # maps exactly on the lesions
    with_masks = score_cams(model, images, cams, masks)
    assert with_masks["pointing"].tolist() == [1.0, 1.0]
    assert with_masks["energy_inside"].tolist() == [1.0, 1.0]
    without = score_cams(model, images, cams)
    assert list(without.columns) == ["road"] and len(without) == 2


def test_cam_summary_is_the_mean_per_model_with_its_layer():
    scores = pd.DataFrame(
        {
            "pointing": [1.0, 0.0, 1.0, 1.0, np.nan],
            "energy_inside": [0.5, 0.25, 0.75, 0.25, 0.5],
            "model": ["a", "a", "b", "b", "b"],
            "layer": ["layer4", "layer4", "stages.3", "stages.3", "stages.3"],
            "grid": [2, 2, 4, 4, 4],
        }
    )
    summary = summarise_cam_scores(scores)
    assert summary.index.tolist() == ["a", "b"]
    assert summary["layer"].tolist() == ["layer4", "stages.3"] and summary["grid"].tolist() == [
        2,
        4,
    ]
    assert summary["pointing"].tolist() == [0.5, 1.0]  # a map that points nowhere is left out
    assert summary["energy_inside"].tolist() == pytest.approx([0.375, 0.5])


def test_gallery_titles_name_kind_truth_and_probability():
    labels = np.array([0, 1])
    preds = Predictions(
        ["i0", "i1"], ["a", "b"], labels, np.log([[0.3, 0.7], [0.6, 0.4]]), ["nv", "mel"]
    )
    titles = gallery_titles(gallery_selection(preds, "mel", k=1), "mel")
    assert titles == ["false negative\nmel, p(mel)=0.40", "false positive\nnv, p(mel)=0.70"]


def test_overlay_shape_type_and_no_side_effect():
    img = np.random.default_rng(0).random((50, 40, 3))
    before = img.copy()
    out = overlay(img, np.random.default_rng(1).random((8, 8)).astype(np.float32))
    assert out.shape == (50, 40, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(img, before)
    as_uint8 = overlay((img * 255).astype(np.uint8), np.zeros((50, 40), np.float32))
    assert as_uint8.shape == (50, 40, 3)


@pytest.mark.parametrize("method", ["gradcam", "scorecam"])
def test_maps_of_a_metadata_model_bind_each_images_metadata(metadata_run, method):
    """pytorch-grad-cam calls model(images): each chunk is bound to its images' metadata, so the
    default target is the class the metadata model predicts with it (ScoreCAM: image by image)."""
    from pytorch_grad_cam import GradCAM, ScoreCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    from skinlib.data.images import load_image
    from skinlib.models.architectures import cam_spec
    from skinlib.models.checkpoint import load_model
    from skinlib.models.metadata import BoundMetadata
    from skinlib.runs.folder import RunFolder

    loaded = load_model(metadata_run)
    rows = RunFolder(metadata_run).split_rows("test").head(3)
    x = torch.stack([loaded.transform(load_image(p)) for p in rows["path"]])
    meta = loaded.encode(rows)
    cams = compute_cams(loaded.model, x, method=method, metadata=meta, batch_size=2)
    assert cams.shape == (3, *x.shape[-2:]) and np.isfinite(cams).all()
    spec = cam_spec(loaded.model, x.shape[-1])
    cls = {"gradcam": GradCAM, "scorecam": ScoreCAM}[method]
    for i in range(3):
        bound = BoundMetadata(loaded.model, meta[i : i + 1])
        with torch.no_grad():
            predicted = int(bound(x[i : i + 1]).argmax(1))
        with cls(model=bound, target_layers=spec.target_layers) as cam:
            expected = cam(input_tensor=x[i : i + 1], targets=[ClassifierOutputTarget(predicted)])
        np.testing.assert_allclose(cams[i], expected[0], atol=1e-5)
