"""02, 03 and 07: each run's headline metrics with intervals, and the runs compared."""

from __future__ import annotations

import pandas as pd

from skinlib.evaluation import comparison
from skinlib.evaluation.metrics import classification_report
from skinlib.evaluation.paired import paired_tests
from skinlib.evaluation.predictions import Predictions
from skinlib.external.sets import evaluate_external_sets
from skinlib.inference.ensemble import write_ensemble
from skinlib.runs.folder import ENSEMBLE_RUN
from skinlib.study.steps.posthoc import PosthocSteps


class ComparisonSteps(PosthocSteps):
    """Runs scored and compared (02, 03, 07); TTA and ensemble rows are calibrated first."""

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
        write_ensemble(self.folder(ENSEMBLE_RUN), members, weighted)
        self.calibrate(ENSEMBLE_RUN)
        self.operating_points(ENSEMBLE_RUN)
        return ENSEMBLE_RUN
