"""The study, step by step: what each numbered notebook computes, as functions a test can reach.

Notebooks create a :class:`Study` from their ``profile`` parameter and call its methods; every
number, table and figure comes from here, and every file lands where :mod:`skinlib.paths` says.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from skinlib import paths
from skinlib.config import Config
from skinlib.data import eda
from skinlib.data.prepare import data_source, prepare_table, table_settings
from skinlib.errors import SkinlibError
from skinlib.evaluation import comparison
from skinlib.evaluation.calibration import calibration_report, reliability_tables
from skinlib.evaluation.conformal import conformal_grid, set_size_counts, stored_conformal
from skinlib.evaluation.metrics import classification_report
from skinlib.evaluation.ood import (
    UnknownInputs,
    unknown_detection,
    unknown_inputs,
    unknown_rule,
)
from skinlib.evaluation.paired import best_on_validation, paired_tests
from skinlib.evaluation.predictions import Predictions
from skinlib.evaluation.selective import deferral_table, risk_coverage_by_confidence
from skinlib.evaluation.subgroups import subgroup_audit
from skinlib.evaluation.thresholds import (
    operating_points_from_predictions,
    positive_roc,
    stored_point,
    targets_for,
)
from skinlib.external.sets import evaluate_external_sets
from skinlib.external.unknowns import near_unknowns
from skinlib.formatting import display_table
from skinlib.inference.ensemble import write_ensemble
from skinlib.inference.scoring import predict_table
from skinlib.inference.xai import (
    gallery_overlays,
    gallery_selection,
    gallery_titles,
    map_scores,
    summarise_cam_scores,
)
from skinlib.models.checkpoint import load_model
from skinlib.profile import imbalance_settings, load_study_profile
from skinlib.runs.folder import ENSEMBLE_RUN, RunFolder
from skinlib.thesis import plots
from skinlib.thesis.tables import write_table
from skinlib.training import train

log = logging.getLogger(__name__)
ENSEMBLE = ENSEMBLE_RUN
GALLERY_SIDE = 160  # pixels: each overlay in the gallery figure


class Study:
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

    # --- 01 EDA (the computations live in skinlib.data.eda) ------------------------------------------

    def data_source(self) -> str:
        """What the data are, in words: a folder in a format, or SynthDerm (synthetic)."""
        return data_source(self.config)

    def class_counts(self) -> pd.DataFrame:
        return eda.class_counts(self.table())

    def metadata_by_class(self) -> pd.DataFrame:
        return eda.metadata_by_class(self.table())

    def image_sizes(self, n: int = 200) -> pd.DataFrame:
        return eda.image_sizes(self.table(), n)

    def split_audit(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Counts per class and split, and lesions shared across splits (grouped vs naive)."""
        return eda.split_audit(self.table())

    # --- evaluation of runs --------------------------------------------------------------------

    def metrics_with_ci(self, preds: Predictions) -> pd.DataFrame:
        """Headline metrics with grouped-bootstrap intervals (:func:`comparison.metrics_with_ci`:
        from the uncalibrated probabilities, so a model has one AUC before and after 04)."""
        return comparison.metrics_with_ci(preds, self.evaluation.n_boot)

    def report(self, run: str, split: str = "test"):
        p = self.predictions(run, split)
        return classification_report(p.labels, p.probabilities(), p.classes)

    def headline(self, run: str, split: str = "test", tta: bool = False) -> dict:
        """One row of the comparison table: metrics with CIs, ECE, size and speed."""
        folder = self.folder(run)
        return comparison.headline_row(
            run + (" + TTA" if tta else ""),
            self.predictions(run, split, tta),
            self.temperature(run, tta),
            self.evaluation.n_boot,
            folder.meta() if folder.meta_file.is_file() else None,
        )

    def comparison_table(self, rows: list[dict]) -> pd.DataFrame:
        """Pretty table (values with CIs) from :meth:`headline` rows."""
        return comparison.comparison_table(rows)

    def reference_model(self, runs: list[str] | None = None) -> str:
        """The paired tests' reference: the best validation balanced accuracy (never test)."""
        runs = runs or self.runs
        return best_on_validation({r: self.predictions(r, "val") for r in runs})

    def comparison_tables(self, rows: list[dict]) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The comparison in two tables that each fit a thesis page (``comparison`` and
        ``comparison_details``)."""
        return comparison.comparison_tables(rows)

    def paired_tests(self, reference: str, others: list[str]) -> pd.DataFrame:
        """Each model against the reference on the same test images (grouped paired bootstrap of
        balanced accuracy, Holm-adjusted; McNemar as an image-level secondary check)."""
        table = paired_tests(
            reference,
            self.predictions(reference),
            {run: self.predictions(run) for run in others},
            n_boot=self.evaluation.n_boot,
        )
        return comparison.paired_tests_for_reading(reference, table)

    def external_results(self) -> pd.DataFrame:
        """Every architecture on every external set of the profile (``evaluation.external``),
        after the overlap guard of :func:`skinlib.external.evaluate.evaluate_external`."""
        return evaluate_external_sets([self.run_dir(r) for r in self.runs], self.evaluation)

    # --- 04 calibration ------------------------------------------------------------------------

    def calibrate(self, run: str, tta: bool = False) -> pd.DataFrame:
        """Fit the temperature on the run's :meth:`posthoc_split` (its calibration split, else
        validation), store it with the run, report before/after there and on test (test errors
        with 95% intervals over resampled lesions, ``evaluation.n_boot`` resamples).

        ``tta``: fit a temperature of its own on the TTA predictions of that split (averaging
        views changes the confidence, so the single-view temperature does not apply).
        """
        split = self.posthoc_split(run)
        fit, test = self.predictions(run, split, tta), self.predictions(run, "test", tta)
        table, t = calibration_report(
            fit.logits,
            fit.labels,
            test.logits,
            test.labels,
            split,
            test_groups=test.group,
            n_boot=self.evaluation.n_boot,
        )
        self.folder(run).write_temperature(t, tta, fitted_on=split)
        return table.assign(model=run + (" + TTA" if tta else ""))

    def reliability_tables(self, run: str, split: str = "test") -> dict[str, pd.DataFrame]:
        """Reliability before and, where a temperature was fitted, after scaling."""
        p = self.predictions(run, split)
        return reliability_tables(p.labels, p.logits, self.temperature(run))

    # --- 05 thresholds -------------------------------------------------------------------------

    def operating_points(self, run: str, positive=None, tta: bool = False) -> pd.DataFrame:
        """Operating points for the positive set: chosen on the run's :meth:`posthoc_split` (its
        calibration split, else validation; the ``val_*`` columns are measured there), reported
        on test with grouped-bootstrap intervals (lesions resampled). For the profile's positive
        set the first point (its target specificity) is stored with the run for the app and
        ``skinlib evaluate``, with the split it was chosen on.

        Thresholds apply to calibrated probabilities: the temperature 04 stored, or, for a run
        not yet calibrated, one fitted here on the same split (recorded in the table and file).
        """
        positive = list(positive or self.evaluation.positive)
        split = self.posthoc_split(run)
        fit, test = self.predictions(run, split, tta), self.predictions(run, "test", tta)
        table = operating_points_from_predictions(
            fit,
            test,
            positive,
            targets_for(self.evaluation.specificity),
            temperature=self.temperature(run, tta),
            ci="bootstrap",
            n_boot=self.evaluation.n_boot,
        )
        if positive == list(self.evaluation.positive):
            folder = self.folder(run)
            folder.write_operating_points([stored_point(table, positive)], tta, chosen_on=split)
        return table.assign(model=run + (" + TTA" if tta else ""))

    def roc(self, run: str, positive=None):
        """ROC of the positive set on test, on the probabilities the stored threshold uses."""
        p = self.predictions(run, "test")
        proba, _ = self.calibrated_probabilities(run, "test")
        return positive_roc(p.labels, proba, p.classes, list(positive or self.evaluation.positive))

    # --- 06 XAI --------------------------------------------------------------------------------

    def cam_scores(self, run: str) -> tuple[pd.DataFrame, list, np.ndarray]:
        """Grad-CAM on test images with masks (:func:`skinlib.inference.xai.map_scores`):
        pointing game and energy inside the lesion."""
        folder = self.folder(run)
        rows = folder.split_rows("test").head(self.evaluation.xai_images)
        loaded = load_model(folder)
        size = lambda: folder.meta()["image_size"]  # noqa: E731 (asked only where masks exist)
        return map_scores(loaded, rows, self.evaluation.xai_method, size, model=run)

    def cam_summary(self) -> pd.DataFrame:
        """Mean map scores per architecture, with the layer explained and its grid (cells a side)."""
        return summarise_cam_scores(pd.concat([self.cam_scores(run)[0] for run in self.runs]))

    def gallery(self, run: str, cls: str | None = None):
        """Grad-CAM overlays of true positives, false negatives and false positives of a class."""
        cls = cls or self.evaluation.positive[0]
        preds = self.predictions(run, "test")
        if cls not in preds.classes:
            cls = preds.classes[-1]
        rows = self.folder(run).split_rows("test")
        per_kind = self.evaluation.gallery_per_kind
        chosen = gallery_selection(preds, cls, per_kind, self.temperature(run) or 1.0)
        loaded = load_model(self.run_dir(run))
        images = gallery_overlays(loaded, rows, chosen, self.evaluation.xai_method, GALLERY_SIDE)
        return plots.image_gallery(images, gallery_titles(chosen, cls), ncols=max(3, per_kind * 2))

    # --- 07 comparison: TTA and ensemble ---------------------------------------------------------

    def comparison_rows(self) -> list[dict]:
        """The rows of 07's comparison: every architecture; with ``evaluation.tta`` their TTA
        rows (each with its own temperature and operating point, fitted here on the TTA
        predictions of the post-hoc split); with ``evaluation.ensemble`` the ensemble's."""
        rows = [self.headline(run) for run in self.runs]
        if self.evaluation.tta:
            for run in self.runs:
                self.calibrate(run, tta=True)
                self.operating_points(run, tta=True)
            rows += [self.headline(run, tta=True) for run in self.runs]
        if self.evaluation.ensemble:
            rows.append(self.headline(self.build_ensemble()))
        return rows

    def build_ensemble(self, runs: list[str] | None = None, weighted: bool = True) -> str:
        """The ensemble of the runs (:func:`skinlib.inference.ensemble.write_ensemble`), written
        as a run folder of its own (``ensemble``), calibrated and given operating points."""
        members = [self.folder(r) for r in runs or self.runs]
        write_ensemble(self.folder(ENSEMBLE), members, weighted)
        self.calibrate(ENSEMBLE)
        self.operating_points(ENSEMBLE)
        return ENSEMBLE

    # --- 08 trust: conformal sets, deferral, subgroups, unknown inputs ---------------------------
    # (methods only wire a run's stored predictions to skinlib.evaluation.conformal / selective / subgroups /
    # ood; every number is computed there)

    def trust_run(self) -> str:
        """The run 08 audits: ``trust.run`` if set, else the architecture best on validation
        balanced accuracy (chosen on validation, like everything 08 reports on test)."""
        if self.profile.trust.run:
            return self.profile.trust.run
        return self.reference_model()

    def fitted_temperature(self, run: str) -> float:
        """The run's temperature; 08's sets and scores need one (an error before 04 ran)."""
        t = self.temperature(run)
        if t is None:
            raise SkinlibError(f"{run} is not calibrated yet: run 04_calibration first")
        return t

    def calibrated(self, run: str, split: str) -> tuple[Predictions, np.ndarray]:
        """A split's predictions and their calibrated probabilities (the run's temperature)."""
        preds = self.predictions(run, split)
        return preds, preds.probabilities(self.fitted_temperature(run))

    def conformal_sets(
        self, run: str, calibration: str = "lesion-weighted"
    ) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
        """Every method x coverage x (marginal, Mondrian), calibrated on the lesions of the
        run's :meth:`posthoc_split` (its calibration split, else validation), on test, and the
        stored method image by image (:func:`skinlib.evaluation.conformal.conformal_grid`).

        Args:
            calibration: ``"lesion-weighted"`` (asymptotically valid) or ``"one-image"`` (one
                seeded image per lesion: the exact finite-sample guarantee); in the table.

        Returns:
            The table (one row per setting and class, ``all`` first; lesion-weighted coverage,
            image averages beside it, per-class thresholds and calibration lesions) and the test
            sets by setting.
        """
        trust = self.profile.trust
        return conformal_grid(
            self.predictions(run, self.posthoc_split(run)),
            self.predictions(run, "test"),
            self.fitted_temperature(run),
            trust.coverages,
            trust.set_method,
            self.evaluation.n_boot,
            calibration,
        )

    def store_conformal(self, run: str) -> Path:
        """Write the run's ``conformal.json``: the sets at the first coverage of ``trust`` (its
        ``set_method``, marginal, lesion-weighted, calibrated on :meth:`posthoc_split`) and the
        unknown-input threshold (calibrated maximum probability keeping 95% of validation
        images, like the unknown-input score 08 chooses on validation), for the app."""
        trust = self.profile.trust
        split = self.posthoc_split(run)
        _, vp = self.calibrated(run, "val")
        stored = stored_conformal(
            self.predictions(run, split),
            self.fitted_temperature(run),
            trust.set_method,
            trust.coverages[0],
            unknown=unknown_rule(vp),
            fitted_on=split,
        )
        return self.folder(run).write_conformal(stored)

    def risk_coverage(self, run: str) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
        """Test risk-coverage curves and AURC per confidence score (calibrated probabilities),
        the AURC with 95% intervals over resampled lesions."""
        test, tp = self.calibrated(run, "test")
        return risk_coverage_by_confidence(test.labels, tp, test.group, self.evaluation.n_boot)

    def deferral(self, run: str) -> pd.DataFrame:
        """For each confidence score: the threshold chosen on the run's :meth:`posthoc_split`
        (its calibration split, else validation; ``val_coverage`` is measured there) for the
        profile's target balanced accuracy of the answers (every class), and what it gives on
        test (with intervals and the least answered class, named so a silenced class shows)."""
        val, vp = self.calibrated(run, self.posthoc_split(run))
        test, tp = self.calibrated(run, "test")
        target = self.profile.trust.deferral_accuracy
        return deferral_table(
            val.labels,
            vp,
            test.labels,
            tp,
            test.group,
            target,
            self.evaluation.n_boot,
            classes=test.classes,
            coverages=self.profile.trust.deferral_coverages,
        )

    def subgroup_audit(self, run: str) -> pd.DataFrame:
        """Each age band, sex, site, confirmation and source against the rest of test on the
        classes both contain (difference, lesion interval, Holm p), per-class recall and AUC by
        group and the stored operating point's sensitivity by group;
        the metadata is joined from the study table by image id."""
        test, tp = self.calibrated(run, "test")
        return subgroup_audit(
            self.table(),
            test.image_id,
            test.labels,
            tp,
            test.group,
            n_boot=self.evaluation.n_boot,
            min_lesions=self.profile.trust.min_lesions,
            classes=test.classes,
            point=self._stored_point(run),
        )

    def _stored_point(self, run: str):
        """The run's first stored operating point (05), or None before 05 ran."""
        points = self.folder(run).operating_points()
        return points[0] if points else None

    def unknown_images(self, run: str) -> dict[str, UnknownInputs]:
        """Unknown inputs (:func:`skinlib.evaluation.ood.unknown_inputs`): lesions of
        ``trust.unknown_class``, a class the run never saw (drawn by SynthDerm on the demo, read
        from ``trust.unknown_root`` on real data with a known-class control,
        :func:`skinlib.external.unknowns.near_unknowns`), and blank skin with and without heavy
        artefacts."""
        trust, synth = self.profile.trust, self.config.data.synth
        classes = self.predictions(run, "val").classes
        near = None
        if trust.unknown_root and trust.unknown_class not in classes:
            ids = self.table()["image_id"]
            near = near_unknowns(
                self.folder(run), trust.unknown_root, trust.unknown_class, trust.unknown_images, ids
            )
        return unknown_inputs(
            classes,
            trust.unknown_class,
            trust.unknown_images,
            synth.size,
            synth.difficulty,
            synth.seed,
            synthetic=not self.config.data.root,
            near=near,
        )

    def unknown_detection(
        self, run: str, unknown: dict[str, UnknownInputs]
    ) -> tuple[pd.DataFrame, dict]:
        """Unknown-input detection on test (:func:`skinlib.evaluation.ood.unknown_detection`):
        the table and, per input kind, its calibrated probabilities."""
        loaded, t = load_model(self.run_dir(run)), self.fitted_temperature(run)
        rows = {s: self.folder(run).split_rows(s) for s in ("train", "val", "test")}
        return unknown_detection(loaded, t, rows, unknown, self.evaluation.n_boot)

    def unknown_set_sizes(self, run: str, probas: dict) -> tuple[dict[str, pd.Series], float]:
        """The stored conformal sets (``conformal.json``) of each kind of input: images per set
        size (:func:`skinlib.evaluation.conformal.set_size_counts`) and the sets' coverage."""
        stored = self.folder(run).conformal()
        predictor = stored.predictor()
        sizes = {kind: set_size_counts(predictor.predict_sets(p)) for kind, p in probas.items()}
        return sizes, stored.coverage
