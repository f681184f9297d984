"""Audit (09): label issues, skin tone and the errors, each sentence stated only where 09 wrote
the table it describes (a profile says what 09 would do, not that it ran)."""

from __future__ import annotations

import pandas as pd

from skinlib import paths
from skinlib.evaluation.skin_tone import (
    DARK_L,
    GLARE_L,
    HAIR_DEPTH,
    MASK_MARGIN,
    RING_INNER,
)
from skinlib.thesis.citations import XAI_PAPERS, citation
from skinlib.thesis.phrasing import fmt
from skinlib.thesis.records import StudyRecord
from skinlib.thesis.sections.base import Section, group_unit, non_empty
from skinlib.thesis.sections.data import has_calibration

AUDIT_TABLES = ("label_issues", "skin_tone_bands", "skin_tone_performance", "confused_pairs")


def audit_section(study: StudyRecord) -> Section | None:
    """The audit's methods, or None where 09 wrote none of its tables."""
    if not any(study.wrote(t) for t in AUDIT_TABLES):
        return None
    unit = group_unit(study.architectures[0])
    sentences = [
        _audited_run_sentence(study),
        _label_issue_sentence(study),
        _skin_tone_sentence(study),
        _band_performance_sentence(study, unit),
        _errors_sentence(study, unit),
    ]
    return Section("Audit", "sec:methods-audit", [non_empty(*sentences)])


def _audited_run_sentence(study: StudyRecord) -> str:
    trust = study.profile.trust
    which = (
        f"the run `{trust.run}`, named by the profile"
        if trust.run
        else "the architecture with the best validation balanced accuracy (the run the trust "
        "analysis audits)"
    )
    return f"The audit examines {which}, with its calibrated probabilities."


def _label_issue_sentence(study: StudyRecord) -> str:
    if not study.wrote("label_issues"):
        return ""
    splits = (
        "validation, calibration and test"
        if has_calibration(study.architectures)
        else "validation and test"
    )
    text = (
        f"Possible label errors were sought by confident learning{citation('northcutt2021confident')} "
        f"(cleanlab) on the run's probabilities for the {splits} images, none of which it "
        "trained on: an image is flagged where the estimated joint distribution of given and "
        "true labels, pruned by noise rate, marks its label, and the flagged images are ranked "
        "by the probability of their given label (self-confidence), the suggested label being "
        "the most probable other class"
    )
    if "histo_flagged" in study.tables.get("label_issue_counts", frozenset()):
        text += (
            "; among the flagged, the share confirmed by histopathology is compared with that "
            "among all audited images"
        )
    return text + ". No label was changed and no image dropped: the flags are for review."


def _skin_tone_sentence(study: StudyRecord) -> str:
    if not study.wrote("skin_tone_bands"):
        return ""
    split = study.architectures[0].split
    masks = split["mask_path"].notna() if "mask_path" in split else pd.Series(False, split.index)
    if masks.all():
        where = f"outside the lesion mask, grown by {MASK_MARGIN:.1%} of the image's longer side"
    elif masks.any():
        where = (
            "outside the lesion mask where an image has one and, where not, in the border ring "
            f"outside a centred ellipse of {RING_INNER:.0%} of the half-axes"
        )
    else:
        where = (
            f"in the border ring outside a centred ellipse of {RING_INNER:.0%} of the "
            "half-axes (the images have no lesion masks)"
        )
    return (
        "Skin tone was estimated as the individual typology angle, ITA = arctan((L* - 50) / b*) "
        f"in degrees{citation('chardon1991ita')}, of the skin {where}, in CIELAB (D65) by "
        f"scikit-image{citation('vanderwalt2014skimage')}. Pixels outside the dermoscope's round "
        f"field (less its rim), darker than L* {DARK_L:g} (vignette, shadow) or brighter than "
        f"L* {GLARE_L:g} (glare), and hairs (a morphological black-hat of L* deeper than "
        f"{HAIR_DEPTH:g}) were left out, and the ITA of an image is that of the median L* and "
        "median b* of the rest; where a colour cast puts b* at or below 0 the angle is taken "
        "past 90 degrees (atan2) rather than flipped. The angles were grouped into the bands of "
        f"Del Bino and Bernerd{citation('delbino2013ita')}, as Kinyanjui et al. did for ISIC "
        f"images{citation('kinyanjui2020fairness')}. An ITA read from dermoscopic images is a "
        "proxy for skin colour under the dermoscope's light, not a Fitzpatrick skin type, and "
        f"published ITA estimates disagree on the same images{citation('kalb2023revisiting')}; "
        "it is reported because few dermatology AI studies report skin tone at all"
        f"{citation('daneshjou2021lack')} and models trained on such data lose accuracy on "
        f"darker skin{citation('daneshjou2022ddi')}."
    )


def _band_performance_sentence(study: StudyRecord, unit: str) -> str:
    if not study.wrote("skin_tone_performance"):
        return ""
    ev, trust = study.profile.evaluation, study.profile.trust
    point = (
        "; the sensitivity at the run's stored operating threshold is reported per band with "
        f"its {unit}-bootstrap interval"
        if any(c.startswith("sensitivity") for c in study.tables["skin_tone_performance"])
        else ""
    )
    return (
        "Each band of the test images was compared with the rest of the test set on the classes "
        "both contain, so that a band's case mix does not decide, by the difference in balanced "
        f"accuracy with a bootstrap interval over {fmt(ev.n_boot)} resamples of {unit}s and a "
        f"p-value adjusted over the bands by Holm's method{citation('holm1979simple')}; bands "
        f"with fewer than {trust.min_lesions} {unit}s are marked small and not tested" + point + "."
    )


def _errors_sentence(study: StudyRecord, unit: str) -> str:
    parts = []
    if study.wrote("confused_pairs"):
        parts.append(
            "the most frequent (true, predicted) class pairs on test are given with their share "
            f"of the true class's images and a {unit}-bootstrap interval"
        )
    if (paths.study_figures_dir(study.profile.study) / "top_losses.pdf").is_file():
        method = study.profile.evaluation.xai_method
        name, key = XAI_PAPERS.get(method, (method, ""))
        parts.append(
            "the misclassified test images with the largest cross-entropy of their true class "
            f"(top losses{citation('howard2020fastai')}) are shown with the {name}"
            f"{citation(key)} map of the predicted class"
        )
    if not parts:
        return ""
    text = "; ".join(parts)
    return text[0].upper() + text[1:] + "."
