"""The study, step by step: what each numbered notebook computes, as functions a test can reach.

Notebooks create a :class:`Study` from their ``profile`` parameter and call its methods; every
number, table and figure comes from here, and every file lands where :mod:`skinlib.paths` says.
Each notebook's methods live in :mod:`skinlib.study.steps` (``eda`` 01, ``comparison`` 02/03/07,
``posthoc`` 04/05, ``xai`` 06, ``trust`` 08, ``audit`` 09, which audits 08's run) on :class:`~skinlib.study.steps.base.StudyBase`
(profile, table, runs, stored predictions, saving); they only wire the profile and runs to the
functions of their subject's module.
"""

from __future__ import annotations

from skinlib.runs.folder import ENSEMBLE_RUN
from skinlib.study.steps.audit import AuditSteps
from skinlib.study.steps.comparison import ComparisonSteps
from skinlib.study.steps.eda import ExplorationSteps
from skinlib.study.steps.trust import TrustSteps
from skinlib.study.steps.xai import ExplanationSteps

ENSEMBLE = ENSEMBLE_RUN


class Study(ExplorationSteps, ComparisonSteps, ExplanationSteps, AuditSteps, TrustSteps):
    """One profile's study: data, runs, results, figures and tables, every notebook's steps.

    Args:
        profile: profile path, relative to the project root (as notebooks give it) or absolute.
        overrides: ``section.key=value`` changes to the run config.
        retrain: train again even where a complete run with the same config exists.
    """
