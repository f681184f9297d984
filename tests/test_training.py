"""The training engine in one process: every family, the strategies in a run, schedules, two-stage
training, early stopping and the errors a user meets. (Resume: test_resume.py; DDP: test_ddp.py.)
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest
import timm
import torch
from conftest import FAMILIES
from train_helpers import make_synth, tiny_config

from skinlib.config import Config, TrainConfig, apply_overrides
from skinlib.data.images import load_image
from skinlib.data.prepare import prepare_table
from skinlib.errors import ConfigError, DataError, TrainingError
from skinlib.evaluation.predictions import Predictions
from skinlib.io import read_json
from skinlib.models.architectures import cam_spec, create_model
from skinlib.models.checkpoint import RESUME_ONLY, load_checkpoint, load_model
from skinlib.runs.folder import RunFolder
from skinlib.training import engine, train
from skinlib.training.schedule import build_scheduler

RUN_FILES = [
    "config.yaml",
    "meta.json",
    "metrics.csv",
    "split.csv",
    "predictions_val.csv",
    "predictions_test.csv",
    "checkpoints/best.pt",
    "checkpoints/last.pt",
]


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory):
    return make_synth(tmp_path_factory.mktemp("synth"))


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("SKINLIB_EXPERIMENTS", str(tmp_path / "exp"))
    monkeypatch.setenv("SKINLIB_CACHE", str(tmp_path / "cache"))
    return tmp_path


@pytest.mark.slow
@pytest.mark.parametrize("arch", FAMILIES)
def test_each_family_produces_a_complete_run(arch, synth_root, env):
    run = train(tiny_config(synth_root, **{"model.arch": arch}), progress=False)
    assert run == env / "exp" / "t" / arch
    for name in RUN_FILES:
        assert (run / name).is_file(), name
    assert any(p.name.startswith("events.out.tfevents") for p in (run / "tb").iterdir())
    metrics = pd.read_csv(run / "metrics.csv")
    assert metrics["epoch"].tolist() == [1, 2]
    assert {"lr", "train_loss", "val_loss", "val_macro_f1", "val_auc", "seconds"} <= set(metrics)
    assert metrics["val_balanced_accuracy"].between(0, 1).all()
    meta = read_json(run / "meta.json")
    assert meta["status"] == "complete" and meta["n_params"] > 0 and meta["seed"] == 0
    assert meta["split_sha256"] == hashlib.sha256((run / "split.csv").read_bytes()).hexdigest()
    assert meta["train_images_per_s"] > 0 and meta["eval_images_per_s"] > 0
    assert meta["versions"]["timm"] == timm.__version__ and meta["git"]["commit"]
    unreadable = {"train": 0, "val": 0, "test": 0}
    assert meta["skipped_images"] == {"missing": 0, "unreadable": unreadable}
    test = Predictions.load(run / "predictions_test.csv")
    assert test.logits.shape[1] == 7 and np.isfinite(test.logits).all()
    assert meta["classes"] == test.classes
    best, last = (load_checkpoint(run / "checkpoints" / f"{w}.pt") for w in ("best", "last"))
    assert not set(RESUME_ONLY) & set(best) and set(RESUME_ONLY) <= set(last)  # best: weights
    loaded = load_model(run)
    assert not loaded.model.training and loaded.classes == test.classes
    assert loaded.transform(load_image(_first_image(run))).shape == (3, 32, 32)
    spec = cam_spec(loaded.model)
    assert spec.target_layers and (spec.reshape_transform is None) == (
        arch not in ("vit_tiny", "swin_tiny")
    )


def _first_image(run) -> str:
    return pd.read_csv(run / "split.csv")["path"].iloc[0]


def colour_table(folder, n: int = 48) -> pd.DataFrame:
    """A common-schema table of noisy 32 px PNGs whose colour gives the class (red mel, blue nv),
    two thirds train, a sixth each val and test."""
    from PIL import Image

    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        label = ("mel", "nv")[i % 2]
        colour = (150, 60, 60) if label == "mel" else (60, 60, 150)
        pixels = np.clip(np.array(colour) + rng.normal(0, 25, (32, 32, 3)), 0, 255)
        path = folder / f"img{i}.png"
        Image.fromarray(pixels.astype(np.uint8)).save(path)
        split = ("train", "train", "train", "train", "val", "test")[(i // 2) % 6]
        rows.append(
            {"image_id": f"img{i}", "path": str(path), "label": label, "group": f"g{i}"}
            | {"age": np.nan, "sex": np.nan, "site": np.nan, "source": "folder", "split": split}
        )
    return pd.DataFrame(rows)


def test_a_table_passed_in_is_learned(env, tmp_path):
    changes = ["study=t", "data.image_size=32", "data.cache=false", "data.num_workers=0"]
    changes += ["train.epochs=3", "train.batch_size=8", "train.lr=0.003", "train.augment=none"]
    cfg = apply_overrides(Config(), [*changes, "train.warmup_epochs=0"])
    run = train(cfg, table=colour_table(tmp_path), progress=False)
    assert pd.read_csv(run / "metrics.csv")["val_balanced_accuracy"].iloc[-1] == 1.0
    test = Predictions.load(run / "predictions_test.csv")
    assert test.classes == ["mel", "nv"] and len(test.labels) == 8
    assert (test.logits.argmax(1) == test.labels).all()


def test_binary_run_with_strategies_and_ema(synth_root, env):
    changes = {
        "data.task": "binary",
        "data.positive": "[mel]",
        "data.cache": "false",
        "imbalance.loss": "focal",
        "imbalance.class_weights": "effective",
        "imbalance.sampler": "weighted",
        "train.selection_rate": 0.5,
        "train.ema": "true",
        "train.ema_decay": 0.9,
        "train.scheduler": "onecycle",
        "train.grad_clip": 1.0,
        "train.accum_steps": 2,
        "train.optimizer": "sgd",
    }
    run = train(tiny_config(synth_root, **changes), progress=False)
    preds = Predictions.load(run / "predictions_val.csv")
    assert preds.binary and preds.classes == ["other", "mel"]
    metrics = pd.read_csv(run / "metrics.csv")
    assert metrics["activation_rate"].between(0.3, 0.7).all()
    np.testing.assert_allclose(metrics["backward_saved"], 1 - metrics["activation_rate"])
    # The EMA weights of the best epoch, reloaded with the evaluation transform, give back the
    # logits the run saved.
    loaded = load_model(run)
    best = torch.load(run / "checkpoints/best.pt", weights_only=True)
    assert best["ema"] is not None
    rows = pd.read_csv(run / "split.csv").set_index("image_id").loc[preds.image_id]
    images = torch.stack([loaded.transform(load_image(p)) for p in rows["path"]])
    with torch.no_grad():
        logits = loaded.model(images).numpy()
    np.testing.assert_allclose(logits, preds.logits, atol=1e-5)


def test_mixup_cutmix_strong_augment_progressive_resize(synth_root, env):
    changes = {
        "train.mixup": 0.2,
        "train.cutmix": 1.0,
        "train.epochs": 1,
        "train.augment": "strong",
        "imbalance.label_smoothing": 0.1,
        "train.progressive_resize": "true",
        "train.scheduler": "plateau",
        "model.arch": "vit_tiny",
    }
    run = train(tiny_config(synth_root, **changes), progress=False)
    assert np.isfinite(pd.read_csv(run / "metrics.csv")["train_loss"]).all()


def test_two_stage_training_trains_the_head_alone_first(synth_root, env):
    cfg = tiny_config(synth_root, **{"train.freeze_epochs": 1, "train.epochs": 1})
    run = train(cfg, progress=False)
    engine.seed_everything(cfg.train.seed)  # the engine builds the model right after seeding
    initial = create_model(cfg.model, 7, 32).state_dict()
    trained = torch.load(run / "checkpoints/last.pt", weights_only=True)["model"]
    torch.testing.assert_close(trained["conv1.weight"], initial["conv1.weight"], rtol=0, atol=0)
    torch.testing.assert_close(trained["layer4.1.conv2.weight"], initial["layer4.1.conv2.weight"])
    assert not torch.equal(trained["fc.weight"], initial["fc.weight"])


def test_early_stopping_on_a_flat_metric(synth_root, env):
    # lr 0 and no BatchNorm: the validation loss cannot improve after the first epoch
    changes = {
        "model.arch": "vit_tiny",
        "train.lr": 0.0,
        "train.epochs": 5,
        "train.patience": 1,
        "train.monitor": "loss",
    }
    run = train(tiny_config(synth_root, **changes), progress=False)
    metrics = pd.read_csv(run / "metrics.csv")
    assert len(metrics) == 2 and metrics["val_loss"].nunique() == 1
    meta = read_json(run / "meta.json")
    assert meta["best_epoch"] == 1 and meta["epochs_run"] == 2
    # the shares the split achieved, in the order train, val, test
    split = pd.read_csv(run / "split.csv")["split"].value_counts(normalize=True)
    assert list(meta["split_fractions"]) == ["train", "val", "test"]
    assert meta["split_fractions"] == pytest.approx(split.to_dict())


def test_transforms_normalise_with_the_model_statistics():
    from PIL import Image

    from skinlib.data.transforms import build_transforms

    data_cfg = {"mean": (0.2, 0.4, 0.6), "std": (0.1, 0.2, 0.3)}
    image = Image.new("RGB", (50, 40), (51, 102, 153))  # the mean, in 0-255
    evaluate = build_transforms(data_cfg, train=False, size=32)
    out = evaluate(image)
    assert out.shape == (3, 32, 32) and out.abs().max() < 0.02  # (x - mean) / std = 0
    torch.testing.assert_close(evaluate(image), out)  # evaluation is deterministic
    gradient = Image.fromarray(
        np.tile(np.arange(40, dtype=np.uint8) * 6, (40, 1)).repeat(3, 1).reshape(40, 40, 3)
    )
    torch.manual_seed(0)
    strong = build_transforms(data_cfg, train=True, augment="strong", size=32)
    a, b = strong(gradient), strong(gradient)
    assert a.shape == (3, 32, 32) and not torch.equal(a, b)
    with pytest.raises(ConfigError, match="train.augment"):
        build_transforms(data_cfg, train=True, augment="heavy")


@pytest.mark.parametrize("augment", ["basic", "strong"])
def test_training_augmentation_runs_on_the_pil_image(augment):
    """The random ops see the PIL image (cheaper per sample in the loader workers) and only their
    64 px result becomes a tensor."""
    from PIL import Image
    from torchvision.transforms import v2 as T

    from skinlib.data.transforms import build_transforms

    data_cfg = {"mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25), "interpolation": "bicubic"}
    transform = build_transforms(data_cfg, train=True, augment=augment, size=64)
    steps = [type(t) for t in transform.transforms]
    first_tensor = steps.index(T.ToImage)
    assert first_tensor >= 3 and T.RandomResizedCrop in steps[:first_tensor]
    assert T.ColorJitter not in steps  # colour runs on the batch: BatchColorJitter
    out = transform(Image.new("RGB", (98, 74), (128, 64, 32)))
    assert out.shape == (3, 64, 64) and out.dtype == torch.float32


def test_batch_colour_jitter_matches_torchvision_step_by_step():
    """Brightness, contrast and saturation at a fixed factor are torchvision's adjust_* on every
    image of the batch; hue rotates the YIQ chroma plane by the factor's turns, luma unchanged."""
    from torchvision.transforms.v2 import functional as F

    from skinlib.data.transforms import RGB_TO_YIQ, BatchColorJitter, build_batch_augment

    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    torch.manual_seed(0)
    raw = torch.rand(4, 3, 16, 16) * 0.8 + 0.1
    normalised = (raw - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    cases = {
        "brightness": (1.3, lambda x: F.adjust_brightness(x, 1.3)),
        "contrast": (0.7, lambda x: F.adjust_contrast(x, 0.7)),
        "saturation": (1.4, lambda x: F.adjust_saturation(x, 1.4)),
    }
    for step, (factor, reference) in cases.items():
        jitter = BatchColorJitter(0, 0, 0, 0, mean, std)
        setattr(jitter, step, (factor, factor))
        out = jitter(normalised) * torch.tensor(std).view(1, 3, 1, 1) + torch.tensor(mean).view(
            1, 3, 1, 1
        )
        expected = torch.stack([reference(x) for x in raw])
        torch.testing.assert_close(out, expected, atol=1e-4, rtol=0)
    grey = torch.full((1, 3, 1, 1), 0.5)
    yiq = torch.tensor(RGB_TO_YIQ)
    colour = grey + (torch.linalg.inv(yiq) @ torch.tensor([0.0, 0.1, 0.0])).view(1, 3, 1, 1)
    jitter = BatchColorJitter(0, 0, 0, 0, (0, 0, 0), (1, 1, 1))
    jitter.hue = (1 / 12, 1 / 12)  # 30 degrees
    y, i, q = (yiq @ jitter(colour).flatten()).tolist()
    assert y == pytest.approx(0.5, abs=1e-5)  # luma kept
    assert np.degrees(np.arctan2(q, i)) == pytest.approx(-30, abs=0.01)  # HSV's direction
    identity = BatchColorJitter(0, 0, 0, 0, mean, std)
    torch.testing.assert_close(identity(normalised), normalised, atol=1e-5, rtol=0)
    layout = identity(normalised.contiguous(memory_format=torch.channels_last))
    assert layout.is_contiguous(memory_format=torch.channels_last)
    same = normalised[:1].repeat(8, 1, 1, 1)
    jittered = build_batch_augment({"mean": mean, "std": std}, "basic")(same)
    assert len({round(float(x.mean()), 5) for x in jittered}) == 8  # a draw per image
    assert build_batch_augment({"mean": mean, "std": std}, "none") is None


def test_epoch_metrics_against_sklearn():
    from sklearn.metrics import log_loss, roc_auc_score

    from skinlib.training.monitor import epoch_metrics

    rng = np.random.default_rng(0)
    labels = np.array([0, 1, 2] * 10)
    logits = rng.normal(size=(30, 3)) + 2 * np.eye(3)[labels]
    preds = Predictions(
        np.arange(30).astype(str), np.arange(30).astype(str), labels, logits, ["a", "b", "c"]
    )
    out = epoch_metrics(preds)
    proba = preds.probabilities()
    assert out["loss"] == pytest.approx(log_loss(labels, proba))
    assert out["auc"] == pytest.approx(roc_auc_score(labels, proba, multi_class="ovr"))
    assert out["balanced_accuracy"] == pytest.approx(np.mean(proba.argmax(1) == labels))
    binary = Predictions(preds.image_id, preds.group, labels % 2, logits[:, :1], ["x", "y"])
    p1 = binary.probabilities()[:, 1]
    assert epoch_metrics(binary)["loss"] == pytest.approx(log_loss(labels % 2, p1))


def _lrs(name: str, steps_per_epoch: int = 10, epochs: int = 6, warmup: float = 1.0):
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([{"params": [param], "lr": 0.1}], lr=0.1)
    cfg = TrainConfig(scheduler=name, epochs=epochs, warmup_epochs=warmup, lr=0.1)
    scheduler, per_step = build_scheduler(optimizer, cfg, steps_per_epoch)
    lrs = []
    for _ in range(epochs * steps_per_epoch):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        if per_step:
            scheduler.step()
    return np.array(lrs), per_step


def test_schedules():
    cosine, per_step = _lrs("cosine")
    assert per_step
    np.testing.assert_allclose(cosine[:10], 0.1 * np.arange(1, 11) / 10)  # linear warmup
    assert (np.diff(cosine[10:]) <= 0).all() and cosine[-1] < 0.005  # then decays
    restarts, _ = _lrs("cosine_restarts")
    assert (np.diff(restarts[10:]) > 0.05).sum() == 2  # two jumps back to the top: three cycles
    onecycle, _ = _lrs("onecycle")
    assert onecycle.argmax() == pytest.approx(10, abs=1) and onecycle[0] < 0.01
    assert not _lrs("plateau")[1]  # stepped per epoch on the validation loss
    with pytest.raises(ConfigError, match="train.scheduler"):
        _lrs("linear")


def test_clear_errors(synth_root, env, monkeypatch):
    with pytest.raises(TrainingError, match=r"unknown architecture 'resnet_18'; close names"):
        train(tiny_config(synth_root, **{"model.arch": "resnet_18"}), progress=False)
    with pytest.raises(ConfigError, match="train.optimizer"):
        train(tiny_config(synth_root, **{"train.optimizer": "adam"}), progress=False)
    with pytest.raises(
        TrainingError,
        match=r"loss became nan at epoch 1, step \d+; try a lower train.lr, train.grad_clip",
    ):
        train(tiny_config(synth_root, **{"train.lr": float("inf")}), progress=False)

    def out_of_memory(self, epoch):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(engine.Trainer, "train_epoch", out_of_memory)
    with pytest.raises(TrainingError, match="lower train.batch_size .*train.accum_steps"):
        train(tiny_config(synth_root), progress=False)


def test_prepare_table_uses_saved_split(synth_root, env, tmp_path):
    cfg = tiny_config(synth_root)
    table = prepare_table(cfg, progress=False)
    from skinlib.data.splits import save_split

    flipped = table.copy()
    flipped["split"] = flipped["split"].replace({"val": "test", "test": "val"})
    save_split(flipped, tmp_path / "s.csv")
    again = prepare_table(
        apply_overrides(cfg, [f"data.split_file={tmp_path / 's.csv'}"]), progress=False
    )
    assert (again["split"].to_numpy() == flipped["split"].to_numpy()).all()


def test_a_split_file_gets_a_calibration_split_carved_from_its_training_rows(
    synth_root, env, tmp_path
):
    """A split file without a calibration split gets one from its training rows only (val and
    test kept); one with a calibration split is read as it is."""
    from skinlib.data.splits import save_split

    cfg = tiny_config(synth_root)
    table = prepare_table(cfg, progress=False)
    save_split(table, tmp_path / "s.csv")
    split_file = f"data.split_file={tmp_path / 's.csv'}"
    carved = prepare_table(
        apply_overrides(cfg, [split_file, "data.calibration_fraction=0.15"]), progress=False
    )
    moved = carved["split"].to_numpy() != table["split"].to_numpy()
    assert moved.any() and (carved.loc[moved, "split"] == "calibration").all()
    assert (table.loc[moved, "split"] == "train").all()
    save_split(carved, tmp_path / "c.csv")
    read = prepare_table(apply_overrides(cfg, [f"data.split_file={tmp_path / 'c.csv'}"]))
    assert (read["split"].to_numpy() == carved["split"].to_numpy()).all()


def _bn_buffers(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {
        name: buf.clone()
        for name, buf in model.named_buffers()
        if name.rsplit(".", 1)[-1] in ("running_mean", "running_var", "num_batches_tracked")
    }


def test_selection_scoring_pass_leaves_batchnorm_statistics_alone(env, tmp_path):
    """After one selection step the running statistics are those of one plain forward of the
    chosen samples: the scoring forward of the whole batch does not move them."""
    import copy

    changes = ["study=t", "data.image_size=32", "data.cache=false", "data.num_workers=0"]
    changes += ["train.batch_size=16", "train.selection_rate=0.25", "train.augment=none"]
    trainer = engine.Trainer(
        apply_overrides(Config(), changes), colour_table(tmp_path), progress=False
    )
    images, labels = next(iter(trainer.train_loader))
    images, targets = trainer._to_device(images, labels)
    reference = copy.deepcopy(trainer.model)
    chosen = []
    select = trainer.selector.select
    trainer.selector.select = lambda scores: chosen.append(select(scores)) or chosen[-1]
    trainer.net.train()
    trainer._step_loss(images, targets)
    assert 2 <= len(chosen[0]) < len(images)
    reference.train()
    with torch.no_grad():
        reference(images[chosen[0]])
    after, expected = _bn_buffers(trainer.model), _bn_buffers(reference)
    assert after and after.keys() == expected.keys()
    for name in expected:
        torch.testing.assert_close(after[name], expected[name], msg=name)


def test_mixup_smooths_labels_only_as_configured(synth_root, env):
    """timm's Mixup smooths by 0.1 unless told; the loss applies imbalance.label_smoothing once."""
    from skinlib.training.imbalance import soft_targets

    def mixed_targets(smoothing: float):
        changes = {"data.cache": "false", "train.mixup": 0.4}
        cfg = tiny_config(synth_root, **changes, **{"imbalance.label_smoothing": smoothing})
        trainer = engine.Trainer(cfg, prepare_table(cfg, progress=False), progress=False)
        assert trainer.train_loader.drop_last  # every batch even, so every batch is mixed
        images, labels = next(iter(trainer.train_loader))
        return trainer, trainer._to_device(images, labels)[1]

    _, targets = mixed_targets(0.0)
    assert targets.shape == (16, 7)
    torch.testing.assert_close(targets.sum(1), torch.ones(16))
    assert ((targets > 0).sum(1) <= 2).all()  # two labels mixed, nothing on the other five
    trainer, targets = mixed_targets(0.2)
    assert ((targets > 0).sum(1) <= 2).all()  # mixup adds no smoothing of its own...
    logits = torch.randn(16, 7)
    expected = -(soft_targets(targets, 7, 0.2) * logits.log_softmax(1)).sum(1)
    torch.testing.assert_close(trainer.loss_fn(logits, targets), expected)  # ...the loss does


def test_mixup_refuses_an_odd_batch_per_process(synth_root, env):
    changes = {"data.cache": "false", "train.cutmix": 1.0, "train.batch_size": 7}
    with pytest.raises(ConfigError, match=r"batch_size=7 gives 7 images .*use train.batch_size=8"):
        train(tiny_config(synth_root, **changes), progress=False)


def test_unreadable_images_are_dropped_from_evaluation_not_substituted(env, tmp_path, caplog):
    """data.skip_bad: a corrupt validation or test image is left out of the predictions (a
    substitute would be scored against its row's label), counted in meta.json and logged."""
    import logging

    table = colour_table(tmp_path)
    bad = {s: table.loc[table["split"] == s, "image_id"].iloc[0] for s in ("train", "val", "test")}
    for image_id in bad.values():
        (tmp_path / f"{image_id}.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    changes = ["study=t", "data.image_size=32", "data.num_workers=0", "data.skip_bad=true"]
    cfg = apply_overrides(Config(), [*changes, "train.epochs=1", "train.batch_size=8"])
    with caplog.at_level(logging.WARNING):
        run = train(cfg, table=table, progress=False)
    for split in ("val", "test"):
        preds = Predictions.load(run / f"predictions_{split}.csv")
        assert bad[split] not in set(preds.image_id) and len(preds.image_id) == 7
        truth = table.set_index("image_id").loc[preds.image_id, "label"]
        assert [preds.classes[i] for i in preds.labels] == truth.tolist()
        assert f"1 unreadable {split} images left out of evaluation" in caplog.text
    meta = read_json(run / "meta.json")
    assert meta["skipped_images"] == {"missing": 0, "unreadable": {"train": 1, "val": 1, "test": 1}}


def test_dataset_drops_or_substitutes_unreadable_images(tmp_path):
    from torch.utils.data import DataLoader

    from skinlib.data.dataset import ImageDataset, collate_readable

    table = colour_table(tmp_path, n=6)
    (tmp_path / "img2.png").write_bytes(b"not an image")
    to_tensor = lambda image: torch.zeros(1)  # noqa: E731
    kept = ImageDataset(table, ["mel", "nv"], to_tensor, on_bad="drop")
    images, labels, readable = next(iter(DataLoader(kept, 6, collate_fn=collate_readable)))
    assert readable.tolist() == [True, True, False, True, True, True]
    assert labels.tolist() == [0, 1, 1, 0, 1] and len(images) == 5
    assert kept.skipped == {str(tmp_path / "img2.png")}
    substitute = ImageDataset(table, ["mel", "nv"], to_tensor, on_bad="substitute")
    assert substitute[2][1] == 1  # img3's label with img3's image
    with pytest.raises(DataError, match="img2.png: not an image file"):
        ImageDataset(table, ["mel", "nv"], to_tensor)[2]


def test_a_calibration_split_is_predicted_and_recorded(synth_root, env):
    cfg = tiny_config(synth_root, **{"data.calibration_fraction": 0.15, "train.epochs": 1})
    run = train(cfg, progress=False)
    split = pd.read_csv(run / "split.csv", dtype=str)
    cal = split[split["split"] == "calibration"]
    assert len(cal) == pytest.approx(0.15 * len(split), abs=3)
    assert not set(cal["group"]) & set(split.loc[split["split"] != "calibration", "group"])
    # validation and test are the images a run without a calibration split gets
    without = prepare_table(tiny_config(synth_root))
    for name in ("val", "test"):
        assert set(split.loc[split["split"] == name, "image_id"]) == set(
            without.loc[without["split"] == name, "image_id"]
        )
    preds = Predictions.load(run / "predictions_calibration.csv")
    assert sorted(preds.image_id) == sorted(cal["image_id"])
    meta = read_json(run / "meta.json")
    assert list(meta["split_fractions"]) == ["train", "val", "test", "calibration"]
    assert meta["skipped_images"]["unreadable"]["calibration"] == 0
    assert RunFolder(run).posthoc_split() == "calibration"
