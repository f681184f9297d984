"""04 and 05: what is fitted after training on the post-hoc split (temperature, thresholds)."""

from __future__ import annotations

import pandas as pd

from skinlib.evaluation.calibration import calibration_report, reliability_tables
from skinlib.evaluation.thresholds import (
    operating_points_from_predictions,
    positive_roc,
    stored_point,
    targets_for,
)
from skinlib.study.steps.base import StudyBase


class PosthocSteps(StudyBase):
    """Calibration (04) and operating points (05): fitted on the run's post-hoc split, reported on test."""

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
