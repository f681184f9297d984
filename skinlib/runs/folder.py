"""The run folder ``experiments/<study>/<run>``: the one place that names and parses its files.

:class:`RunFolder` alone knows that a run keeps ``config.yaml``, ``meta.json``, ``split.csv``,
``metrics.csv``, ``checkpoints/``, its predictions, and the state later steps store with it
(temperature, operating points, conformal sets); training, the study, the app and the external
evaluation ask it, as timm's ``CheckpointSaver`` alone knows its checkpoint names. It names the
checkpoints and never opens one: :mod:`skinlib.models.checkpoint` owns the ``.pt`` format (and
loads a run's model), so this module imports no torch.

Reading a run's test predictions or test images records a look in the study's test-look ledger
(:mod:`skinlib.runs.ledger`): every test number starts there, so no caller can forget it.

Optional state is explicit: :meth:`RunFolder.temperature` is None for a run that no temperature
was fitted for, never a silent 1.0. Test-time augmentation changes the predictions, so TTA has
its own temperature and operating points (``*_tta.json``), fitted on the TTA predictions of the
split post-hoc calibration fits on (:meth:`RunFolder.posthoc_split`).
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from skinlib import paths
from skinlib.config import Config, load_config, save_config
from skinlib.data.metadata import METADATA_COLUMNS
from skinlib.data.splits import CALIBRATION, load_split, save_split
from skinlib.errors import DataError, SkinlibError
from skinlib.evaluation.conformal import StoredConformal, load_conformal, save_conformal
from skinlib.evaluation.predictions import Predictions
from skinlib.evaluation.thresholds import (
    OperatingPoint,
    load_thresholds,
    save_thresholds,
    thresholds_chosen_on,
)
from skinlib.io import atomic_path, atomic_write, read_json, write_json
from skinlib.runs import ledger

ENSEMBLE_RUN = "ensemble"  # the study's ensemble folder (07), a sibling of the runs it averages


class RunFolder:
    """One run's folder: where each file lives, how it is read, and how later steps add state.

    An ensemble folder (``ensemble.json``, written by ``Study.build_ensemble``) is a run folder
    without checkpoints: predictions, split, temperature and operating points of the averaged
    output, and its members by run name.

    Args:
        path: ``experiments/<study>/<run>`` (:meth:`of` builds it from the names).
    """

    CONFIG = "config.yaml"  # the resolved Config the run trained with
    META = "meta.json"  # written last by training: a run is complete once it says so
    SPLIT = "split.csv"  # the images of train, val, test (and calibration): what the run saw
    # a metadata model's inputs per image (image_id, age, sex, site), beside the split so that
    # the split file (and its recorded hash) is the same assignment whatever the model reads
    METADATA = "metadata.csv"
    HISTORY = "metrics.csv"  # one row per epoch: losses and validation metrics
    CHECKPOINTS = "checkpoints"  # best.pt (selected on validation) and last.pt (to resume)
    TENSORBOARD = "tb"
    CALIBRATION = "calibration.json"  # temperature (04; TTA: 07), on posthoc_split()
    THRESHOLDS = "thresholds.json"  # operating points (05; TTA: 07), on posthoc_split()
    CONFORMAL = "conformal.json"  # conformal sets and unknown-input threshold (08)
    ENSEMBLE = "ensemble.json"  # an ensemble folder's members and weights (07)
    EXTERNAL = "external"  # evaluations on external sets, one folder per set
    TTA = "_tta"  # suffix of the files computed with test-time augmentation

    def __init__(self, path: str | Path):
        self.path = Path(path)

    @classmethod
    def of(cls, study: str, run: str) -> RunFolder:
        """The folder of run ``run`` of study ``study``, where :mod:`skinlib.paths` puts it."""
        return cls(paths.run_dir(study, run))

    @classmethod
    def trained_in(cls, study_dir: str | Path) -> list[RunFolder]:
        """Every run of a study folder that has a best checkpoint, by name."""
        found = (cls(p) for p in sorted(Path(study_dir).iterdir()) if p.is_dir())
        return [run for run in found if run.is_trained]

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    @property
    def name(self) -> str:
        return self.path.name

    # --- where each file lives -------------------------------------------------------------------

    @property
    def config_file(self) -> Path:
        return self.path / self.CONFIG

    @property
    def meta_file(self) -> Path:
        return self.path / self.META

    @property
    def split_file(self) -> Path:
        return self.path / self.SPLIT

    @property
    def metadata_file(self) -> Path:
        return self.path / self.METADATA

    @property
    def history_file(self) -> Path:
        return self.path / self.HISTORY

    @property
    def tensorboard_dir(self) -> Path:
        return self.path / self.TENSORBOARD

    @property
    def conformal_file(self) -> Path:
        return self.path / self.CONFORMAL

    @property
    def ensemble_file(self) -> Path:
        return self.path / self.ENSEMBLE

    def checkpoint(self, which: str = "best") -> Path:
        """``checkpoints/best.pt`` (selected on validation) or ``checkpoints/last.pt``."""
        return self.path / self.CHECKPOINTS / f"{which}.pt"

    def predictions_file(self, split: str, tta: bool = False) -> Path:
        """``predictions_<split>.csv``, or ``predictions_<split>_tta.csv`` for TTA."""
        return self.path / f"predictions_{split}{self.TTA if tta else ''}.csv"

    def calibration_file(self, tta: bool = False) -> Path:
        return self.path / self._variant(self.CALIBRATION, tta)

    def thresholds_file(self, tta: bool = False) -> Path:
        return self.path / self._variant(self.THRESHOLDS, tta)

    def external_dir(self, set_name: str) -> Path:
        """Where the evaluation on external set ``set_name`` is written by default."""
        return self.path / self.EXTERNAL / set_name

    def _variant(self, name: str, tta: bool) -> str:
        """``calibration.json`` or, for test-time augmentation, ``calibration_tta.json``."""
        stem, suffix = name.rsplit(".", 1)
        return f"{stem}{self.TTA}.{suffix}" if tta else name

    # --- what training wrote -----------------------------------------------------------------------

    def config(self) -> Config:
        """The configuration the run trained with."""
        if not self.config_file.is_file():
            raise SkinlibError(f"{self.config_file} not found: {self.path} is not a run folder")
        return load_config(self.config_file)

    def meta(self) -> dict:
        """The run's record (status, seed, versions, hardware, speed, ...)."""
        if not self.meta_file.is_file():
            raise SkinlibError(f"{self.meta_file} not found: {self.path} is not a finished run")
        return read_json(self.meta_file)

    def split_table(self) -> pd.DataFrame:
        """Every row of the run's split file (train, val, test, calibration), checked on reading;
        a metadata model's run adds the age, sex and site it was fed (``metadata.csv``)."""
        if not self.split_file.is_file():
            raise DataError(f"{self.split_file} not found: is {self.path} a finished skinlib run?")
        table = load_split(self.split_file)
        if not self.metadata_file.is_file():
            return table
        inputs = pd.read_csv(self.metadata_file, dtype={"image_id": str, "sex": str, "site": str})
        return table.merge(inputs, on="image_id", how="left", validate="one_to_one")

    def split_rows(self, split: str) -> pd.DataFrame:
        """The rows of one split, in the file's order."""
        table = self.split_table()
        rows = table[table["split"] == split]
        if rows.empty:
            raise DataError(f"{self.split_file} has no rows with split == {split!r}")
        if split == ledger.TEST:  # the model is about to be run on test images (maps, unknowns)
            self.record_test_look()
        return rows.reset_index(drop=True)

    def predictions(self, split: str = "test", tta: bool = False) -> Predictions:
        """The predictions the run (or a later step, for TTA) wrote for one split."""
        preds = Predictions.load(self.predictions_file(split, tta))
        if split == ledger.TEST:
            self.record_test_look(tta=tta)
        return preds

    def record_test_look(self, scored: str = ledger.TEST, tta: bool = False) -> None:
        """Append a look at this run's test (or an external set, ``ledger.external(name)``) to
        the study's ledger, ``<study>/test_looks.jsonl``; a failure is a warning."""
        ledger.record_look(self.path.parent, self.name, self.fingerprint, scored, tta)

    def fingerprint(self) -> str:
        """The configuration this folder's predictions come from
        (:func:`skinlib.runs.ledger.config_fingerprint`); an ensemble's, from its members' and how
        it combines them."""
        record = self.ensemble()
        if record is None:
            return ledger.config_fingerprint(self.config())
        members, weights = self._recorded_members(record)
        return ledger.ensemble_fingerprint(
            [self._member(m).fingerprint() for m in members],
            str(record.get("combine", "")) if isinstance(record, dict) else "",
            weights is not None,
        )

    def history(self) -> pd.DataFrame:
        """``metrics.csv``: one row per completed epoch."""
        return pd.read_csv(self.history_file)

    def epochs_done(self) -> int:
        """Completed epochs so far (0 before the first one ends)."""
        return len(self.history()) if self.history_file.is_file() else 0

    def posthoc_split(self) -> str:
        """The split post-hoc calibration is fitted on: the temperature (04), the operating
        thresholds (05), the conformal sets and the deferral threshold (08).

        ``calibration`` where training wrote predictions for a calibration split of its own
        (``data.calibration_fraction`` > 0), else ``val``; validation still selects the
        checkpoint, the recipe, the ensemble weights and the audited run. The one place that
        decides, so that the three steps fit on the same images.
        """
        return CALIBRATION if self.predictions_file(CALIBRATION).is_file() else "val"

    @property
    def is_trained(self) -> bool:
        """The run has a best checkpoint to load (an ensemble folder has none)."""
        return self.checkpoint("best").is_file()

    # --- training writes ---------------------------------------------------------------------------

    def trained_with(self, cfg: Config) -> bool:
        """The saved ``config.yaml`` is exactly ``cfg``."""
        return self.config_file.is_file() and self.config() == cfg

    def is_complete(self, cfg: Config | None = None) -> bool:
        """Training finished (``meta.json`` says complete), with exactly ``cfg`` when given."""
        if not (self.meta_file.is_file() and self.config_file.is_file()):
            return False
        if self.meta().get("status") != "complete":
            return False
        return cfg is None or self.trained_with(cfg)

    def start_fresh(self, cfg: Config, table: pd.DataFrame) -> None:
        """Write the run's config and split; forget what an earlier run of that name left."""
        self.meta_file.unlink(missing_ok=True)  # not complete until it finishes
        shutil.rmtree(self.tensorboard_dir, ignore_errors=True)  # old event files would mix in
        self.path.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.config_file) as tmp:
            save_config(cfg, tmp)
        save_split(table, self.split_file)
        self.metadata_file.unlink(missing_ok=True)  # an earlier run's, of another config
        if cfg.model.metadata:
            columns = ["image_id", *(c for c in METADATA_COLUMNS if c in table)]
            atomic_write(self.metadata_file, lambda p: table[columns].to_csv(p, index=False))

    def write_history(self, history: pd.DataFrame) -> Path:
        return atomic_write(self.history_file, lambda p: history.to_csv(p, index=False))

    def write_predictions(self, preds: Predictions, split: str, tta: bool = False) -> Path:
        return preds.save(self.predictions_file(split, tta))

    def write_meta(self, meta: dict) -> Path:
        """The run's record; written last, with ``status: complete``, when training finished."""
        return write_json(self.meta_file, meta)

    # --- state later steps store with the run ------------------------------------------------------

    def calibration(self, tta: bool = False) -> dict | None:
        """The whole calibration record (temperature, what it was fitted on, the method)."""
        path = self.calibration_file(tta)
        return read_json(path) if path.is_file() else None

    def temperature(self, tta: bool = False) -> float | None:
        """The temperature 04 fitted, or None when the run was not calibrated."""
        record = self.calibration(tta)
        if record is None:
            return None
        path = self.calibration_file(tta)
        try:
            value = float(record["temperature"])
        except (KeyError, TypeError, ValueError) as err:
            raise DataError(
                f"{path}: no usable 'temperature' ({err}); re-run the calibration"
            ) from None
        if not (math.isfinite(value) and value > 0):
            raise DataError(f"{path}: temperature {value} must be a positive number")
        return value

    def write_temperature(
        self, temperature: float, tta: bool = False, fitted_on: str = "val"
    ) -> Path:
        """Store a temperature fitted on split ``fitted_on`` (single view or TTA predictions)."""
        return write_json(
            self.calibration_file(tta),
            {
                "temperature": float(temperature),
                "fitted_on": f"{fitted_on} (TTA predictions)" if tta else fitted_on,
                "method": "temperature scaling",
            },
        )

    def operating_points(self, tta: bool = False) -> list[OperatingPoint] | None:
        """The operating points 05 chose (the app uses the first), or None when the study stored
        none for this run (:meth:`thresholds_chosen_on` says on which split)."""
        path = self.thresholds_file(tta)
        if not path.is_file():
            return None
        try:
            return load_thresholds(path)
        except (KeyError, TypeError, ValueError) as err:
            raise DataError(
                f"{path}: not a thresholds file ({err}); re-run the thresholds step"
            ) from None

    def thresholds_chosen_on(self, tta: bool = False) -> str | None:
        """The split the stored operating points were chosen on, or None when none are stored."""
        path = self.thresholds_file(tta)
        return thresholds_chosen_on(path) if path.is_file() else None

    def write_operating_points(
        self, points: Sequence[OperatingPoint], tta: bool = False, chosen_on: str = "val"
    ) -> Path:
        return save_thresholds(self.thresholds_file(tta), points, chosen_on)

    def conformal(self) -> StoredConformal | None:
        """The conformal sets and unknown-input threshold of step 08, or None before it ran."""
        return load_conformal(self.conformal_file)

    def write_conformal(self, stored: StoredConformal) -> Path:
        return save_conformal(self.conformal_file, stored)

    # --- ensembles -------------------------------------------------------------------------------

    @property
    def is_ensemble(self) -> bool:
        return self.ensemble_file.is_file()

    def ensemble(self) -> dict | None:
        """``ensemble.json`` as written (members, weights, how they are combined), or None."""
        if not self.is_ensemble:
            return None
        try:
            return read_json(self.ensemble_file)
        except ValueError as err:
            raise DataError(f"{self.ensemble_file}: not valid JSON ({err})") from None

    def write_ensemble(
        self, members: Sequence[str], weights: Sequence[float] | None, combine: str
    ) -> Path:
        """Record an ensemble's members by run name (siblings in the study folder, so the study
        can move) and their weights (None: equal)."""
        return write_json(
            self.ensemble_file,
            {"members": list(members), "weights": weights, "combine": combine},
        )

    def ensemble_members(self) -> tuple[list[RunFolder], list[float]]:
        """The trained runs that answer for this folder, and their weights.

        A plain run answers alone. An ensemble folder names its members by run name (siblings in
        the study folder); older files held absolute folders, or folders relative to the
        ensemble folder, and are read too.
        """
        record = self.ensemble()
        if record is None:
            return [self], [1.0]
        spec = self.ensemble_file
        members, weights = self._recorded_members(record)
        folders = [self._member(m) for m in members]
        missing = [str(f.path) for f in folders if not f.is_trained]
        if missing:
            raise DataError(f"{spec}: member run folders without checkpoints: {missing}")
        try:
            weights = [1.0] * len(folders) if weights is None else [float(w) for w in weights]
        except (TypeError, ValueError):
            weights = []
        if len(weights) != len(folders) or min(weights) < 0 or sum(weights) <= 0:
            raise DataError(f"{spec}: weights must be non-negative numbers, one per member")
        return folders, weights

    def _recorded_members(self, record: dict | list) -> tuple[list[str], list | None]:
        """``ensemble.json``'s members and weights (None: equal), as written."""
        members = record.get("members") if isinstance(record, dict) else record
        if not isinstance(members, list) or not members:
            raise DataError(
                f"{self.ensemble_file}: expected a list of run names (or {{'members': [...]}})"
            )
        weights = record.get("weights") if isinstance(record, dict) else None
        return [str(m) for m in members], weights

    def _member(self, member: str) -> RunFolder:
        path = Path(member)
        if path.is_absolute():
            return RunFolder(path)
        if len(path.parts) == 1:  # a run name: a sibling in the study folder
            return RunFolder(self.path.parent / path)
        return RunFolder((self.path / path).resolve())
