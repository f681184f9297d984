"""The training loop. It never names an architecture: the model factory, the loss builder and the
data layer hand it everything it needs, so one loop trains every model of the study.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import itertools
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from timm.data import Mixup
from timm.utils import ModelEmaV3
from torch import nn
from torch.utils.data import DataLoader, Subset

from skinlib.config import Config, TrainConfig
from skinlib.data.cache import build_cache
from skinlib.data.dataset import ImageDataset, batch_parts, collate_readable
from skinlib.data.metadata import MetadataEncoder
from skinlib.data.prepare import prepare_table, table_classes
from skinlib.data.splits import CALIBRATION, SPLITS, file_hash, split_fractions
from skinlib.data.transforms import build_batch_augment, build_transforms
from skinlib.errors import ConfigError, TrainingError
from skinlib.evaluation.predictions import Predictions
from skinlib.models.architectures import (
    count_parameters,
    create_model,
    data_config,
    native_size,
    set_backbone_trainable,
)
from skinlib.models.checkpoint import (
    for_inference,
    inference_weights,
    load_checkpoint,
    metadata_encoder,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from skinlib.models.metadata import logits as model_logits
from skinlib.progress import tqdm
from skinlib.runs.folder import RunFolder
from skinlib.training import budget
from skinlib.training import distributed as dist
from skinlib.training.imbalance import build_sampler, loss_for_epoch
from skinlib.training.monitor import MONITORS, epoch_metrics, window_mean
from skinlib.training.runinfo import git_commit, hardware, resources, versions
from skinlib.training.runtime import amp_dtype, resolve_device, seed_everything
from skinlib.training.schedule import build_optimizer, build_scheduler
from skinlib.training.selection import SelectionController, selected_loss

log = logging.getLogger(__name__)


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
    elapsed_s: float = 0.0  # wall time of the run up to the last checkpoint (its time budget)
    stopped_by: str = ""  # why the epochs ended: "epochs", "patience" or "budget"


class Trainer:
    """Holds the pieces of one run; :func:`train` is the entry point.

    Args:
        started: when the run began (``time.perf_counter()``), for its time budget; default now.
    """

    def __init__(
        self,
        cfg: Config,
        table: pd.DataFrame,
        progress: bool = True,
        started: float | None = None,
    ):
        self.cfg, self.progress = cfg, progress
        self.started = time.perf_counter() if started is None else started
        self.elapsed_before = 0.0  # a resumed run's wall time before this process
        self.plan: budget.Plan | None = None  # train.budget_min's plan (plan_budget, restore)
        self.rank, self.world, local = dist.setup()
        self.device = resolve_device(cfg.train.device, local)
        self.binary = cfg.data.task == "binary"
        self.classes = table_classes(table, cfg)
        self.folder = RunFolder.of(cfg.study, cfg.run_name)
        self.metadata = self._metadata_encoder(table)
        self._build_model()
        self.skipped_missing = int(table.attrs.get("skipped_missing", 0))
        self.table = self._cached(table)
        self._build_data()
        self._build_optimisation()
        self.net = self._wrap(self.model)
        self.state = RunState()
        self.dropped: dict[str, int] = {}  # split -> unreadable images evaluation left out

    # --- setup -------------------------------------------------------------------------------

    def _build_model(self) -> None:
        cfg = self.cfg
        native = cfg.model.native_resolution or not cfg.data.image_size
        self.size = native_size(cfg.model.arch) if native else cfg.data.image_size
        seed_everything(cfg.train.seed)  # the head's initial weights
        if cfg.train.deterministic and self.device.type == "cuda":
            # CPU kernels are already deterministic; forcing the flag there slows attention ~5x.
            torch.use_deterministic_algorithms(True, warn_only=True)
            torch.backends.cudnn.benchmark = False
        n_out = 1 if self.binary else len(self.classes)
        self.model = create_model(cfg.model, n_out, self.size, metadata=self.metadata)
        # The model's preprocessing, at the size this run feeds it.
        self.data_cfg = {**data_config(self.model), "input_size": (3, self.size, self.size)}
        self.model.to(self.device)
        if cfg.train.channels_last:
            self.model.to(memory_format=torch.channels_last)

    @property
    def train_config(self) -> TrainConfig:
        """``cfg.train`` as this run trains it: with a time budget, its planned epochs (and the
        warm-up and EMA decay that follow from them)."""
        return self.plan.train_config(self.cfg.train) if self.plan else self.cfg.train

    @property
    def epochs(self) -> int:
        """The epochs this run trains at most: ``train.epochs``, or the budget's plan."""
        return self.train_config.epochs

    def _build_optimisation(self) -> None:
        """Loss, optimiser, schedule, mixed precision, EMA, sample selection and mixup, for the
        epochs the run trains (built again once a time budget has planned them)."""
        cfg = self.train_config
        # class counts of the training split: the priors and weights never see val or test
        self.train_counts = np.bincount(self.train_labels, minlength=len(self.classes))
        self.loss_fn = self._loss(0)
        self.optimizer = build_optimizer(self.model, cfg)
        steps = max(1, math.ceil(self._steps_per_epoch() / cfg.accum_steps))
        self.scheduler, self.per_step = build_scheduler(self.optimizer, cfg, steps)
        self.dtype = amp_dtype(cfg.amp, self.device)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.dtype == torch.float16)
        self.ema = self._ema()
        rate = cfg.selection_rate
        self.selector = SelectionController(rate) if rate < 1 else None
        self.mixup = self._mixup()
        self.batch_augment = build_batch_augment(self.data_cfg, cfg.augment)
        if self.batch_augment is not None:
            self.batch_augment.to(self.device)

    def _metadata_encoder(self, table: pd.DataFrame) -> MetadataEncoder | None:
        """model.metadata: age, sex and site encoded with the training split's vocabularies and
        age statistics (validation and test rows are only transformed)."""
        if not self.cfg.model.metadata:
            return None
        return MetadataEncoder().fit(table[table["split"] == "train"])

    def _loss(self, epoch: int) -> nn.Module:
        """The training loss of ``epoch`` (deferred re-weighting switches it at its epoch)."""
        imb, epochs = self.cfg.imbalance, self.epochs  # a time budget's planned epochs
        loss = loss_for_epoch(imb, self.train_counts, epoch, epochs, self.binary)
        return loss.to(self.device)

    def _cached(self, table: pd.DataFrame) -> pd.DataFrame:
        if not self.cfg.data.cache:
            return table
        crop = float(self.data_cfg.get("crop_pct", 0.875))
        size = int(math.ceil(self.size / crop))
        if dist.is_main():
            build_cache(table, size, progress=self.progress)
        dist.barrier()
        return build_cache(table, size, progress=False)

    def _dataset(self, rows: pd.DataFrame, train: bool, size: int | None = None) -> ImageDataset:
        augment = self.cfg.train.augment if train else "none"
        transform = build_transforms(self.data_cfg, train, augment, size or self.size)
        # with data.skip_bad, training substitutes an unreadable image; evaluation drops it
        on_bad = ("substitute" if train else "drop") if self.cfg.data.skip_bad else "raise"
        metadata = None if self.metadata is None else self.metadata.transform(rows)
        return ImageDataset(rows, self.classes, transform, on_bad=on_bad, metadata=metadata)

    def _build_data(self) -> None:
        split = self.table["split"]
        self.rows = {s: self.table[split == s].reset_index(drop=True) for s in SPLITS}
        if self.rows["train"].empty or self.rows["val"].empty:
            raise ConfigError(
                "the split has no training or no validation images; check data.*_frac"
            )
        self.train_set = self._dataset(self.rows["train"], train=True)
        self.train_labels = np.array(self.train_set.labels)
        self.sampler = build_sampler(
            self.cfg.imbalance, self.train_labels, len(self.classes), self.cfg.train.seed
        )
        self.train_loader = self._loader(self.train_set, self.sampler, drop_last=True)

    def _loader(self, dataset, sampler=None, drop_last=False, collate_fn=None) -> DataLoader:
        per_rank = max(1, self.cfg.train.batch_size // self.world)
        workers = self.cfg.data.num_workers
        return DataLoader(
            dataset,
            batch_size=per_rank,
            sampler=sampler,
            drop_last=drop_last,
            collate_fn=collate_fn,
            num_workers=workers,
            pin_memory=self.device.type == "cuda",
            persistent_workers=False,
            generator=torch.Generator().manual_seed(self.cfg.train.seed),
        )

    def _ema(self):
        if not self.cfg.train.ema:
            return None
        return ModelEmaV3(self.model, decay=self.train_config.ema_decay)

    def _mixup(self):
        t = self.cfg.train
        if not (t.mixup or t.cutmix):
            return None
        if self.binary:
            raise ConfigError(
                "mixup/cutmix are for multi-class tasks; set train.mixup=0 train.cutmix=0"
            )
        per_rank = max(1, t.batch_size // self.world)
        if per_rank % 2:
            # timm mixes each sample with its mirror in the batch and needs an even count; an odd
            # one would leave every batch unmixed
            raise ConfigError(
                f"train.batch_size={t.batch_size} gives {per_rank} images per process; "
                f"mixup/cutmix need an even number: use train.batch_size="
                f"{(per_rank + 1) * self.world}"
            )
        # timm smooths labels by 0.1 unless told otherwise; the loss already applies
        # imbalance.label_smoothing (to mixed targets too), so Mixup itself must not add any.
        return Mixup(
            mixup_alpha=t.mixup,
            cutmix_alpha=t.cutmix,
            label_smoothing=0.0,
            num_classes=len(self.classes),
        )

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

    def _augment_batch(self, images: torch.Tensor) -> torch.Tensor:
        """The batch on the device, with the preset's per-image colour jitter applied there."""
        fmt = torch.channels_last if self.cfg.train.channels_last else torch.contiguous_format
        images = images.to(self.device, non_blocking=True, memory_format=fmt)
        if self.batch_augment is None:
            return images
        return self.batch_augment(images).contiguous(memory_format=fmt)

    def _to_device(self, images: torch.Tensor, labels: torch.Tensor):
        fmt = torch.channels_last if self.cfg.train.channels_last else torch.contiguous_format
        images = images.to(self.device, non_blocking=True, memory_format=fmt)
        labels = labels.to(self.device, non_blocking=True)
        if self.mixup is not None:  # even batches: checked in _mixup, last one dropped
            images, labels = self.mixup(images, labels)
        elif self.binary:
            labels = labels.float()
        return images, labels

    def _losses(self, images, targets, metadata=None) -> torch.Tensor:
        with self._autocast():
            logits = self.net(images) if metadata is None else self.net(images, metadata)
        return self.loss_fn(logits.float(), targets)

    def _step_loss(self, images, targets, metadata=None) -> tuple[torch.Tensor, float]:
        """(loss to back-propagate, mean loss of the whole batch for the log).

        With adaptive sample selection the batch is scored without gradients (and without
        touching BatchNorm statistics) first; only the chosen samples are forwarded again and
        back-propagated.
        """
        if self.selector is None:
            loss = self._losses(images, targets, metadata).mean()
            return loss, loss.item()
        return selected_loss(
            self._losses, self.model, images, targets, self.selector, metadata=metadata
        )

    def _begin_epoch(self, epoch: int) -> None:
        """Seed this epoch from (seed, epoch) alone, so a resumed epoch draws the same batches and
        augmentations; freeze or unfreeze the backbone; pick the progressive-resizing size."""
        seed = self.cfg.train.seed * 1000 + epoch
        seed_everything(seed)  # augmentation in the main process, mixup
        self.train_loader.generator.manual_seed(seed)  # the base seed of the workers' RNGs
        self.sampler.set_epoch(epoch)
        if self.cfg.imbalance.drw_epoch:
            self.loss_fn = self._loss(epoch)  # a function of the epoch: resuming re-weights alike
        freeze = epoch < self.cfg.train.freeze_epochs
        set_backbone_trainable(self.model, not freeze)
        if self.cfg.train.progressive_resize:
            frac = min(1.0, 0.5 + epoch / max(1, self.epochs))
            size = max(32, int(self.size * frac) // 8 * 8)
            self.train_set.transform = build_transforms(
                self.data_cfg, True, self.cfg.train.augment, size
            )

    def _steps_per_epoch(self) -> int:
        steps = len(self.train_loader)
        cap = self.cfg.train.max_steps_per_epoch
        return min(steps, cap) if cap else steps

    def _train_step(
        self, step: int, steps: int, images, labels, epoch: int, metadata=None
    ) -> float:
        """Forward, backward and (every accum_steps) an optimiser step; the batch's mean loss.

        ``metadata``: the batch's (N, D) encoded metadata, for a metadata model (mixup and
        cutmix mix the images and labels; each keeps its first image's metadata).
        """
        images, targets = self._to_device(images, labels)
        if metadata is not None:
            metadata = metadata.to(self.device, non_blocking=True)
        loss, batch_loss = self._step_loss(images, targets, metadata)
        if not torch.isfinite(loss):
            raise TrainingError(
                f"loss became {loss.item()} at epoch {epoch + 1}, step {step + 1}; try a lower "
                "train.lr, train.grad_clip=1.0, or train.amp=off"
            )
        accum = self.cfg.train.accum_steps
        self.scaler.scale(loss / accum).backward()
        if (step + 1) % accum == 0 or step + 1 == steps:
            self._optimizer_step()
        return batch_loss

    def train_epoch(self, epoch: int) -> dict:
        """One pass over the training sampler; the epoch's training columns of metrics.csv."""
        self._begin_epoch(epoch)
        self.net.train()
        steps = self._steps_per_epoch()
        show = self.progress and dist.is_main()
        bar = tqdm(
            total=steps,
            desc=f"epoch {epoch + 1}/{self.epochs}",
            leave=False,
            disable=not show,
        )
        total, count, start = 0.0, 0, time.perf_counter()
        self.optimizer.zero_grad(set_to_none=True)
        for step, batch in enumerate(itertools.islice(self.train_loader, steps)):
            images, labels, metadata = batch_parts(batch)
            images = self._augment_batch(images)
            total += self._train_step(step, steps, images, labels, epoch, metadata) * len(images)
            count += len(images)
            # refresh=False: the bar redraws at its own pace (mininterval), so a notebook saved
            # by papermill keeps a few lines per epoch instead of one per step
            bar.set_postfix(loss=f"{total / count:.4f}", refresh=False)
            bar.update()
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
            rate = dist.all_reduce_mean(self.selector.epoch_rate())
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

    # --- the time budget -----------------------------------------------------------------------

    def elapsed(self) -> float:
        """Wall seconds of the run so far, a resumed run's earlier processes included."""
        return self.elapsed_before + time.perf_counter() - self.started

    def plan_budget(self) -> None:
        """With ``train.budget_min``: time the first steps and plan the epochs that fit
        (:mod:`skinlib.training.budget`). The timed steps are undone (initial weights back, a
        fresh optimiser, schedule and EMA built for the plan), so the run then trains exactly as
        its config with ``train.epochs`` set to the plan would."""
        minutes = self.cfg.train.budget_min
        if not minutes:
            return
        initial = copy.deepcopy(self.model.state_dict())  # BatchNorm statistics included
        step_s, start_s = self._time_training_steps()
        per_image = self._time_evaluation()
        evaluated = sum(len(self.rows[s]) for s in ("val", "test", CALIBRATION))
        measured = budget.Measurement(
            step_s=dist.all_reduce_mean(step_s),
            start_s=dist.all_reduce_mean(start_s),
            steps_per_epoch=self._steps_per_epoch(),
            val_s=dist.all_reduce_mean(per_image * len(self.rows["val"]) / self.world),
            final_s=dist.all_reduce_mean(per_image * evaluated / self.world),
            spent_s=dist.all_reduce_mean(self.elapsed()),
        )
        self.model.load_state_dict(initial)
        self.plan = budget.plan(minutes, measured, self.cfg.train)
        self._build_optimisation()
        log.info(
            "%s: %.3g s per step, %.3g s per epoch with validation: %d of at most %d epochs fit "
            "the %.3g min budget (%.3g min already spent)",
            self.cfg.run_name,
            measured.step_s,
            measured.epoch_s,
            self.plan.epochs,
            self.plan.cap,
            minutes,
            measured.spent_s / 60,
        )

    def _synchronise(self) -> None:
        if self.device.type == "cuda":  # kernels run asynchronously: wait before reading a clock
            torch.cuda.synchronize(self.device)

    def _time_training_steps(self) -> tuple[float, float]:
        """(seconds per training step through the real loader, seconds to its first batch).

        The first :data:`~skinlib.training.budget.WARMUP_STEPS` steps are run but not timed; a
        loader shorter than the measurement is read again.
        """
        self.net.train()
        self.optimizer.zero_grad(set_to_none=True)
        steps = self._steps_per_epoch()
        tick = time.perf_counter()
        batches = iter(self.train_loader)
        batch = next(batches)
        start_s = time.perf_counter() - tick
        durations = []
        for i in range(budget.WARMUP_STEPS + budget.TIMED_STEPS):
            tick = time.perf_counter()
            if i:
                batch = next(batches, None)
                if batch is None:  # a loader shorter than the measurement: read it again
                    batches = iter(self.train_loader)
                    batch = next(batches)
            images, labels, metadata = batch_parts(batch)
            images = self._augment_batch(images)
            self._train_step(i % steps, steps, images, labels, 0, metadata)
            self._synchronise()
            durations.append(time.perf_counter() - tick)
        return float(np.median(durations[budget.WARMUP_STEPS :])), start_s

    @torch.no_grad()
    def _time_evaluation(self) -> float:
        """Seconds per validation image of evaluation (loading and forward pass), timed over a
        few batches after an untimed first one."""
        dataset = self._dataset(self.rows["val"], train=False)
        loader = self._loader(dataset, collate_fn=collate_readable)
        model = self.eval_model().eval()
        fmt = torch.channels_last if self.cfg.train.channels_last else torch.contiguous_format
        seconds, counts = [], []
        tick = time.perf_counter()
        for images, _, _, *metadata in itertools.islice(loader, 1 + budget.EVAL_BATCHES):
            if len(images):
                with self._autocast():
                    x = images.to(self.device, memory_format=fmt)
                    model_logits(model, x, metadata[0] if metadata else None)
            self._synchronise()
            seconds.append(time.perf_counter() - tick)
            counts.append(len(images))
            tick = time.perf_counter()
        timed = slice(1, None) if len(seconds) > 1 else slice(None)
        return sum(seconds[timed]) / max(1, sum(counts[timed]))

    def _no_room(self, epoch_s: float) -> bool:
        """The budget's guard: another epoch of ``epoch_s`` and the final predictions would
        overrun it (the machine slowed down after the measurement)."""
        plan = self.plan
        if plan is None:
            return False
        over = budget.no_room(self.elapsed(), epoch_s, plan.final_s, plan.budget_min)
        return bool(dist.all_reduce_mean(float(over)))  # every rank stops, or none

    # --- evaluation --------------------------------------------------------------------------

    def eval_model(self) -> nn.Module:
        return self.ema.module if self.ema is not None else self.model

    @torch.no_grad()
    def predict(self, split: str, model: nn.Module | None = None) -> Predictions:
        """Logits for every readable image of a split; ranks share the work and join the results.

        With data.skip_bad an unreadable image is left out (never replaced by another, which
        would be scored against this row's label); how many is kept in ``self.dropped``.
        """
        model = model or self.eval_model()
        rows = self.rows[split]
        dataset = self._dataset(rows, train=False)
        mine = dist.shard(len(dataset))
        loader = self._loader(Subset(dataset, mine.tolist()), collate_fn=collate_readable)
        model.eval()
        fmt = torch.channels_last if self.cfg.train.channels_last else torch.contiguous_format
        chunks, readable = [], []
        for images, _, ok, *metadata in loader:  # metadata: a metadata model's, when readable
            readable.append(ok.numpy())
            if len(images):
                with self._autocast():
                    x = images.to(self.device, memory_format=fmt)
                    out = model_logits(model, x, metadata[0] if metadata else None)
                chunks.append(out.float().cpu().numpy())
        width = 1 if self.binary else len(self.classes)
        logits = np.concatenate(chunks) if chunks else np.zeros((0, width))
        kept = mine[np.concatenate(readable)] if readable else mine[:0]
        logits = dist.gather_rows(kept, logits)
        kept = dist.gather_rows(kept, kept)  # every rank's kept rows, in table order
        self._note_dropped(split, rows, kept)
        return Predictions(
            rows["image_id"].to_numpy()[kept],
            rows["group"].to_numpy()[kept],
            np.array(dataset.labels)[kept],
            logits,
            self.classes,
        )

    def _note_dropped(self, split: str, rows: pd.DataFrame, kept: np.ndarray) -> None:
        """Count (and log once per split) the unreadable images evaluation left out."""
        lost = np.setdiff1d(np.arange(len(rows)), kept)
        if len(lost) and self.dropped.get(split) != len(lost) and dist.is_main():
            log.warning(
                "%d unreadable %s images left out of evaluation (data.skip_bad), e.g. %s",
                len(lost),
                split,
                rows["path"].iloc[lost[:3]].tolist(),
            )
        self.dropped[split] = int(len(lost))

    def validate(self) -> dict:
        return epoch_metrics(self.predict("val"))

    # --- persistence -------------------------------------------------------------------------

    def checkpoint_state(self) -> dict:
        s = self.state
        state = {
            "model": self.model.state_dict(),
            "ema": self.ema.module.state_dict() if self.ema is not None else None,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "selector": self.selector.state_dict() if self.selector is not None else None,
            "run_state": dataclasses.asdict(s),
            "budget": self.plan.record() if self.plan else None,  # a resume keeps the plan
            "rng": rng_state(),
            "classes": self.classes,
            "image_size": self.size,
            "config": self.cfg.to_dict(),
            "data_config": {
                k: list(v) if isinstance(v, tuple) else v for k, v in self.data_cfg.items()
            },
        }
        if self.metadata is not None:  # what evaluation needs to encode any table alike
            state["metadata"] = self.metadata.state()
        return state

    def restore(self, path: Path) -> None:
        ckpt = load_checkpoint(path, self.device)
        if ckpt["classes"] != self.classes:
            raise TrainingError(
                f"{path}: checkpoint classes {ckpt['classes']} differ from the data's "
                f"{self.classes}; start a new run (another train.run name)"
            )
        stored = metadata_encoder(ckpt)
        if (stored and stored.state()) != (self.metadata and self.metadata.state()):
            raise TrainingError(
                f"{path}: the checkpoint's metadata encoding differs from this training split's; "
                "start a new run (another train.run name)"
            )
        if ckpt.get("budget"):  # the epochs planned when the run began, never planned again
            self.plan = budget.Plan.from_record(ckpt["budget"])
            self._build_optimisation()
        self.model.load_state_dict(ckpt["model"])
        if self.ema is not None and ckpt["ema"] is not None:
            self.ema.module.load_state_dict(ckpt["ema"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        self.scaler.load_state_dict(ckpt["scaler"])
        if self.selector is not None and ckpt["selector"] is not None:
            self.selector.load_state_dict(ckpt["selector"])
        self.state = RunState(**ckpt["run_state"])
        self.elapsed_before = self.state.elapsed_s
        if "rng" in ckpt:  # (checkpoints of early versions have none)
            set_rng_state(ckpt["rng"])

    def write_metrics(self) -> None:
        self.folder.write_history(pd.DataFrame(self.state.history))

    # --- the loop ----------------------------------------------------------------------------

    def fit(self) -> None:
        cfg = self.cfg.train
        if cfg.monitor not in MONITORS:
            raise ConfigError(f"train.monitor={cfg.monitor!r}; choose one of {list(MONITORS)}")
        if cfg.monitor_window < 1:
            raise ConfigError(f"train.monitor_window={cfg.monitor_window}; give 1 or more epochs")
        writer = self._writer()
        epoch_s = self.plan.epoch_s if self.plan else 0.0  # measured again by every epoch
        self.state.stopped_by = "epochs"
        for epoch in range(self.state.epoch + 1, self.epochs):
            if cfg.patience and self.state.stale >= cfg.patience:  # also after a resume
                log.info("early stop: %s did not improve for %d epochs", cfg.monitor, cfg.patience)
                self.state.stopped_by = "patience"
                break
            if self.state.epoch >= 0 and self._no_room(epoch_s):
                log.warning(
                    "%s: stopped after %d of %d planned epochs: another would overrun the %.3g "
                    "min budget (%.1f min spent)",
                    self.cfg.run_name,
                    self.state.epoch + 1,
                    self.epochs,
                    self.plan.budget_min,
                    self.elapsed() / 60,
                )
                self.state.stopped_by = "budget"
                break
            start = time.perf_counter()
            row = self._run_epoch(epoch)
            improved = self._update_state(epoch, row)
            self.state.elapsed_s = self.elapsed()
            if dist.is_main():
                self._log_epoch(row, writer)
                state = self.checkpoint_state()
                if improved:
                    save_checkpoint(self.folder.checkpoint("best"), for_inference(state))
                save_checkpoint(self.folder.checkpoint("last"), state)
                self.write_metrics()
            dist.barrier()
            epoch_s = time.perf_counter() - start  # the last epoch, checkpoints included
        if writer is not None:
            writer.close()

    def _head_lr(self) -> float:
        """The classifier's learning rate now (the backbone's is ``train.backbone_lr_mult`` x)."""
        groups = self.optimizer.param_groups
        return next((g["lr"] for g in groups if g.get("name") == "head"), groups[0]["lr"])

    def _run_epoch(self, epoch: int) -> dict:
        """Train one epoch and validate: the epoch's row of metrics.csv."""
        cfg = self.cfg.train
        try:
            row = {
                "epoch": epoch + 1,
                "lr": self._head_lr(),
                **self.train_epoch(epoch),
            }
            row.update({f"val_{k}": v for k, v in self.validate().items()})
        except torch.cuda.OutOfMemoryError:
            raise TrainingError(
                f"CUDA out of memory at epoch {epoch + 1} with batch size {cfg.batch_size}; lower "
                "train.batch_size (and raise train.accum_steps to keep the effective batch)"
            ) from None
        if cfg.log_resources:
            row.update(resources(self.device))
        if not self.per_step:
            self.scheduler.step(row["val_loss"])
        return row

    def _update_state(self, epoch: int, row: dict) -> bool:
        """Record the epoch and the early-stopping state; True when it is the best so far."""
        s, monitor = self.state, self.cfg.train.monitor
        s.history.append(row)
        score = MONITORS[monitor] * window_mean(s.history, monitor, self.cfg.train.monitor_window)
        # The first epoch is the best so far even when its score is NaN (AUC of one class).
        improved = score > s.best_score or s.best_epoch < 0
        s.epoch = epoch
        if improved:
            s.best_score, s.best_epoch, s.stale = score, epoch, 0
        else:
            s.stale += 1
        return improved

    def _writer(self):
        if not dist.is_main():
            return None
        try:
            # tensorboard is optional and slow to import: only on the rank that logs
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # tensorboard is optional at run time
            return None
        return SummaryWriter(str(self.folder.tensorboard_dir))

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

    def _skipped_images(self) -> dict:
        """Images left out (data.skip_bad): files missing from the table, and unreadable ones
        per split.

        Validation, test and calibration count exactly what evaluation dropped. Training counts the images
        the cache could not build; without the cache, those this process met (DataLoader workers
        only log theirs), replaced in their batches by the next readable image.
        """
        if "source_path" in self.table:
            bad = self.table["path"] == self.table["source_path"]
            train = int(bad[self.table["split"] == "train"].sum())
        else:
            train = len(self.train_set.skipped)
        unreadable = {"train": train, "val": self.dropped.get("val", 0)}
        unreadable["test"] = self.dropped.get("test", 0)
        if not self.rows[CALIBRATION].empty:
            unreadable[CALIBRATION] = self.dropped.get(CALIBRATION, 0)
        return {"missing": self.skipped_missing, "unreadable": unreadable}

    def finish(self) -> None:
        """Predictions of the best checkpoint on val and test (and calibration, where the split
        has one), and the run's record."""
        best = load_checkpoint(self.folder.checkpoint("best"), self.device)
        model = self.eval_model()
        model.load_state_dict(inference_weights(best))
        start = time.perf_counter()
        evaluated = ("val", "test", CALIBRATION)
        preds = {s: self.predict(s, model) for s in evaluated if not self.rows[s].empty}
        n_eval = sum(len(p.labels) for p in preds.values())
        eval_rate = n_eval / max(time.perf_counter() - start, 1e-9)
        if not dist.is_main():
            return
        for split, p in preds.items():
            self.folder.write_predictions(p, split)
        s = self.state
        self.folder.write_meta(
            {
                "status": "complete",
                "run": self.cfg.run_name,
                "study": self.cfg.study,
                "arch": self.cfg.model.arch,
                "classes": self.classes,
                "task": self.cfg.data.task,
                "seed": self.cfg.train.seed,
                "image_size": self.size,
                "split_sha256": file_hash(self.folder.split_file),
                "split_fractions": split_fractions(self.table),  # achieved, not requested
                "n_params": count_parameters(self.model),
                "epochs_run": s.epoch + 1,
                "best_epoch": s.best_epoch + 1,
                "stopped_by": s.stopped_by,  # epochs (all given or planned), patience, budget
                "budget": self._budget_record(),
                "train_seconds": s.train_seconds,
                "train_images_per_s": s.train_images / max(s.train_seconds, 1e-9),
                "eval_images_per_s": eval_rate,
                "world_size": self.world,
                "skipped_images": self._skipped_images(),
                "git": git_commit(),
                "versions": versions(),
                "hardware": hardware(self.device),
                "data_config": best["data_config"],
                **self._metadata_record(),
            },
        )

    def _budget_record(self) -> dict | None:
        """The time budget as the run's record states it: the plan, what ran, the wall time."""
        if self.plan is None:
            return None
        return {
            **self.plan.record(),
            "epochs_run": self.state.epoch + 1,
            "elapsed_s": self.elapsed(),
        }

    def _metadata_record(self) -> dict:
        """What a metadata model was fed (meta.json: for the methods), nothing otherwise."""
        if self.metadata is None:
            return {}
        return {"metadata_inputs": self.metadata.feature_names()}


def train(
    cfg: Config, table: pd.DataFrame | None = None, resume: bool = False, progress: bool = True
) -> Path:
    """Train one run and return its folder ``experiments/<study>/<run>``.

    Args:
        cfg: the whole configuration (saved as ``config.yaml`` in the run folder).
        table: a common-schema table with a ``split`` column; by default built from ``cfg.data``.
        resume: continue from ``checkpoints/last.pt`` (same config) after an interruption; a
            complete run with the same config is returned as it is. A run with a time budget
            (``train.budget_min``) keeps the epochs it planned when it began.
    """
    started = time.perf_counter()  # a time budget counts from here
    folder = RunFolder.of(cfg.study, cfg.run_name)
    if resume and folder.is_complete(cfg):
        log.info("%s is complete; nothing to resume", folder.path)
        return folder.path
    table = prepare_table(cfg, progress) if table is None else table
    if "split" not in table:
        raise ConfigError("the table passed to train() needs a split column (skinlib.data.splits)")
    trainer = Trainer(cfg, table, progress, started)
    last = folder.checkpoint("last")
    if resume and last.is_file() and not folder.trained_with(cfg):
        log.warning("%s was started with another config; training it afresh", folder.path)
        resume = False
    if resume and last.is_file():
        trainer.restore(last)
        log.info("resuming %s after epoch %d", cfg.run_name, trainer.state.epoch + 1)
    else:
        if dist.is_main():
            folder.start_fresh(cfg, table)
        trainer.plan_budget()
    dist.barrier()
    trainer.fit()
    trainer.finish()
    return folder.path
