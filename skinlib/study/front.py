"""The study, step by step: what each numbered notebook computes, as functions a test can reach.

Notebooks create a :class:`Study` from their ``profile`` parameter and call its methods; every
number, table and figure comes from here, and every file lands where :mod:`skinlib.paths` says.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from skinlib import paths
from skinlib.config import Config
from skinlib.data import eda, load_table
from skinlib.data.images import load_image
from skinlib.data.splits import CALIBRATION
from skinlib.data.tables import data_source, prepare_table, table_settings
from skinlib.data.transforms import centre_square
from skinlib.errors import DataError, SkinlibError
from skinlib.evaluation import comparison
from skinlib.evaluation.calibration import calibration_report, logits_to_proba, reliability_tables
from skinlib.evaluation.conformal import conformal_grid, stored_conformal
from skinlib.evaluation.metrics import classification_report
from skinlib.evaluation.ood import (
    KNOWN,
    VALIDATION,
    Mahalanobis,
    UnknownInputs,
    blank_skin,
    detection_table,
    logits_and_features,
    unknown_rule,
    unknown_scores,
    unseen_class_images,
    unseen_class_rows,
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
from skinlib.external.guard import external_set
from skinlib.external.sets import evaluate_external_sets
from skinlib.formatting import display_table
from skinlib.inference.ensemble import ensemble, ensemble_weights
from skinlib.inference.scoring import predict_table
from skinlib.inference.xai import (
    compute_cams,
    gallery_selection,
    gallery_titles,
    mask_as_seen,
    overlay,
    score_cams,
    summarise_cam_scores,
)
from skinlib.models.architectures import cam_spec
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

    def predictions(self, run: str, split: str = "test", tta: bool = False) -> Predictions:
        """A run's predictions on a split (TTA ones are computed once and stored beside them)."""
        folder = RunFolder(self.run_dir(run))
        path = folder.predictions_file(split, tta)
        if tta and not path.is_file():
            loaded = load_model(folder)
            predict_table(loaded, folder.split_rows(split), tta=True).save(path)
        return folder.predictions(split, tta)

    def temperature(self, run: str, tta: bool = False) -> float | None:
        """The temperature 04 fitted, or None where the run is not calibrated."""
        return RunFolder(self.run_dir(run)).temperature(tta)

    def posthoc_split(self, run: str | None = None) -> str:
        """The split post-hoc calibration fits on (temperature, thresholds, conformal sets,
        deferral): ``calibration`` where the run has one, else ``val``
        (:meth:`skinlib.runs.folder.RunFolder.posthoc_split` decides). Without ``run``: that of the
        study's architecture runs, for a caption (both, joined by "/", if they differ)."""
        if run is not None:
            return RunFolder(self.run_dir(run)).posthoc_split()
        found = dict.fromkeys(self.posthoc_split(r) for r in self.runs)
        return "/".join(found) if found else "val"

    def calibrated_probabilities(self, run: str, split: str = "test", tta: bool = False):
        """``(probabilities, temperature)``: calibrated where a temperature was fitted, else the
        raw softmax with temperature None, so that a caller can say "not calibrated"."""
        t = self.temperature(run, tta)
        return self.predictions(run, split, tta).probabilities(t or 1.0), t

    def history(self, run: str) -> pd.DataFrame:
        return RunFolder(self.run_dir(run)).history()

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
        folder = RunFolder(self.run_dir(run))
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
        RunFolder(self.run_dir(run)).write_temperature(t, tta, fitted_on=split)
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
            folder = RunFolder(self.run_dir(run))
            folder.write_operating_points([stored_point(table, positive)], tta, chosen_on=split)
        return table.assign(model=run + (" + TTA" if tta else ""))

    def roc(self, run: str, positive=None):
        """ROC of the positive set on test, on the probabilities the stored threshold uses."""
        p = self.predictions(run, "test")
        proba, _ = self.calibrated_probabilities(run, "test")
        return positive_roc(p.labels, proba, p.classes, list(positive or self.evaluation.positive))

    # --- 06 XAI --------------------------------------------------------------------------------

    def _images(self, run: str, rows: pd.DataFrame):
        loaded = load_model(self.run_dir(run))
        pil = [load_image(p) for p in rows["path"]]
        return loaded, pil, torch.stack([loaded.transform(im) for im in pil])

    def cam_scores(self, run: str) -> tuple[pd.DataFrame, list, np.ndarray]:
        """Grad-CAM on test images with masks: pointing game and energy inside the lesion."""
        rows = RunFolder(self.run_dir(run)).split_rows("test").head(self.evaluation.xai_images)
        loaded, pil, x = self._images(run, rows)
        spec = cam_spec(loaded.model, x.shape[-1])
        cams = compute_cams(loaded.model, x, method=self.evaluation.xai_method, spec=spec)
        masks = None
        if "mask_path" in rows and rows["mask_path"].notna().all():
            size = RunFolder(self.run_dir(run)).meta()["image_size"]
            masks = [mask_as_seen(m, size) for m in rows["mask_path"]]
        scores = score_cams(loaded.model, x, cams, masks)
        return scores.assign(model=run, layer=spec.layer, grid=spec.grid), pil, cams

    def cam_summary(self) -> pd.DataFrame:
        """Mean map scores per architecture, with the layer explained and its grid (cells a side)."""
        return summarise_cam_scores(pd.concat([self.cam_scores(run)[0] for run in self.runs]))

    def gallery(self, run: str, cls: str | None = None):
        """Grad-CAM overlays of true positives, false negatives and false positives of a class."""
        cls = cls or self.evaluation.positive[0]
        preds = self.predictions(run, "test")
        if cls not in preds.classes:
            cls = preds.classes[-1]
        rows = RunFolder(self.run_dir(run)).split_rows("test")
        per_kind = self.evaluation.gallery_per_kind
        chosen = gallery_selection(preds, cls, per_kind, self.temperature(run) or 1.0)
        images = []
        for _, picked in chosen.groupby("kind", sort=False):
            loaded, pil, x = self._images(run, rows.iloc[picked["row"].tolist()])
            cams = compute_cams(loaded.model, x, method=self.evaluation.xai_method)
            for im, cam in zip(pil, cams, strict=True):
                images.append(overlay(np.asarray(centre_square(im, GALLERY_SIDE)), cam))
        return plots.image_gallery(images, gallery_titles(chosen, cls), ncols=max(3, per_kind * 2))

    # --- 07 comparison: TTA and ensemble ---------------------------------------------------------

    def build_ensemble(self, runs: list[str] | None = None, weighted: bool = True) -> str:
        """Average the runs' calibrated probabilities (weighted by validation balanced accuracy);
        written as a run folder of its own (``ensemble``) so every step and the app can use it."""
        runs = runs or self.runs
        weights = ensemble_weights([self.predictions(r, "val") for r in runs]) if weighted else None
        out = RunFolder(self.run_dir(ENSEMBLE))
        out.path.mkdir(parents=True, exist_ok=True)
        uncalibrated = [r for r in runs if self.temperature(r) is None]
        if uncalibrated:
            raise SkinlibError(
                f"the ensemble averages calibrated probabilities, but {uncalibrated} have no "
                "temperature yet: run 04_calibration first"
            )
        temperatures = [self.temperature(r) for r in runs]
        splits = ["val", "test"]
        if all(self.posthoc_split(r) == CALIBRATION for r in runs):
            splits.append(CALIBRATION)  # so the ensemble calibrates where its members did
        else:  # an earlier ensemble's would make it calibrate on a split its members lack
            out.predictions_file(CALIBRATION).unlink(missing_ok=True)
        for split in splits:
            members = [self.predictions(r, split) for r in runs]
            out.write_predictions(ensemble(members, weights, temperatures), split)
        out.split_file.write_bytes(RunFolder(self.run_dir(runs[0])).split_file.read_bytes())
        out.write_ensemble(runs, weights, "mean of calibrated probabilities")
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
        return RunFolder(self.run_dir(run)).write_conformal(stored)

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
        points = RunFolder(self.run_dir(run)).operating_points()
        return points[0] if points else None

    def unknown_images(self, run: str) -> dict[str, UnknownInputs]:
        """Unknown inputs: lesions of ``trust.unknown_class``, a class the run never saw (near;
        drawn by SynthDerm on the demo, read from ``trust.unknown_root`` on real data, leaving
        out any image id of the study's own table), and blank skin with and without heavy
        artefacts (far).

        On real data the near unknowns come from another dataset, so they differ from the test
        images in source as well as class: beside them come images of the run's own classes from
        that source (after the overlap guard of external sets), their control. The demo's
        SynthDerm unknowns share the test images' generator and need none.
        """
        trust, synth = self.profile.trust, self.config.data.synth
        classes = self.predictions(run, "val").classes
        n, size = trust.unknown_images, synth.size
        out = {}
        near = f"unseen class ({trust.unknown_class})"
        if trust.unknown_class in classes:
            log.info("%s is one of the run's classes: no near-unknown inputs", trust.unknown_class)
        elif trust.unknown_root:
            out.update(self._unseen_class_from(trust.unknown_root, trust.unknown_class, n, run))
            if near not in out:
                log.warning("%s: no %s image outside the study", trust.unknown_root, near)
        elif not self.config.data.root:
            out[near] = UnknownInputs(
                unseen_class_images(trust.unknown_class, n, size, synth.difficulty, synth.seed)
            )
        out["blank skin"] = UnknownInputs([blank_skin(i, size) for i in range(n)])
        out["skin with artefacts"] = UnknownInputs(
            [blank_skin(n + i, size, artefacts=True) for i in range(n)]
        )
        return out

    def _unseen_class_from(self, root: str, label: str, n: int, run: str) -> dict:
        """Up to ``n`` ISIC 2019 images of ``label`` not in the study's own table, with their
        lesion ids, and up to ``n`` ISIC 2019 images of the run's classes that pass the overlap
        guard of external sets (:func:`skinlib.external.guard.external_set`) as their control."""
        table = load_table(root, "isic2019", skip_missing=True)
        rows = unseen_class_rows(table, label, self.table()["image_id"], n)
        if rows.empty:
            return {}
        near = f"unseen class ({label})"
        try:
            loaded = load_model(self.run_dir(run))
            guarded = external_set(
                loaded, root, "isic2019", drop_unmapped=True, progress=False, skip_missing=True
            )
            known = guarded.table
        except DataError as err:
            log.warning("%s: no known-class control for %s (%s)", root, near, err)
            return {near: UnknownInputs([load_image(p) for p in rows["path"]], rows["group"])}
        known = known.sample(min(n, len(known)), random_state=0)
        control = "known classes (ISIC 2019)"
        return {
            near: UnknownInputs([load_image(p) for p in rows["path"]], rows["group"], control),
            control: UnknownInputs([load_image(p) for p in known["path"]], known["group"]),
        }

    def unknown_detection(
        self, run: str, unknown: dict[str, UnknownInputs]
    ) -> tuple[pd.DataFrame, dict]:
        """MSP, energy and Mahalanobis (Ledoit-Wolf, fitted on all training features) on the
        test images against each kind of unknown image, and near unknowns against their
        known-class control: AUROC and FPR at 95% TPR with lesion intervals.

        The validation images are scored too: :func:`skinlib.evaluation.ood.detection_table` chooses each
        kind's score on them and a held-out half of that kind's unknown lesions, and reports on
        test and the other half.

        Returns:
            The table and, per input kind (``known`` first), its calibrated probabilities (for
            the conformal sets of unknown inputs).
        """
        loaded, t = load_model(self.run_dir(run)), self.fitted_temperature(run)
        rows_of = {s: RunFolder(self.run_dir(run)).split_rows(s) for s in ("train", "val", "test")}
        train = rows_of["train"]  # all of them: Ledoit-Wolf needs no subsample to stay invertible
        _, train_feats = logits_and_features(loaded, [load_image(p) for p in train["path"]])
        labels = np.array([loaded.classes.index(c) for c in train["label"]])
        maha = Mahalanobis().fit(train_feats, labels)
        test = rows_of["test"]
        inputs = {
            VALIDATION: [load_image(p) for p in rows_of["val"]["path"]],
            KNOWN: [load_image(p) for p in test["path"]],
            **{kind: u.images for kind, u in unknown.items()},
        }
        scores, probas = {}, {}
        for kind, images in inputs.items():
            logits, feats = logits_and_features(loaded, images)
            scores[kind] = unknown_scores(logits, feats, maha, t)
            if kind != VALIDATION:
                probas[kind] = logits_to_proba(logits, t)
        groups = {kind: u.groups for kind, u in unknown.items()}
        controls = {kind: u.control for kind, u in unknown.items() if u.control}
        table = detection_table(scores, test["group"], self.evaluation.n_boot, groups, controls)
        return table, probas
