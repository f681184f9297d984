"""08: conformal sets, deferral, subgroups and unknown inputs of the audited run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from skinlib.errors import SkinlibError
from skinlib.evaluation.conformal import conformal_grid, set_size_counts, stored_conformal
from skinlib.evaluation.ood import (
    UnknownInputs,
    unknown_detection,
    unknown_inputs,
    unknown_rule,
)
from skinlib.evaluation.predictions import Predictions
from skinlib.evaluation.selective import deferral_table, risk_coverage_by_confidence
from skinlib.evaluation.subgroups import subgroup_audit
from skinlib.external.unknowns import near_unknowns
from skinlib.models.checkpoint import load_model
from skinlib.study.steps.base import StudyBase


class TrustSteps(StudyBase):
    """What 08_trust shows; methods only wire a run's stored predictions to
    :mod:`skinlib.evaluation` (conformal, selective, subgroups, ood): every number is computed there."""

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
