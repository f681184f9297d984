"""The study's core: its profile, data, runs, stored predictions and where results are saved.

The notebook steps (:mod:`skinlib.study.steps`) build on it; :class:`skinlib.study.front.Study`
joins them.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from skinlib import paths
from skinlib.config import Config
from skinlib.data.prepare import data_source, prepare_table, table_settings
from skinlib.evaluation.paired import best_on_validation
from skinlib.evaluation.predictions import Predictions
from skinlib.formatting import display_table
from skinlib.inference.scoring import predict_table
from skinlib.models.checkpoint import load_model
from skinlib.profile import imbalance_settings, load_study_profile
from skinlib.runs.folder import RunFolder
from skinlib.thesis import plots
from skinlib.thesis.tables import write_table
from skinlib.training import train


class StudyBase:
    """One profile's study: data, runs, results, figures and tables.

    Args:
        profile: profile path, relative to the project root (as notebooks give it) or absolute.
        overrides: ``section.key=value`` changes to the run config.
        retrain: train again even where a complete run with the same config exists.
    """

    def __init__(
        self, profile: str | Path = "params/demo.yaml", overrides=(), retrain: bool = False
    ):
        self.profile = load_study_profile(profile, list(overrides))
        self.name = self.profile.study
        self.config: Config = self.profile.config
        self.evaluation = self.profile.evaluation
        self.retrain = retrain
        self.dir = paths.study_dir(self.name)
        self.figures_dir = paths.study_figures_dir(self.name)
        self.tables_dir = paths.generated_tables_dir(self.name)
        self._tables: dict[str, pd.DataFrame] = {}  # by table_settings: one per distinct table
        plots.set_style()

    def __repr__(self) -> str:
        return (
            f"Study({self.name!r}: data={self.data_source()}, architectures={self.profile.architectures}, "
            f"results in {self.dir})"
        )

    def data_source(self) -> str:
        """What the data are, in words: a folder in a format, or SynthDerm (synthetic)."""
        return data_source(self.config)

    # --- data and runs -------------------------------------------------------------------------

    def table(self, cfg: Config | None = None) -> pd.DataFrame:
        """The labelled images with their (grouped, stratified) split: the study's, or that of a
        run's config where its data settings differ (prepared once per distinct setting)."""
        cfg = cfg or self.config
        key = table_settings(cfg)
        if key not in self._tables:
            self._tables[key] = prepare_table(cfg)
        return self._tables[key]

    def train(self, cfg: Config) -> Path:
        """Train a run on its own config's table, or reuse the complete run with this exact config
        (resumes a partial one)."""
        return train(cfg, self.table(cfg), resume=not self.retrain)

    def train_architecture(self, arch: str) -> Path:
        return self.train(self.profile.run_config(arch))

    def train_strategy(self, name: str) -> Path:
        return self.train(self.profile.strategy_config(name))

    def strategy_settings(self) -> pd.DataFrame:
        """What each imbalance arm trained with (loss, weights, sampler, selection rate)."""
        rows = {
            name: imbalance_settings(self.profile.strategy_config(name))
            for name in self.profile.imbalance.strategies
        }
        return pd.DataFrame.from_dict(rows, orient="index").rename_axis("strategy")

    def run_dir(self, run: str) -> Path:
        return paths.run_dir(self.name, run)

    @property
    def runs(self) -> list[str]:
        """The architecture runs of the study (run name = architecture)."""
        return list(self.profile.architectures)

    def folder(self, run: str) -> RunFolder:
        """The run's folder (:class:`~skinlib.runs.folder.RunFolder`): its files and stored state."""
        return RunFolder(self.run_dir(run))

    def predictions(self, run: str, split: str = "test", tta: bool = False) -> Predictions:
        """A run's predictions on a split (TTA ones are computed once and stored beside them)."""
        folder = self.folder(run)
        path = folder.predictions_file(split, tta)
        if tta and not path.is_file():
            loaded = load_model(folder)
            predict_table(loaded, folder.split_rows(split), tta=True).save(path)
        return folder.predictions(split, tta)

    def temperature(self, run: str, tta: bool = False) -> float | None:
        """The temperature 04 fitted, or None where the run is not calibrated."""
        return self.folder(run).temperature(tta)

    def posthoc_split(self, run: str | None = None) -> str:
        """The split post-hoc calibration fits on (temperature, thresholds, conformal sets,
        deferral): ``calibration`` where the run has one, else ``val``
        (:meth:`skinlib.runs.folder.RunFolder.posthoc_split` decides). Without ``run``: that of the
        study's architecture runs, for a caption (both, joined by "/", if they differ)."""
        if run is not None:
            return self.folder(run).posthoc_split()
        found = dict.fromkeys(self.posthoc_split(r) for r in self.runs)
        return "/".join(found) if found else "val"

    def calibrated_probabilities(self, run: str, split: str = "test", tta: bool = False):
        """``(probabilities, temperature)``: calibrated where a temperature was fitted, else the
        raw softmax with temperature None, so that a caller can say "not calibrated"."""
        t = self.temperature(run, tta)
        return self.predictions(run, split, tta).probabilities(t or 1.0), t

    def history(self, run: str) -> pd.DataFrame:
        return self.folder(run).history()

    # --- saving --------------------------------------------------------------------------------

    def save_figure(self, fig, name: str) -> None:
        """Write the figure as PDF and PNG under ``figures/<study>/`` (silently: a cell that ends
        with a save shows the figure, not a list of paths)."""
        plots.save_figure(fig, self.figures_dir / name)

    def save_table(self, df: pd.DataFrame, name: str, caption: str):
        """Write the table for the thesis (LaTeX, CSV, JSON) and return it as the notebook shows
        it: formatted like the thesis table, without the bare integer index."""
        write_table(df, self.tables_dir / name, caption, f"tab:{name}")
        return display_table(df)

    def reference_model(self, runs: list[str] | None = None) -> str:
        """The paired tests' reference: the best validation balanced accuracy (never test)."""
        runs = runs or self.runs
        return best_on_validation({r: self.predictions(r, "val") for r in runs})
