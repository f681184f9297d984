"""The training loop. It never names an architecture: the model factory, the loss builder and the
data layer hand it everything it needs, so one loop trains every model of the study.
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader, Subset

from skinlib import paths
from skinlib.config import Config, config_from_dict, save_config
from skinlib.data.dataset import ImageDataset
from skinlib.data.splits import file_hash, save_split
from skinlib.data.transforms import build_transforms
from skinlib.errors import ConfigError, TrainingError
from skinlib.imbalance import build_loss, sample_weights
from skinlib.io import atomic_write, read_json, write_json
from skinlib.models import (
    count_parameters,
    create_model,
    data_config,
    native_size,
    set_backbone_trainable,
)
from skinlib.predictions import Predictions
from skinlib.training import distributed as dist
from skinlib.training.checkpoint import load_checkpoint, save_checkpoint
from skinlib.training.runinfo import git_commit, hardware, resources, versions
from skinlib.training.schedule import build_optimizer, build_scheduler
from skinlib.training.selection import SelectionController
from skinlib.training.tables import prepare_table, table_classes

log = logging.getLogger(__name__)
MONITORS = {"balanced_accuracy": 1, "macro_f1": 1, "auc": 1, "loss": -1}  # sign: higher is better


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    if name == "auto":
        return torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"train.device={name} but no CUDA GPU is visible; use train.device=cpu")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 (timm's Mixup draws from the global RNG)
    torch.manual_seed(seed)


def amp_dtype(mode: str, device: torch.device) -> torch.dtype | None:
    """Mixed precision on CUDA only: bf16 where supported, else fp16 (with a grad scaler)."""
    if device.type != "cuda" or mode == "off":
        return None
    if mode == "bf16" or (mode == "auto" and torch.cuda.is_bf16_supported()):
        return torch.bfloat16
    return torch.float16


def epoch_metrics(labels: np.ndarray, proba: np.ndarray, loss: float) -> dict:
    """Validation metrics used for monitoring (the full report lives in skinlib.metrics)."""
    from sklearn.metrics import balanced_accuracy_score, f1_score, roc_auc_score

    pred = proba.argmax(1)
    out = {
        "loss": loss,
        "balanced_accuracy": balanced_accuracy_score(labels, pred),
        "macro_f1": f1_score(labels, pred, average="macro", zero_division=0),
    }
    try:
        present = np.unique(labels)
        if proba.shape[1] == 2:
            out["auc"] = roc_auc_score(labels, proba[:, 1])
        else:
            out["auc"] = (
                roc_auc_score(
                    labels,
                    proba[:, present] / proba[:, present].sum(1, keepdims=True),
                    multi_class="ovr",
                    labels=present,
                )
                if len(present) > 2
                else math.nan
            )
    except ValueError:
        out["auc"] = math.nan
    return out


@dataclass
class RunState:
    """Everything that changes during training and must survive a restart."""

    epoch: int = -1  # last completed epoch
    best_score: float = -math.inf
    best_epoch: int = -1
    stale: int = 0  # epochs without improvement (early stopping)
    history: list[dict] = field(default_factory=list)
    train_seconds: float = 0.0
    train_images: int = 0


class Trainer:
    """Holds the pieces of one run; :func:`train` is the entry point."""

    def __init__(self, cfg: Config, table: pd.DataFrame, progress: bool = True):
        self.cfg, self.progress = cfg, progress
        self.rank, self.world, local = dist.setup()
        self.device = resolve_device(cfg.train.device, local)
        self.binary = cfg.data.task == "binary"
        self.classes = table_classes(table, cfg)
        self.run_dir = paths.run_dir(cfg.study, cfg.run_name)
        self.size = (
            native_size(cfg.model.arch) if cfg.model.native_resolution else cfg.data.image_size
        )
        seed_everything(cfg.train.seed)
        if cfg.train.deterministic and self.device.type == "cuda":
            # CPU kernels are already deterministic; forcing the flag there slows attention ~5x.
            torch.use_deterministic_algorithms(True, warn_only=True)
            torch.backends.cudnn.benchmark = False
        self.model = create_model(cfg.model, 1 if self.binary else len(self.classes), self.size)
        self.data_cfg = data_config(self.model)
        self.table = self._cached(table)
        self._build_data()
        self.model.to(self.device)
        if cfg.train.channels_last:
            self.model.to(memory_format=torch.channels_last)
        counts = np.bincount(self.train_labels, minlength=len(self.classes))
        self.loss_fn = build_loss(cfg.imbalance, counts, self.binary).to(self.device)
        self.optimizer = build_optimizer(self.model, cfg.train)
        batches = len(self.train_loader)
        if cfg.train.max_steps_per_epoch:
            batches = min(batches, cfg.train.max_steps_per_epoch)
        steps = max(1, math.ceil(batches / cfg.train.accum_steps))
        self.scheduler, self.per_step = build_scheduler(self.optimizer, cfg.train, steps)
        self.dtype = amp_dtype(cfg.train.amp, self.device)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.dtype == torch.float16)
        self.ema = self._ema()
        self.selector = (
            SelectionController(cfg.train.selection_rate) if cfg.train.selection_rate < 1 else None
        )
        self.mixup = self._mixup()
        self.net = self._wrap(self.model)
        self.state = RunState()

    # --- setup -------------------------------------------------------------------------------

    def _cached(self, table: pd.DataFrame) -> pd.DataFrame:
        if not self.cfg.data.cache:
            return table
        from skinlib.data.cache import build_cache

        crop = float(self.data_cfg.get("crop_pct", 0.875))
        size = int(math.ceil(self.size / crop))
        if dist.is_main():
            build_cache(table, size, progress=self.progress)
        dist.barrier()
        return build_cache(table, size, progress=False)

    def _dataset(self, rows: pd.DataFrame, train: bool, size: int | None = None) -> ImageDataset:
        augment = self.cfg.train.augment if train else "none"
        transform = build_transforms(self.data_cfg, train, augment, size or self.size)
        return ImageDataset(rows, self.classes, transform, skip_bad=self.cfg.data.skip_bad)

    def _build_data(self) -> None:
        split = self.table["split"]
        self.rows = {
            s: self.table[split == s].reset_index(drop=True) for s in ("train", "val", "test")
        }
        if self.rows["train"].empty or self.rows["val"].empty:
            raise ConfigError(
                "the split has no training or no validation images; check data.*_frac"
            )
        self.train_set = self._dataset(self.rows["train"], train=True)
        self.train_labels = np.array(self.train_set.labels)
        weights = None
        if self.cfg.imbalance.sampler == "weighted":
            weights = sample_weights(self.train_labels, len(self.classes))
        elif self.cfg.imbalance.sampler != "none":
            raise ConfigError(
                f"imbalance.sampler={self.cfg.imbalance.sampler!r}; choose none or weighted"
            )
        self.sampler = dist.EpochSampler(len(self.train_set), self.cfg.train.seed, weights)
        self.train_loader = self._loader(self.train_set, self.sampler, drop_last=True)

    def _loader(self, dataset, sampler=None, drop_last=False) -> DataLoader:
        per_rank = max(1, self.cfg.train.batch_size // self.world)
        workers = self.cfg.data.num_workers
        return DataLoader(
            dataset,
            batch_size=per_rank,
            sampler=sampler,
            drop_last=drop_last,
            num_workers=workers,
            pin_memory=self.device.type == "cuda",
            persistent_workers=False,
            generator=torch.Generator().manual_seed(self.cfg.train.seed),
        )

    def _ema(self):
        if not self.cfg.train.ema:
            return None
        from timm.utils import ModelEmaV3

        return ModelEmaV3(self.model, decay=self.cfg.train.ema_decay)

    def _mixup(self):
        t = self.cfg.train
        if not (t.mixup or t.cutmix):
            return None
        if self.binary:
            raise ConfigError(
                "mixup/cutmix are for multi-class tasks; set train.mixup=0 train.cutmix=0"
            )
        from timm.data import Mixup

        return Mixup(mixup_alpha=t.mixup, cutmix_alpha=t.cutmix, num_classes=len(self.classes))

    def _wrap(self, model: nn.Module) -> nn.Module:
        net = model
        if self.cfg.train.compile:
            net = torch.compile(net)
        if self.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            net = nn.parallel.DistributedDataParallel(
                net, device_ids=ids, find_unused_parameters=self.cfg.train.freeze_epochs > 0
            )
        return net

    # --- one epoch ---------------------------------------------------------------------------

    def _autocast(self):
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def _to_device(self, images: torch.Tensor, labels: torch.Tensor):
        fmt = torch.channels_last if self.cfg.train.channels_last else torch.contiguous_format
        images = images.to(self.device, non_blocking=True, memory_format=fmt)
        labels = labels.to(self.device, non_blocking=True)
        if self.mixup is not None and len(images) % 2 == 0:
            images, labels = self.mixup(images, labels)
        elif self.binary:
            labels = labels.float()
        return images, labels

    def _losses(self, images, targets) -> torch.Tensor:
        with self._autocast():
            logits = self.net(images)
        return self.loss_fn(logits.float(), targets)

    def _step_loss(self, images, targets) -> tuple[torch.Tensor, int]:
        """Loss to back-propagate and how many samples it covers (selection may drop some)."""
        if self.selector is None:
            return self._losses(images, targets).mean(), len(images)
        with torch.no_grad():
            scores = self._losses(images, targets)
        chosen = self.selector.select(scores)
        return self._losses(images[chosen], targets[chosen]).mean(), len(chosen)

    def _set_lr_epoch(self, epoch: int) -> None:
        freeze = epoch < self.cfg.train.freeze_epochs
        set_backbone_trainable(self.model, not freeze)
        if self.cfg.train.progressive_resize:
            frac = min(1.0, 0.5 + epoch / max(1, self.cfg.train.epochs))
            size = max(32, int(self.size * frac) // 8 * 8)
            self.train_set.transform = build_transforms(
                self.data_cfg, True, self.cfg.train.augment, size
            )

    def train_epoch(self, epoch: int) -> dict:
        from tqdm.auto import tqdm

        cfg = self.cfg.train
        seed_everything(cfg.seed * 1000 + epoch)  # per-epoch seed: a resumed epoch draws alike
        self.sampler.set_epoch(epoch)
        self._set_lr_epoch(epoch)
        self.net.train()
        total, count, used, start = 0.0, 0, 0, time.perf_counter()
        steps = len(self.train_loader)
        if cfg.max_steps_per_epoch:
            steps = min(steps, cfg.max_steps_per_epoch)
        bar = tqdm(
            total=steps,
            desc=f"epoch {epoch + 1}/{cfg.epochs}",
            leave=False,
            disable=not (self.progress and dist.is_main()),
        )
        self.optimizer.zero_grad(set_to_none=True)
        for step, (images, labels) in enumerate(self.train_loader):
            if step >= steps:
                break
            images, targets = self._to_device(images, labels)
            loss, n_used = self._step_loss(images, targets)
            if not torch.isfinite(loss):
                raise TrainingError(
                    f"loss became {loss.item()} at epoch {epoch + 1}, step {step + 1}; try a lower "
                    "train.lr, train.grad_clip=1.0, or train.amp=off"
                )
            self.scaler.scale(loss / cfg.accum_steps).backward()
            if (step + 1) % cfg.accum_steps == 0 or step + 1 == steps:
                self._optimizer_step()
            total += loss.item() * len(images)
            count += len(images)
            used += n_used
            bar.update()
            bar.set_postfix(loss=f"{total / count:.4f}")
        bar.close()
        seconds = time.perf_counter() - start
        self.state.train_seconds += seconds
        self.state.train_images += count * self.world
        out = {
            "train_loss": dist.all_reduce_mean(total / max(count, 1)),
            "seconds": seconds,
            "images_per_s": count * self.world / max(seconds, 1e-9),
        }
        if self.selector is not None:
            rate = self.selector.epoch_rate()
            out.update(activation_rate=rate, backward_saved=1 - rate)
        return out

    def _optimizer_step(self) -> None:
        if self.cfg.train.grad_clip:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.train.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        if self.per_step:
            self.scheduler.step()
        if self.ema is not None:
            self.ema.update(self.model)

    # --- evaluation --------------------------------------------------------------------------

    def eval_model(self) -> nn.Module:
        return self.ema.module if self.ema is not None else self.model

    @torch.no_grad()
    def predict(self, split: str, model: nn.Module | None = None) -> Predictions:
        """Logits for every image of a split; ranks share the work and join the results."""
        model = model or self.eval_model()
        rows = self.rows[split]
        dataset = self._dataset(rows, train=False)
        mine = dist.shard(len(dataset))
        loader = self._loader(Subset(dataset, mine.tolist()))
        model.eval()
        chunks = []
        for images, _ in loader:
            fmt = torch.channels_last if self.cfg.train.channels_last else torch.contiguous_format
            with self._autocast():
                chunks.append(
                    model(images.to(self.device, memory_format=fmt)).float().cpu().numpy()
                )
        width = 1 if self.binary else len(self.classes)
        logits = np.concatenate(chunks) if chunks else np.zeros((0, width))
        logits = dist.gather_rows(mine, logits)
        return Predictions(
            rows["image_id"].to_numpy(),
            rows["group"].to_numpy(),
            np.array(dataset.labels),
            logits,
            self.classes,
        )

    def validate(self) -> dict:
        preds = self.predict("val")
        proba = preds.probabilities()
        if self.binary:
            eps = 1e-12
            loss = -np.mean(np.log(proba[np.arange(len(proba)), preds.labels] + eps))
        else:
            loss = float(
                nn.functional.cross_entropy(torch.tensor(preds.logits), torch.tensor(preds.labels))
            )
        return epoch_metrics(preds.labels, proba, float(loss))

    # --- persistence -------------------------------------------------------------------------

    def checkpoint_state(self) -> dict:
        s = self.state
        return {
            "model": self.model.state_dict(),
            "ema": self.ema.module.state_dict() if self.ema is not None else None,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "selector": self.selector.state_dict() if self.selector is not None else None,
            "run_state": {
                "epoch": s.epoch,
                "best_score": s.best_score,
                "best_epoch": s.best_epoch,
                "stale": s.stale,
                "history": s.history,
                "train_seconds": s.train_seconds,
                "train_images": s.train_images,
            },
            "classes": self.classes,
            "config": self.cfg.to_dict(),
            "data_config": {
                k: list(v) if isinstance(v, tuple) else v for k, v in self.data_cfg.items()
            },
        }

    def restore(self, path: Path) -> None:
        ckpt = load_checkpoint(path, self.device)
        if ckpt["classes"] != self.classes:
            raise TrainingError(
                f"{path}: checkpoint classes {ckpt['classes']} differ from the data's "
                f"{self.classes}; start a new run (another train.run name)"
            )
        self.model.load_state_dict(ckpt["model"])
        if self.ema is not None and ckpt["ema"] is not None:
            self.ema.module.load_state_dict(ckpt["ema"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        self.scaler.load_state_dict(ckpt["scaler"])
        if self.selector is not None and ckpt["selector"] is not None:
            self.selector.load_state_dict(ckpt["selector"])
        self.state = RunState(**ckpt["run_state"])

    def write_metrics(self) -> None:
        frame = pd.DataFrame(self.state.history)
        atomic_write(self.run_dir / "metrics.csv", lambda p: frame.to_csv(p, index=False))

    # --- the loop ----------------------------------------------------------------------------

    def fit(self) -> None:
        cfg = self.cfg.train
        if cfg.monitor not in MONITORS:
            raise ConfigError(f"train.monitor={cfg.monitor!r}; choose one of {list(MONITORS)}")
        writer = self._writer()
        for epoch in range(self.state.epoch + 1, cfg.epochs):
            try:
                row = {
                    "epoch": epoch + 1,
                    "lr": self.optimizer.param_groups[0]["lr"],
                    **self.train_epoch(epoch),
                }
            except torch.cuda.OutOfMemoryError:
                raise TrainingError(
                    f"CUDA out of memory at epoch {epoch + 1} with batch size {cfg.batch_size}; lower "
                    "train.batch_size (and raise train.accum_steps to keep the effective batch)"
                ) from None
            row.update({f"val_{k}": v for k, v in self.validate().items()})
            if cfg.log_resources:
                row.update(resources(self.device))
            if not self.per_step:
                self.scheduler.step(row["val_loss"])
            score = MONITORS[cfg.monitor] * row[f"val_{cfg.monitor}"]
            improved = score > self.state.best_score
            self.state.history.append(row)
            self.state.epoch = epoch
            if improved:
                self.state.best_score, self.state.best_epoch, self.state.stale = score, epoch, 0
            else:
                self.state.stale += 1
            if dist.is_main():
                self._log_epoch(row, writer)
                state = self.checkpoint_state()
                if improved:
                    save_checkpoint(self.run_dir / "checkpoints" / "best.pt", state)
                save_checkpoint(self.run_dir / "checkpoints" / "last.pt", state)
                self.write_metrics()
            dist.barrier()
            if cfg.patience and self.state.stale >= cfg.patience:
                log.info("early stop: %s did not improve for %d epochs", cfg.monitor, cfg.patience)
                break
        if writer is not None:
            writer.close()

    def _writer(self):
        if not dist.is_main():
            return None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # tensorboard is optional at run time
            return None
        return SummaryWriter(str(self.run_dir / "tb"))

    def _log_epoch(self, row: dict, writer) -> None:
        log.info(
            "%s epoch %d: %s",
            self.cfg.run_name,
            row["epoch"],
            ", ".join(f"{k}={v:.4g}" for k, v in row.items() if isinstance(v, float)),
        )
        if writer is not None:
            for key, value in row.items():
                if isinstance(value, int | float) and key != "epoch":
                    writer.add_scalar(key, value, row["epoch"])
            writer.flush()

    def finish(self) -> None:
        """Predictions of the best checkpoint on val and test, and the run's record."""
        best = load_checkpoint(self.run_dir / "checkpoints" / "best.pt", self.device)
        model = self.eval_model()
        model.load_state_dict(best["ema"] if best["ema"] is not None else best["model"])
        start = time.perf_counter()
        preds = {s: self.predict(s, model) for s in ("val", "test") if not self.rows[s].empty}
        n_eval = sum(len(p.labels) for p in preds.values())
        eval_rate = n_eval / max(time.perf_counter() - start, 1e-9)
        if not dist.is_main():
            return
        for split, p in preds.items():
            p.save(self.run_dir / f"predictions_{split}.csv")
        s = self.state
        write_json(
            self.run_dir / "meta.json",
            {
                "status": "complete",
                "run": self.cfg.run_name,
                "study": self.cfg.study,
                "arch": self.cfg.model.arch,
                "classes": self.classes,
                "task": self.cfg.data.task,
                "seed": self.cfg.train.seed,
                "image_size": self.size,
                "split_sha256": file_hash(self.run_dir / "split.csv"),
                "n_params": count_parameters(self.model),
                "epochs_run": s.epoch + 1,
                "best_epoch": s.best_epoch + 1,
                "train_seconds": s.train_seconds,
                "train_images_per_s": s.train_images / max(s.train_seconds, 1e-9),
                "eval_images_per_s": eval_rate,
                "world_size": self.world,
                "skipped_bad_images": len(self.train_set.skipped),
                "git": git_commit(),
                "versions": versions(),
                "hardware": hardware(self.device),
                "data_config": best["data_config"],
            },
        )


def _same_config(run_dir: Path, cfg: Config) -> bool:
    import yaml

    saved = run_dir / "config.yaml"
    return saved.is_file() and config_from_dict(yaml.safe_load(saved.read_text())) == cfg


def _run_is_complete(run_dir: Path, cfg: Config) -> bool:
    meta = run_dir / "meta.json"
    if not meta.is_file() or read_json(meta).get("status") != "complete":
        return False
    return _same_config(run_dir, cfg)


def train(
    cfg: Config, table: pd.DataFrame | None = None, resume: bool = False, progress: bool = True
) -> Path:
    """Train one run and return its folder ``experiments/<study>/<run>``.

    Args:
        cfg: the whole configuration (saved as ``config.yaml`` in the run folder).
        table: a common-schema table with a ``split`` column; by default built from ``cfg.data``.
        resume: continue from ``checkpoints/last.pt`` (same config) after an interruption; a
            complete run with the same config is returned as it is.
    """
    run_dir = paths.run_dir(cfg.study, cfg.run_name)
    if resume and _run_is_complete(run_dir, cfg):
        log.info("%s is complete; nothing to resume", run_dir)
        return run_dir
    table = prepare_table(cfg, progress) if table is None else table
    if "split" not in table:
        raise ConfigError("the table passed to train() needs a split column (skinlib.data.splits)")
    trainer = Trainer(cfg, table, progress)
    last = run_dir / "checkpoints" / "last.pt"
    if resume and last.is_file() and not _same_config(run_dir, cfg):
        log.warning("%s was started with another config; training it afresh", run_dir)
        resume = False
    if resume and last.is_file():
        trainer.restore(last)
        log.info("resuming %s after epoch %d", cfg.run_name, trainer.state.epoch + 1)
    elif dist.is_main():
        if (run_dir / "meta.json").exists():
            (run_dir / "meta.json").unlink()  # a restarted run is not complete until it finishes
        run_dir.mkdir(parents=True, exist_ok=True)
        save_config(cfg, run_dir / "config.yaml")
        save_split(trainer.table.assign(path=table["path"].to_numpy()), run_dir / "split.csv")
    dist.barrier()
    trainer.fit()
    trainer.finish()
    return run_dir
