"""The metadata branch: age, sex and site encoded on the training split (data/metadata.py), fused
with the image features of any architecture (models/metadata.py), trained, stored and reloaded."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from skinlib.config import ModelConfig
from skinlib.data.metadata import ImageMetadata, MetadataEncoder
from skinlib.errors import ConfigError
from skinlib.models.architectures import (
    cam_spec,
    create_model,
    data_config,
    param_groups,
    set_backbone_trainable,
)
from skinlib.models.checkpoint import load_checkpoint, load_model
from skinlib.models.metadata import BoundMetadata, MetadataNet, logits
from skinlib.runs.folder import RunFolder

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py

TRAIN = pd.DataFrame(
    {
        "age": [30.0, 50.0, 70.0, np.nan],
        "sex": ["male", "female", "female", None],
        "site": ["back", "face", "Back ", "unknown"],
    }
)


def test_the_encoding_is_learned_on_the_training_rows_alone():
    enc = MetadataEncoder().fit(TRAIN)
    assert enc.age_mean_ == pytest.approx(50.0)  # the missing age plays no part
    assert enc.age_std_ == pytest.approx(np.std([30.0, 50.0, 70.0]))
    assert (enc.sexes_, enc.sites_) == (["female", "male"], ["back", "face"])
    names = enc.feature_names()
    assert names == ["age", "age_missing", "sex=female", "sex=male", "sex=unknown"] + [
        "site=back",
        "site=face",
        "site=unknown",
    ]
    # a validation row: its age is standardised with the training statistics, not its own
    val = pd.DataFrame({"age": [90.0, np.nan], "sex": ["female", "other"], "site": ["scalp", None]})
    x = enc.transform(val)
    assert x.shape == (2, enc.width) and x.dtype == np.float32
    z = (90.0 - 50.0) / np.std([30.0, 50.0, 70.0])
    np.testing.assert_allclose(x[0], [z, 0, 1, 0, 0, 0, 0, 1], rtol=1e-6)  # scalp: unseen
    np.testing.assert_allclose(x[1], [0, 1, 0, 0, 1, 0, 0, 1])  # all missing or unseen
    # training rows: the missing age and the "unknown" site fall in the unknown levels
    train = enc.transform(TRAIN)
    np.testing.assert_allclose(train[3], enc.missing_row())
    np.testing.assert_allclose(train[2][5:], [1, 0, 0])  # " Back " is "back"


def test_a_set_without_the_columns_is_missing_everywhere():
    enc = MetadataEncoder().fit(TRAIN)
    bare = pd.DataFrame({"image_id": ["a", "b"]})  # PH2-like: no metadata at all
    np.testing.assert_array_equal(enc.transform(bare), np.stack([enc.missing_row()] * 2))
    partial = pd.DataFrame({"age": [50.0], "sex": ["male"]})  # ISIC 2018: no site
    np.testing.assert_allclose(enc.transform(partial)[0], [0, 0, 0, 1, 0, 0, 0, 1])
    np.testing.assert_array_equal(
        enc.encode(ImageMetadata(age=50, sex="male")), enc.transform(partial)
    )
    np.testing.assert_array_equal(enc.encode(), enc.missing_row()[None])
    with pytest.raises(ConfigError, match="no age, sex or site"):
        MetadataEncoder().fit(pd.DataFrame({"age": [np.nan], "site": [None]}))


def test_the_encoder_state_survives_a_weights_only_checkpoint(tmp_path):
    enc = MetadataEncoder().fit(TRAIN)
    torch.save({"metadata": enc.state()}, tmp_path / "c.pt")
    state = torch.load(tmp_path / "c.pt", weights_only=True)["metadata"]
    again = MetadataEncoder.from_state(state)
    assert again.state() == enc.state()
    np.testing.assert_array_equal(again.transform(TRAIN), enc.transform(TRAIN))


@pytest.mark.parametrize("arch", ["resnet18", "vit_tiny", "efficientnet_b0"])
def test_the_fused_model_of_each_family(arch):
    enc = MetadataEncoder().fit(TRAIN)
    torch.manual_seed(0)
    model = create_model(ModelConfig(arch=arch, metadata=True), 7, 32, metadata=enc).eval()
    plain = create_model(ModelConfig(arch=arch), 7, 32)
    assert isinstance(model, MetadataNet)
    x = torch.randn(3, 3, 32, 32)
    meta = torch.from_numpy(enc.transform(TRAIN.head(3)))
    with torch.no_grad():
        out = model(x, meta)
        assert out.shape == (3, 7)
        # no metadata given: the "nothing recorded" encoding, stored with the weights
        torch.testing.assert_close(
            model(x), model(x, torch.from_numpy(enc.transform(TRAIN.tail(1))).expand(3, -1))
        )
        assert not torch.allclose(out, model(x))  # the metadata changes the answer
        fused = model.forward_head(model.forward_features(x), pre_logits=True, metadata=meta)
        torch.testing.assert_close(model.get_classifier()(fused), out)
    assert "missing" in model.state_dict()
    # the metadata MLP is new: it trains at the head's rate and while the backbone is frozen
    head = {
        id(p)
        for g in param_groups(model, 1e-3, 0.1, 0.05)
        if g["name"].startswith("head")
        for p in g["params"]
    }
    assert {id(p) for p in model.metadata_mlp.parameters()} <= head
    set_backbone_trainable(model, False)
    assert all(p.requires_grad for p in model.metadata_mlp.parameters())
    assert not any(p.requires_grad for p in model.backbone.parameters())
    # preprocessing and the explained layer are the backbone's, named as in the image model
    assert data_config(model) == data_config(plain)
    assert cam_spec(model, 32).layer == cam_spec(plain, 32).layer


def test_metadata_reaches_only_a_model_that_takes_it():
    enc = MetadataEncoder().fit(TRAIN)
    plain = create_model(ModelConfig(), 7, 32).eval()
    with pytest.raises(ValueError, match="without a metadata branch"):
        logits(plain, torch.randn(1, 3, 32, 32), torch.zeros(1, enc.width))
    with pytest.raises(ConfigError, match="metadata encoder"):
        create_model(ModelConfig(metadata=True), 7, 32)
    model = create_model(ModelConfig(metadata=True), 7, 32, metadata=enc).eval()
    one = torch.from_numpy(enc.transform(TRAIN.head(1)))
    bound = BoundMetadata(model, one)
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():  # one row of metadata serves any batch (ScoreCAM's masked copies)
        torch.testing.assert_close(bound(x), model(x, one.expand(4, -1)))
    with pytest.raises(ValueError, match="2 metadata rows bound for 4 images"):
        BoundMetadata(model, torch.zeros(2, enc.width))(x)


def test_a_metadata_run_stores_its_encoder_and_is_scored_as_it_trained(metadata_run):
    from skinlib.inference.scoring import predict_table

    folder = RunFolder(metadata_run)
    split = folder.split_table()
    assert {"age", "sex", "site"} <= set(split.columns)  # the run folder keeps its inputs...
    # ...beside the split file, which stays the assignment alone (its hash: the same split)
    assert folder.metadata_file.is_file()
    assert not {"age", "sex", "site"} & set(pd.read_csv(folder.split_file).columns)
    ckpt = load_checkpoint(folder.checkpoint("best"))
    train = split[split["split"] == "train"]
    assert ckpt["metadata"]["age_mean"] == pytest.approx(train["age"].mean())  # training only
    assert ckpt["metadata"]["age_mean"] != pytest.approx(split["age"].mean())
    assert ckpt["metadata"]["sites"] == sorted(train["site"].dropna().str.lower().unique())
    loaded = load_model(folder)
    assert loaded.metadata.state() == ckpt["metadata"]
    assert folder.meta()["metadata_inputs"] == loaded.metadata.feature_names()
    test = folder.split_rows("test")
    stored = folder.predictions("test")
    again = predict_table(loaded, test, progress=False)
    np.testing.assert_allclose(again.logits, stored.logits, atol=1e-5)
    blind = predict_table(loaded, test.drop(columns=["age", "sex", "site"]), progress=False)
    assert not np.allclose(blind.logits, stored.logits, atol=1e-4)  # the metadata was used
    tta = predict_table(loaded, test, tta=True, progress=False)
    assert tta.logits.shape == stored.logits.shape


def test_an_image_only_run_has_no_metadata_in_its_checkpoint(trained_run):
    assert "metadata" not in load_checkpoint(RunFolder(trained_run).checkpoint("best"))
    assert load_model(trained_run).metadata is None
    assert "age" not in RunFolder(trained_run).split_table()
    assert not RunFolder(trained_run).metadata_file.exists()


def test_unknown_detection_features_of_a_metadata_model(metadata_run):
    """08's features: the fused ones the head sees, every input with its metadata not recorded."""
    from skinlib.data.images import load_image
    from skinlib.evaluation.ood import logits_and_features
    from skinlib.models.metadata import EMBEDDING

    loaded = load_model(metadata_run)
    images = [load_image(p) for p in RunFolder(metadata_run).split_rows("val")["path"][:3]]
    out, feats = logits_and_features(loaded, images)
    assert feats.shape == (3, loaded.model.backbone.head_hidden_size + EMBEDDING)
    with torch.no_grad():
        blind = loaded.model(torch.stack([loaded.transform(im) for im in images]))
    np.testing.assert_allclose(out, blind.numpy(), atol=1e-5)
