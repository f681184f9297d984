"""The TRIPOD+AI reporting checklist (Collins et al., BMJ 2024;385:e078378): its 27 items (52
with their parts 3a-27c), and where this study reports each, or why it does not.

Items are paraphrased from the published statement; check the wording against it before
submitting. Like CLAIM (:mod:`skinlib.thesis.claim`, whose item, answer and rendering this module
shares), each item is resolved against what the study produced: a table or section exists only
once its notebook ran, so an item points only at what exists. Items that only the author can
answer (ethics, funding, the discussion) say so.
"""

from __future__ import annotations

from skinlib.thesis.claim import (
    AUTHOR,
    NOT_REPORTED,
    REPORTED,
    Answer,
    Available,
    Checklist,
    ClaimRow,
    Item,
    resolve,
)

TRIPOD = Checklist(
    "The TRIPOD+AI checklist", "tab:tripod", "collins2024tripod", "skinlib.thesis.tripod"
)

_I, _M, _O, _R, _D = "Introduction", "Methods", "Open science", "Results", "Discussion"

ITEMS: tuple[Item, ...] = (
    Item("1", "Title", "Title", "Identify the study as developing or evaluating a prediction model, the target population and the outcome predicted."),
    Item("2", "Abstract", "Abstract", "See the TRIPOD+AI for Abstracts checklist."),
    Item("3a", _I, "Background", "Healthcare context (diagnostic or prognostic) and rationale for the model, with references to existing models."),
    Item("3b", _I, "Background", "Target population and the model's intended purpose in the care pathway, and its intended users."),
    Item("3c", _I, "Background", "Known health inequalities between sociodemographic groups."),
    Item("4", _I, "Objectives", "Study objectives: development, evaluation, or both."),
    Item("5a", _M, "Data", "Sources of data for development and evaluation, the rationale for using them and their representativeness."),
    Item("5b", _M, "Data", "Dates of the collected data (start and end of accrual, end of follow-up)."),
    Item("6a", _M, "Participants", "Study setting, including the number and location of centres."),
    Item("6b", _M, "Participants", "Eligibility criteria for participants."),
    Item("6c", _M, "Participants", "Treatments received, and how they were handled, if relevant."),
    Item("7", _M, "Data preparation", "Data pre-processing and quality checking, and whether similar across sociodemographic groups."),
    Item("8a", _M, "Outcome", "Definition of the outcome predicted, how and when assessed, and whether assessed alike across groups."),
    Item("8b", _M, "Outcome", "Qualifications and demographics of outcome assessors where assessment is subjective."),
    Item("8c", _M, "Outcome", "Actions to blind the assessment of the outcome."),
    Item("9a", _M, "Predictors", "Choice of initial predictors and any pre-selection before model building."),
    Item("9b", _M, "Predictors", "Definition of all predictors, how and when measured."),
    Item("9c", _M, "Predictors", "Qualifications and demographics of predictor assessors where measurement is subjective."),
    Item("10", _M, "Sample size", "How the study size was arrived at, for development and evaluation, and why it suffices."),
    Item("11", _M, "Missing data", "How missing data were handled, and reasons for omitting data."),
    Item("12a", _M, "Analytical methods", "How the data were used for development and evaluation, including partitioning."),
    Item("12b", _M, "Analytical methods", "How predictors were handled (functional form, rescaling, standardisation)."),
    Item("12c", _M, "Analytical methods", "Type of model, rationale, model-building steps including hyperparameter tuning, internal validation."),
    Item("12d", _M, "Analytical methods", "How heterogeneity of parameters and performance across clusters was handled."),
    Item("12e", _M, "Analytical methods", "Measures and plots of performance (discrimination, calibration, clinical utility) and how models are compared."),
    Item("12f", _M, "Analytical methods", "Model updating (e.g. recalibration) arising from the evaluation."),
    Item("12g", _M, "Analytical methods", "For evaluation, how the model's predictions were calculated."),
    Item("13", _M, "Class imbalance", "Whether and how class imbalance methods were used, and any recalibration after them."),
    Item("14", _M, "Fairness", "Approaches used to address model fairness, and their rationale."),
    Item("15", _M, "Model output", "The model's output (probabilities, classes), and how any thresholds were chosen."),
    Item("16", _M, "Training versus evaluation", "Differences between development and evaluation data in setting, eligibility, outcome and predictors."),
    Item("17", _M, "Ethical approval", "The ethics committee that approved the study, and consent or its waiver."),
    Item("18a", _O, "Funding", "Sources of funding and the role of the funders."),
    Item("18b", _O, "Conflicts of interest", "Conflicts of interest and financial disclosures of all authors."),
    Item("18c", _O, "Protocol", "Where the protocol can be accessed, or that none was prepared."),
    Item("18d", _O, "Registration", "Registration of the study, or that it was not registered."),
    Item("18e", _O, "Data sharing", "Availability of the study data."),
    Item("18f", _O, "Code sharing", "Availability of the analytical code."),
    Item("19", "Patient and public involvement", "Involvement", "Patient and public involvement in the study, or that there was none."),
    Item("20a", _R, "Participants", "Flow of participants, with the numbers with and without the outcome."),
    Item("20b", _R, "Participants", "Characteristics overall and per data source: key predictors, demographics, sample size, outcome events, missing data."),
    Item("20c", _R, "Participants", "For evaluation, the distribution of important predictors compared with the development data."),
    Item("21", _R, "Model development", "Participants and outcome events in each analysis (development, tuning, evaluation)."),
    Item("22", _R, "Model specification", "The full model (code, object, interface) so that others can predict and evaluate, and restrictions on access."),
    Item("23a", _R, "Model performance", "Performance estimates with confidence intervals, including for key subgroups."),
    Item("23b", _R, "Model performance", "Heterogeneity of performance across clusters, if examined."),
    Item("24", _R, "Model updating", "Results of any model updating, and the updated model's performance."),
    Item("25", _D, "Interpretation", "Overall interpretation, including fairness, in the context of the objectives and previous studies."),
    Item("26", _D, "Limitations", "Limitations (sample, size, overfitting, missing data) and their effect on bias, uncertainty and generalisability."),
    Item("27a", _D, "Usability", "Known limitations with poor-quality or unavailable input data."),
    Item("27b", _D, "Usability", "Whether users interact with the input data or the model, and the expertise they need."),
    Item("27c", _D, "Usability", "Next steps for research, with a view to applicability and generalisability."),
)  # fmt: skip


def _fairness(a: Available) -> Answer:
    """Item 14: 08's subgroup audit and 09's skin-tone bands where they ran; no method is
    claimed that changed the model for fairness (none does)."""
    parts = {
        "tab:trust_subgroups": "performance compared across age, sex, site and confirmation groups",
        "tab:skin_tone_performance": "performance per skin-tone band (ITA)",
    }
    shown = [lbl for lbl in parts if lbl in a.labels]
    if not shown:
        return Answer(
            NOT_REPORTED, note="no fairness analysis ran (08 and 09 wrote no group table)"
        )
    return Answer(
        REPORTED,
        a.refs(*shown),
        "; ".join(parts[lbl] for lbl in shown) + "; no fairness constraint was applied in training",
    )


def _subgroup_performance(a: Available) -> Answer:
    """Item 23a: intervals for the models, and for subgroups once 08 or 09 wrote them."""
    groups = a.refs("tab:trust_subgroups", "tab:skin_tone_performance")
    note = "95% lesion-bootstrap intervals" + ("; subgroups" if groups else "; no subgroups")
    return Answer(REPORTED, a.refs("tab:comparison", "tab:calibration", *groups), note)


def _data_preparation(a: Available) -> Answer:
    """Item 7: preprocessing and the data checks; label quality once 09 flagged label issues."""
    labels = a.refs("sec:methods-preprocessing", "sec:methods-data", "tab:label_issue_counts")
    note = "images validated, unreadable ones skipped and counted"
    if "tab:label_issue_counts" in a.labels:
        note += "; possible label errors flagged for review (nothing relabelled)"
    return Answer(REPORTED, labels, note)


def _missing(a: Available) -> Answer:
    skipped = "unreadable or missing images are skipped and counted"
    if not a.metadata_runs:
        return Answer(REPORTED, a.refs("sec:methods-data"), f"{skipped}; metadata are not inputs")
    return Answer(
        REPORTED,
        a.refs("sec:methods-data", "sec:methods-models"),
        f"{skipped}; a missing age, sex or site is its own level in {', '.join(a.metadata_runs)}",
    )


def _predictors(a: Available) -> Answer:
    """Item 9b: the image (and, where a run used them, age, sex and site)."""
    words = "the dermoscopic image" + (", age, sex and site" if a.metadata_runs else "")
    return Answer(REPORTED, a.refs("sec:methods-preprocessing", "sec:methods-models"), words)


def _answers(a: Available) -> dict[str, Answer]:
    """Each item's answer for this study."""
    data = a.refs("sec:methods-data")
    synthetic = "the images are synthetic (SynthDerm), so there are no patients"

    def na(why: str) -> Answer:
        return Answer(NOT_REPORTED, note=f"not applicable: {why}")

    retrospective = "a retrospective study of a public image set"
    return {
        "1": Answer(AUTHOR, note="title: a deep-learning model classifying dermoscopic images of skin lesions"),
        "2": Answer(AUTHOR, note="abstract (TRIPOD+AI for Abstracts)"),
        "3a": Answer(AUTHOR, note="introduction: diagnostic context and existing models"),
        "3b": Answer(AUTHOR, note="introduction: intended use and users"),
        "3c": Answer(AUTHOR, note="introduction: known inequalities (e.g. skin tone in dermatology data sets)"),
        "4": Answer(REPORTED, a.refs("sec:methods-models", "sec:architectures"), "model development and internal evaluation"),
        "5a": Answer(REPORTED, data) if a.synthetic else Answer(REPORTED, data, "the public release; its representativeness is the author's to discuss"),
        "5b": na(synthetic) if a.synthetic else Answer(AUTHOR, note="the collection dates from the data set's paper"),
        "6a": na(synthetic) if a.synthetic else Answer(AUTHOR, note="the centres from the data set's paper"),
        "6b": Answer(REPORTED, a.refs("sec:methods-data", "tab:eda_counts"), "every image of the source with a study class"),
        "6c": na("treatments do not enter a diagnostic image classifier"),
        "7": _data_preparation(a),
        "8a": Answer(REPORTED, data, "the diagnosis class of each image"),
        "8b": na(synthetic) if a.synthetic else Answer(AUTHOR, note="who confirmed the diagnoses (e.g. HAM10000 dx_type), from the data set's paper"),
        "8c": Answer(NOT_REPORTED, note="the labels are those published with the data set; no blinding was possible in this study"),
        "9a": _predictors(a),
        "9b": _predictors(a),
        "9c": na("the predictors are images and recorded metadata, not assessments"),
        "10": Answer(REPORTED, a.refs("sec:methods-split", "tab:split_audit"), "all available images; no sample-size calculation; precision shown by the intervals"),
        "11": _missing(a),
        "12a": Answer(REPORTED, a.refs("sec:methods-split", "tab:split_audit")),
        "12b": _predictors(a),
        "12c": Answer(REPORTED, a.refs("sec:methods-models", "sec:methods-training", "sec:methods-imbalance", "sec:methods-differences")),
        "12d": na(synthetic) if a.synthetic else Answer(NOT_REPORTED, note="no cluster (centre) identifiers are used; heterogeneity across sources is shown only by external sets where evaluated"),
        "12e": Answer(REPORTED, a.refs("sec:methods-evaluation", "tab:comparison", "tab:calibration", "tab:paired_tests")),
        "12f": Answer(REPORTED, a.refs("sec:methods-evaluation", "tab:calibration"), "temperature scaling"),
        "12g": Answer(REPORTED, a.refs("sec:methods-evaluation", "sec:methods-compute"), "the code at the recorded commit"),
        "13": Answer(REPORTED, a.refs("sec:methods-imbalance", "sec:imbalance", "tab:imbalance")),
        "14": _fairness(a),
        "15": Answer(REPORTED, a.refs("sec:methods-evaluation", "tab:operating_points"), "class probabilities; thresholds chosen on validation"),
        "16": Answer(REPORTED, a.refs(*[lbl for lbl in a.labels if lbl.startswith("tab:external")])) if a.external else na("the test split comes from the same source as the training data"),
        "17": na(synthetic) if a.synthetic else Answer(AUTHOR, note=f"ethics: {retrospective}, published with its own approval"),
        "18a": Answer(AUTHOR, note="funding and the role of funders"),
        "18b": Answer(AUTHOR, note="conflicts of interest"),
        "18c": Answer(REPORTED, a.refs("sec:methods-compute"), "the profile and the code at the recorded commit are the protocol"),
        "18d": Answer(AUTHOR, note="registration, or that the study was not registered"),
        "18e": Answer(AUTHOR, note="where the data can be obtained"),
        "18f": Answer(AUTHOR, note="where the code can be obtained"),
        "19": Answer(AUTHOR, note="patient and public involvement, or none"),
        "20a": Answer(REPORTED, a.refs("tab:eda_counts", "tab:split_audit"), "counts; no flow diagram is drawn"),
        "20b": Answer(REPORTED, a.refs("tab:eda_counts", "tab:split_audit", "tab:skin_tone_bands")),
        "20c": Answer(REPORTED, a.refs("tab:split_audit", "tab:skin_tone_bands"), "class and metadata balance across the splits"),
        "21": Answer(REPORTED, a.refs("sec:methods-split", "tab:split_audit")),
        "22": Answer(REPORTED, a.refs("sec:methods-models", "sec:methods-compute"), "the run folders hold each model's checkpoint and configuration"),
        "23a": _subgroup_performance(a),
        "23b": Answer(NOT_REPORTED, note="no clusters (centres) were examined"),
        "24": Answer(REPORTED, a.refs("tab:calibration"), "recalibration by temperature"),
        "25": Answer(AUTHOR, note="discussion: interpretation, fairness"),
        "26": Answer(AUTHOR, note="discussion: limitations"),
        "27a": Answer(AUTHOR, note="discussion: poor-quality inputs (the app refuses unreadable or implausible uploads)"),
        "27b": Answer(AUTHOR, note="discussion: who uses the model and with what expertise"),
        "27c": Answer(AUTHOR, note="discussion: next steps"),
    }  # fmt: skip


def tripod_items(a: Available) -> list[ClaimRow]:
    """Every TRIPOD+AI item with this study's answer, resolved against what exists."""
    answers = _answers(a)
    if [i.number for i in ITEMS] != list(answers):
        raise AssertionError("every TRIPOD+AI item needs exactly one answer, in order")
    return resolve(ITEMS, answers)
