"""The sections of the thesis's methods chapter, written from what the runs recorded: profile, ``config.yaml``,
``meta.json``, ``split.csv``, ``calibration.json``, ``thresholds.json``, and the files the later
steps leave (``predictions_test_tta.csv``, ``ensemble.json``, the notebooks' tables).

A sentence about a step (TTA, maps, conformal sets, deferral, paired tests, the audit) appears only where
that step's file exists: the profile says what a step would do, not that it ran (``pipeline
--only`` skips steps).

Every sentence is built from recorded values (:mod:`skinlib.thesis.records` reads them). A setting the
runs share is stated once; a setting they do not share is stated per run, and where it should have
been shared (seed, split, package versions, commit) the text says that the runs disagree instead of
picking one. Sentences are written in :mod:`skinlib.thesis.latex`'s markup (`` `code` ``, ``[@key]``
citations of ``thesis/references.bib``, :mod:`skinlib.thesis.citations`); :mod:`skinlib.thesis.write`
renders and writes them.
"""

from __future__ import annotations

from skinlib.thesis.phrasing import name_list
from skinlib.thesis.records import StudyRecord
from skinlib.thesis.sections.audit import audit_section
from skinlib.thesis.sections.augmentation import describe_augmentation
from skinlib.thesis.sections.base import Section
from skinlib.thesis.sections.compute import compute_section
from skinlib.thesis.sections.data import data_section, preprocessing_section, split_section
from skinlib.thesis.sections.evaluation import evaluation_section
from skinlib.thesis.sections.training import (
    differences_section,
    imbalance_section,
    models_section,
    training_section,
)

__all__ = ["Section", "describe_augmentation", "methods_sections"]


def methods_sections(study: StudyRecord) -> list[Section]:
    """The methods, section by section, from a study's records."""
    if not study.architectures:
        return [
            Section(
                "Not yet trained",
                "sec:methods-data",
                [
                    [
                        f"No run of the study `{study.profile.study}` is complete yet: run the pipeline."
                    ]
                ],
            )
        ]
    sections = [
        data_section(study),
        split_section(study),
        preprocessing_section(study),
        models_section(study),
        training_section(study),
        imbalance_section(study),
        differences_section(study),
        evaluation_section(study),
        audit_section(study),
        compute_section(study),
    ]
    if study.missing:
        sections[-1].paragraphs.append(
            [
                f"Runs the profile names but that are not complete, left out: {name_list(study.missing)}."
            ]
        )
    return [s for s in sections if s is not None]
