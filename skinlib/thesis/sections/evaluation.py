"""Evaluation: metrics and their intervals, TTA, ensembling, maps, calibration, thresholds,
conformal sets and deferral, and which split fitted what: each stated only where its file exists."""

from __future__ import annotations

from collections.abc import Sequence

from skinlib.data.splits import on_split, split_name
from skinlib.evaluation.calibration import N_BINS
from skinlib.inference.scoring import TTA_VIEWS
from skinlib.runs.ledger import LEDGER, scored_before
from skinlib.thesis.citations import CONFORMAL_PAPERS, XAI_PAPERS, citation
from skinlib.thesis.phrasing import (
    fmt,
    name_list,
    per_run,
)
from skinlib.thesis.records import RunRecord, StudyRecord
from skinlib.thesis.sections.base import Section, and_list, group_unit, non_empty
from skinlib.thesis.sections.data import has_calibration


def evaluation_section(study: StudyRecord) -> Section:
    """What the evaluation steps did, each sentence only where the step's table or file exists."""
    runs = study.architectures
    unit = group_unit(runs[0])
    sentences = [
        _fitted_where_sentence(study),
        _calibration_sentence(runs),
        _thresholds_sentence(runs),
        _calibration_metrics_sentence(study),
        _interval_sentence(study, unit),
        _paired_sentence(study, unit),
        _tta_sentence(runs),
        _ensemble_sentence(study),
        _xai_sentence(study),
        _trust_sentence(study, unit),
        _test_looks_sentence(study),
    ]
    return Section("Evaluation", "sec:methods-evaluation", [non_empty(*sentences)])


def _test_looks_sentence(study: StudyRecord) -> str:
    """How many other configurations were scored on test before the reported ones, from the
    study's test-look ledger; nothing where there is no ledger or it never saw a reported
    configuration (it cannot count what came before them)."""
    if study.test_looks is None:
        return ""
    reported = study.reported_configurations
    before = scored_before(study.test_looks, reported)
    if before is None:
        return ""
    n, k = len(before), len(reported)
    others = "no configuration" if n == 0 else f"{n} distinct configuration{'s' if n > 1 else ''}"
    theirs = "the one" if k == 1 else f"the {k}"
    return (
        f"According to the study's test-look ledger (`{LEDGER}`, kept since "
        f"{study.test_looks[0].time[:10]}; a configuration is a run's settings, not its name), "
        f"{others} other than {theirs} reported here {'were' if n > 1 else 'was'} scored on the "
        "test split or an external set before the reported results were last computed."
    )


def _calibration_metrics_sentence(study: StudyRecord) -> str:
    if not (study.wrote("calibration") or study.wrote("comparison")):
        return ""
    return (
        f"Calibration is measured by the expected calibration error over {N_BINS} equal-width "
        f"confidence bins{citation('naeini2015ece')}, negative log-likelihood and Brier score. "
        "Binned errors are biased upwards in finite samples, and bootstrap resamples share the "
        f"bias{citation('kumar2019verified')}: their intervals describe the spread of the "
        "estimate, not a range for the true error, and can lie above the estimate itself."
    )


CALIBRATION_METRICS = (
    "the calibration metrics (ECE, MCE, classwise ECE, negative log-likelihood, Brier score)"
)


COMPARISON_ECE = "the ECE shown in the model comparison"


def _interval_sentence(study: StudyRecord, unit: str) -> str:
    """Which test metrics carry a grouped-bootstrap interval and which are point estimates: the
    headline metrics (07's comparison); 04's calibration errors, 08's AURC and 06's map scores
    where their tables hold ``_low``/``_high`` columns; 08's sets, deferral, subgroups and
    unknown inputs. The ECE that 07's comparison repeats has no interval of its own."""
    if not study.wrote("comparison"):
        return ""
    calibration = {"test_before", "test_after"} <= study.intervals("calibration")
    tables = (  # (table, whether it holds intervals, what it reports)
        ("trust_conformal", True, "the conformal coverage and mean set size"),
        ("trust_deferral", True, "the deferral results"),
        ("trust_subgroups", True, "the balanced accuracy per subgroup"),
        ("trust_unknown", True, "the unknown-input detection"),
        (
            "trust_aurc",
            "aurc" in study.intervals("trust_aurc"),
            "the area under the risk-coverage curve",
        ),
        ("xai_scores", bool(study.intervals("xai_scores")), "the Grad-CAM scores"),
    )
    also = [f"{CALIBRATION_METRICS} before and after scaling"] if calibration else []
    also += [words for table, ci, words in tables if ci and study.wrote(table)]
    # 07's comparison repeats the ECE without an interval; 04's table may hold the rest
    point = [
        CALIBRATION_METRICS if study.wrote("calibration") and not calibration else COMPARISON_ECE
    ]
    point += [words for table, ci, words in tables if not ci and study.wrote(table)]
    verb = "is a point estimate" if len(point) == 1 else "are point estimates"
    return (
        "On the test set, balanced accuracy, accuracy, macro F1 and macro AUC carry 95% "
        f"percentile bootstrap intervals{citation('efron1979bootstrap', 'efron1993introduction')} "
        f"from {fmt(study.profile.evaluation.n_boot)} resamples of {unit}s (all images of a "
        f"resampled {unit} enter together, as images of one {unit} are not independent)"
        + (f"; so do {and_list(also)}" if also else "")
        + f"; {and_list(point)} {verb} without an interval."
    )


def _paired_sentence(study: StudyRecord, unit: str) -> str:
    if not study.wrote("paired_tests"):
        return ""
    return (
        "Each model is compared on the same test images with the reference model, the one with "
        "the best validation balanced accuracy, by a paired bootstrap of the difference in "
        f"balanced accuracy ({fmt(study.profile.evaluation.n_boot)} resamples of {unit}s), with "
        "p-values adjusted for the number of comparisons by Holm's method; McNemar's test"
        f"{citation('mcnemar1947')} on which images each model classifies correctly is reported as "
        "a secondary check that treats images as independent."
    )


def _tta_sentence(runs: Sequence[RunRecord]) -> str:
    """Only for the runs whose TTA predictions 07 wrote (``predictions_test_tta.csv``)."""
    with_tta = [r.name for r in runs if r.tta]
    if not with_tta:
        return ""
    who = "" if len(with_tta) == len(runs) else f" (for {name_list(with_tta)})"
    return (
        f"Test-time augmentation{who} averages the predicted probabilities over the views "
        f"{', '.join(TTA_VIEWS)}."
    )


def _ensemble_sentence(study: StudyRecord) -> str:
    if not study.ensemble:
        return ""
    return (
        f"The ensemble takes the {study.ensemble.get('combine', 'mean')} of "
        f"{len(study.ensemble.get('members', []))} runs"
        + (
            ", weighted by their validation balanced accuracy"
            if study.ensemble.get("weights")
            else ""
        )
        + "."
    )


def _xai_sentence(study: StudyRecord) -> str:
    """06's maps, only once it wrote ``xai_scores``."""
    if not study.wrote("xai_scores"):
        return ""
    ev, run = study.profile.evaluation, study.architectures[0]
    name, key = XAI_PAPERS.get(ev.xai_method, (ev.xai_method, ""))
    has_masks = "mask_path" in run.split and run.split["mask_path"].notna().any()
    score = (
        "against the lesion masks by the pointing game"
        + citation("zhang2018pointing")
        + " and the share of the map's energy inside the lesion"
        if has_masks
        else "by ROAD" + citation("rong2022road")
    )
    return (
        f"Explanations are {name}{citation(key)} maps from pytorch-grad-cam"
        f"{citation('gildenblat2021gradcam')} on {fmt(ev.xai_images)} test images per "
        f"architecture, scored {score}."
    )


def _trust_sentence(study: StudyRecord, unit: str) -> str:
    """What 08 computed: its conformal and deferral tables, not the profile, say it ran; the
    split each was fitted on comes from the runs' records (conformal.json, the post-hoc split)."""
    trust = study.profile.trust
    runs = study.architectures
    parts = []
    if study.wrote("trust_conformal"):
        coverages = " and ".join(f"{c:.0%}" for c in trust.coverages)
        method = trust.set_method.upper()
        fitted = per_run(runs, lambda r: split_name(_conformal_split(r)), " split")
        parts.append(
            f"Prediction sets were built by split conformal prediction"
            f"{citation('vovk2005algorithmic')} with the {method} score"
            f"{citation(CONFORMAL_PAPERS.get(trust.set_method, ''))} and, per class, Mondrian sets, "
            f"calibrated on the {fitted} with each {unit} weighted once (images of one "
            f"{unit} are not exchangeable), for {coverages} coverage"
        )
    if study.wrote("trust_deferral"):
        chosen = per_run(runs, lambda r: on_split(r.posthoc_split))
        parts.append(
            f"the threshold for deferring an image to a dermatologist was chosen on {chosen} "
            f"for a balanced accuracy of {trust.deferral_accuracy:.2f}, the recall of the answered "
            "images averaged over every class (a class never answered counts as 0)"
            + _fixed_shares(study, trust.deferral_coverages)
        )
    if not parts:
        return ""
    text = "; ".join(parts)
    return text[0].upper() + text[1:] + "."


def _fixed_shares(study: StudyRecord, shares: Sequence[float]) -> str:
    """The fixed answered shares 08 reports beside the target, where its table holds them."""
    if "policy" not in study.tables.get("trust_deferral", frozenset()) or not shares:
        return ""
    listed = ", ".join(f"{c:.0%}" for c in shares)
    return f", and, beside it, thresholds answering {listed} of the same split's images"


def _calibration_sentence(runs: Sequence[RunRecord]) -> str:
    calibrated = [r for r in runs if r.calibration]
    if not calibrated:
        return "No run has a calibration record: the probabilities reported are uncalibrated."
    method = per_run(calibrated, lambda r: r.calibration.get("method", "not recorded"))
    fitted = per_run(calibrated, lambda r: split_name(r.calibration.get("fitted_on")))
    temps = "; ".join(f"`{r.name}` {r.calibration['temperature']:.3g}" for r in calibrated)
    cite = citation("guo2017calibration") if "temperature" in method else ""
    out = f"Probabilities were calibrated by {method}{cite}, fitted on the {fitted} split (temperature: {temps})."
    if len(calibrated) < len(runs):
        rest = [r.name for r in runs if not r.calibration]
        out += f" {name_list(rest)} had no calibration record and stay uncalibrated."
    return out


def _conformal_split(run: RunRecord) -> str:
    """The split of the run's stored sets (conformal.json), else where 08 would calibrate."""
    return run.conformal_fitted_on or run.posthoc_split


def _fitted_where_sentence(study: StudyRecord) -> str:
    """Which split chose what and which fitted what, where some run has a calibration split:
    each post-hoc step named only once its record or table exists, with the split it records."""
    runs = study.architectures
    if not has_calibration(runs):
        return ""
    chosen = ["the kept checkpoint of every run"]
    chosen += ["the architectures' recipes"] if study.profile.recipes else []
    chosen += ["the ensemble weights"] if study.ensemble and study.ensemble.get("weights") else []
    chosen += ["the reference model of the paired tests"] if study.wrote("paired_tests") else []
    trust = study.wrote("trust_conformal") or study.wrote("trust_deferral")
    chosen += ["the run the trust analysis audits"] if trust else []
    fitted = []
    if calibrated := [r for r in runs if r.calibration]:
        fitted.append(("the temperature", lambda r: r.calibration.get("fitted_on"), calibrated))
    if with_points := [r for r in runs if r.thresholds]:
        fitted.append(("the operating thresholds", lambda r: r.thresholds_chosen_on, with_points))
    if study.wrote("trust_conformal"):
        fitted.append(("the conformal sets", _conformal_split, runs))
    if study.wrote("trust_deferral"):
        fitted.append(("the deferral threshold", lambda r: r.posthoc_split, runs))
    where: dict[str, list[str]] = {}  # "calibration split" (or per run) -> steps fitted there
    for what, get, among in fitted:
        split = per_run(among, lambda r, get=get: split_name(get(r)), " split")
        where.setdefault(split, []).append(what)
    steps = "; ".join(f"{and_list(items)} on the {split}" for split, items in where.items())
    return f"Validation chose {and_list(chosen)}; " + (
        f"post-hoc calibration fitted {steps}." if fitted else "no post-hoc step has run yet."
    )


def _thresholds_sentence(runs: Sequence[RunRecord]) -> str:
    with_points = [r for r in runs if r.thresholds]
    if not with_points:
        return "No run has a stored operating point."

    def words(run: RunRecord) -> str:
        p = run.thresholds[0]
        target = "" if p.target is None else f" {p.target:g}"
        return f"{p.criterion}{target} for {' + '.join(p.positive)}"

    chosen_on = per_run(with_points, lambda r: split_name(r.thresholds_chosen_on))
    return (
        f"Operating thresholds were chosen on the {chosen_on} split for a target "
        f"{per_run(with_points, words)} and applied unchanged to the test split; the threshold "
        f"acts on the calibrated probabilities."
    )
