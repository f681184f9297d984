"""The CLAIM 2024 reporting checklist (Tejani et al., Radiology: Artificial Intelligence 2024):
each of its 44 items, and where this study reports it, or why it does not.

Items are paraphrased from the published update (doi:10.1148/ryai.240300; the full text is on
PubMed Central as PMC11304031); check the wording against it before submitting. Where an item
is reported depends on what the study produced (a table exists only once its notebook ran), so
:func:`claim_items` resolves each item against the generated methods, tables and figures.
Items that only the author can answer (ethics, funding, the discussion) say so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from skinlib import paths
from skinlib.thesis.latex import inline_latex, latex_escape
from skinlib.thesis.records import StudyRecord
from skinlib.thesis.sections import Section

REPORTED, NOT_REPORTED, AUTHOR = "reported", "not reported", "author"

# Labels of main.tex's results sections (the methods' own labels come from the sections).
RESULT_SECTIONS = {
    "sec:imbalance": "Results: Class imbalance",
    "sec:architectures": "Results: Architectures",
    "sec:calibration": "Results: Calibration",
    "sec:operating-points": "Results: Operating points",
    "sec:explanations": "Results: Explanations",
}


@dataclass(frozen=True)
class Item:
    """One checklist item: its number, section and topic, and what it asks (the same shape for
    CLAIM and for TRIPOD+AI, :mod:`skinlib.thesis.tripod`, whose numbers have letters: 3a)."""

    number: int | str
    section: str
    topic: str
    asks: str


ITEMS: tuple[Item, ...] = (
    Item(1, "Title and abstract", "Title", "Identify the study as using AI and name the category of technology (e.g. deep learning)."),
    Item(2, "Title and abstract", "Abstract", "Structured summary of design, methods, results and conclusions."),
    Item(3, "Introduction", "Background", "Scientific and clinical background, intended use and clinical role of the AI approach."),
    Item(4, "Introduction", "Objectives", "Study objectives and hypotheses."),
    Item(5, "Methods: study design", "Design", "Prospective or retrospective study."),
    Item(6, "Methods: study design", "Goal", "Study goal, e.g. model creation, exploratory or feasibility study, non-inferiority trial."),
    Item(7, "Methods: data", "Data sources", "State the data sources, with links to public data sets."),
    Item(8, "Methods: data", "Eligibility", "Inclusion and exclusion criteria: how, where and when eligible cases were identified."),
    Item(9, "Methods: data", "Preprocessing", "Data preprocessing steps."),
    Item(10, "Methods: data", "Subsets", "Selection of data subsets, if any."),
    Item(11, "Methods: data", "De-identification", "De-identification methods."),
    Item(12, "Methods: data", "Missing data", "How missing data were handled."),
    Item(13, "Methods: data", "Acquisition", "Image acquisition protocol (devices, settings, resolution)."),
    Item(14, "Methods: reference standard", "Definition", "Definition of the reference standard, in enough detail to replicate it."),
    Item(15, "Methods: reference standard", "Rationale", "Rationale for the choice of reference standard."),
    Item(16, "Methods: reference standard", "Annotators", "Source of annotations; qualifications and preparation of annotators."),
    Item(17, "Methods: reference standard", "Annotation method", "Annotation procedures and tools."),
    Item(18, "Methods: reference standard", "Variability", "Inter- and intra-rater variability; how discrepancies were resolved."),
    Item(19, "Methods: data partitions", "Assignment", "How data were assigned to partitions, with their proportions."),
    Item(20, "Methods: data partitions", "Disjointness", "Level at which partitions are disjoint (e.g. image, lesion, patient)."),
    Item(21, "Methods: testing data", "Intended sample size", "Intended size of the test set and how it was determined."),
    Item(22, "Methods: model", "Architecture", "Detailed description of the model: inputs, outputs, layers."),
    Item(23, "Methods: model", "Software", "Software libraries, frameworks and packages, with versions."),
    Item(24, "Methods: model", "Initialisation", "Initialisation of model parameters (random, transfer learning)."),
    Item(25, "Methods: training", "Training details", "Training approach: augmentation, hyperparameters, number of models trained."),
    Item(26, "Methods: training", "Model selection", "Method of selecting the final model."),
    Item(27, "Methods: training", "Ensembling", "Ensembling techniques, if any."),
    Item(28, "Methods: evaluation", "Metrics", "Metrics of model performance."),
    Item(29, "Methods: evaluation", "Uncertainty", "Statistical measures of significance and uncertainty (e.g. confidence intervals)."),
    Item(30, "Methods: evaluation", "Robustness", "Robustness or sensitivity analysis."),
    Item(31, "Methods: evaluation", "Explainability", "Methods for explainability or interpretability, and how they were validated."),
    Item(32, "Methods: evaluation", "Internal testing", "Evaluation on internal data; consistency between training and test performance."),
    Item(33, "Methods: evaluation", "External testing", "Evaluation on external data, or why not."),
    Item(34, "Methods: evaluation", "Registration", "Clinical trial registration, if applicable."),
    Item(35, "Results: data", "Flow of cases", "Numbers of cases included and excluded, with a flow diagram."),
    Item(36, "Results: data", "Characteristics", "Demographic and clinical characteristics of each partition."),
    Item(37, "Results: model performance", "Performance", "Performance of the final model(s) on all partitions and subgroups."),
    Item(38, "Results: model performance", "Accuracy estimates", "Estimates of diagnostic accuracy with their precision (e.g. 95% intervals)."),
    Item(39, "Results: model performance", "Failure analysis", "Analysis of incorrectly classified cases."),
    Item(40, "Discussion", "Limitations", "Limitations: bias, statistical uncertainty, generalisability."),
    Item(41, "Discussion", "Implications", "Implications for practice: intended use and clinical role."),
    Item(42, "Other information", "Protocol", "Where the full study protocol can be accessed."),
    Item(43, "Other information", "Availability", "Availability of software, trained model and data."),
    Item(44, "Other information", "Funding", "Sources of funding and other support; role of funders."),
)  # fmt: skip


@dataclass(frozen=True)
class Answer:
    """Where an item is reported (labels), or why not, or what the author must add."""

    status: str  # reported | not reported | author
    labels: tuple[str, ...] = ()  # sec:/tab:/fig: labels, in the thesis
    note: str = ""  # why not reported / what the author writes / a qualification


@dataclass(frozen=True)
class ClaimRow:
    item: Item
    answer: Answer


@dataclass
class Available:
    """What the study produced, for resolving items: labels that exist, and a few facts."""

    labels: dict[str, str]  # label -> title (for Markdown)
    synthetic: bool
    dataset: str  # data.format
    ensemble: bool
    external: bool
    split_file: bool
    tta: bool = False  # some run has test-time-augmentation predictions (07)
    # runs whose record names metadata inputs (model.metadata): age, sex and site beside the image
    metadata_runs: tuple[str, ...] = ()

    def refs(self, *labels: str) -> tuple[str, ...]:
        return tuple(lbl for lbl in labels if lbl in self.labels)


def available(study: StudyRecord, sections: Sequence[Section], tables_dir: Path) -> Available:
    """Labels the thesis will hold for this study: methods sections, results sections, and the
    tables and figures the notebooks wrote."""
    labels = {s.label: f"Methods: {s.title}" for s in sections}
    labels |= RESULT_SECTIONS
    if tables_dir.is_dir():
        labels |= {f"tab:{p.stem}": f"Table {p.stem}" for p in tables_dir.glob("*.tex")}
    figures = paths.study_figures_dir(study.profile.study)
    if figures.is_dir():
        labels |= {f"fig:{p.stem}": f"Figure {p.stem}" for p in figures.glob("*.pdf")}
    for name in ("methods", "claim", "tripod"):
        labels.pop(f"tab:{name}", None)
    runs = study.architectures or list(study.strategies.values())
    cfg = runs[0].config if runs else study.profile.config
    external = any(lbl.startswith("tab:external") for lbl in labels)
    return Available(
        labels,
        synthetic=not cfg.data.root,
        dataset=cfg.data.format,
        ensemble=study.ensemble is not None,
        external=external,
        split_file=bool(cfg.data.split_file),
        tta=any(r.tta for r in study.architectures),
        metadata_runs=tuple(
            r.name
            for r in [*study.architectures, *study.strategies.values()]
            if r.meta.get("metadata_inputs")
        ),
    )


def _inputs_note(a: Available) -> str:
    """Item 12's missing data, and whether metadata were inputs (as the runs recorded it)."""
    skipped = "unreadable or missing images are skipped and counted"
    if not a.metadata_runs:
        return f"{skipped}; metadata are not model inputs"
    runs = ", ".join(a.metadata_runs)
    return (
        f"{skipped}; age, sex and site are inputs of {runs} only, a missing value as its own "
        "level (age: a missing indicator), encoded with the training split's statistics"
    )


def _answers(a: Available) -> dict[int, Answer]:
    """Each item's answer for this study."""
    data = a.refs("sec:methods-data")
    synthetic_why = "the images are synthetic (SynthDerm), so there are no patients"
    public_labels = "the labels are those published with the data set"
    return {
        1: Answer(AUTHOR, note="title of the thesis: name deep learning (CNNs and vision transformers) for classification"),
        2: Answer(AUTHOR, note="abstract"),
        3: Answer(AUTHOR, note="introduction: clinical background and intended use"),
        4: Answer(AUTHOR, note="introduction: objectives and hypotheses"),
        5: Answer(REPORTED, data),
        6: Answer(REPORTED, a.refs("sec:methods-models", "sec:architectures"), "model development and comparison"),
        7: Answer(REPORTED, data),
        8: Answer(REPORTED, a.refs("sec:methods-data", "tab:eda_counts"), "every image of the source with a study class; skipped images are counted"),
        9: Answer(REPORTED, a.refs("sec:methods-preprocessing")),
        10: Answer(REPORTED, data) if not a.synthetic and a.split_file else Answer(NOT_REPORTED, note="not applicable: the whole data set is used, no subset was selected"),
        11: Answer(NOT_REPORTED, note=f"not applicable: {synthetic_why}") if a.synthetic else Answer(AUTHOR, note="state that the public release is de-identified by its publishers; the study adds no identifying data"),
        12: Answer(REPORTED, a.refs("sec:methods-data", *(("sec:methods-models", "sec:methods-imbalance") if a.metadata_runs else ())), _inputs_note(a)),
        13: Answer(REPORTED, data, "generator settings") if a.synthetic else Answer(NOT_REPORTED, note="the code holds no acquisition metadata; describe the devices from the data set's paper"),
        14: Answer(REPORTED, data, "the generating class is the reference standard") if a.synthetic else Answer(AUTHOR, note="the data set's diagnosis confirmation (e.g. HAM10000 dx_type: histopathology, follow-up, expert consensus, confocal microscopy)"),
        15: Answer(NOT_REPORTED, note=f"not applicable: {synthetic_why}") if a.synthetic else Answer(AUTHOR, note="why the release's labels are an adequate reference standard"),
        16: Answer(NOT_REPORTED, note=f"not applicable: {synthetic_why}") if a.synthetic else Answer(AUTHOR, note=f"{public_labels}: cite who annotated them"),
        17: Answer(NOT_REPORTED, note="no annotation in this study: " + ("labels are generated" if a.synthetic else public_labels)),
        18: Answer(NOT_REPORTED, note="no re-annotation, so no inter- or intra-rater variability was measured"),
        19: Answer(REPORTED, a.refs("sec:methods-split", "tab:split_audit")),
        20: Answer(REPORTED, a.refs("sec:methods-split", "tab:split_audit")),
        21: Answer(NOT_REPORTED, note="no power calculation: the test set is a fixed share of the available data; its precision is shown by the bootstrap intervals"),
        22: Answer(REPORTED, a.refs("sec:methods-models"), "standard timm architectures, cited"),
        23: Answer(REPORTED, a.refs("sec:methods-compute")),
        24: Answer(REPORTED, a.refs("sec:methods-models")),
        25: Answer(REPORTED, a.refs("sec:methods-training", "sec:methods-preprocessing", "sec:methods-imbalance", "sec:methods-differences")),
        26: Answer(REPORTED, a.refs("sec:methods-training")),
        27: Answer(REPORTED, a.refs("sec:methods-evaluation")) if a.ensemble else Answer(NOT_REPORTED, note="not applicable: no ensemble was built"),
        28: Answer(REPORTED, a.refs("sec:methods-evaluation", "tab:comparison")),
        29: Answer(REPORTED, a.refs("sec:methods-evaluation", "tab:comparison", "tab:paired_tests")),
        30: _robustness(a),
        31: Answer(REPORTED, a.refs("sec:methods-evaluation", "tab:xai_scores", "fig:xai_gallery")),
        32: _internal_testing(a),
        33: Answer(REPORTED, a.refs(*[lbl for lbl in a.labels if lbl.startswith("tab:external")])) if a.external else Answer(NOT_REPORTED, note="no external test set: the test split comes from the same source as the training data"),
        34: Answer(NOT_REPORTED, note="not applicable: a retrospective study, not a clinical trial"),
        35: Answer(REPORTED, a.refs("sec:methods-data", "tab:eda_counts"), "counts; no flow diagram is drawn"),
        36: Answer(NOT_REPORTED, note=f"not applicable: {synthetic_why}") if a.synthetic else Answer(NOT_REPORTED, note="metadata are summarised by class, not by partition; add a table by partition"),
        37: _performance(a),
        38: Answer(REPORTED, a.refs("tab:comparison", "tab:operating_points", "fig:thresholds_roc")),
        39: _failures(a),
        40: Answer(AUTHOR, note="discussion: limitations"),
        41: Answer(AUTHOR, note="discussion: intended use and clinical role"),
        42: Answer(REPORTED, a.refs("sec:methods-compute"), "the profile and the code at the recorded commit are the protocol"),
        43: Answer(AUTHOR, note="where the code, trained models and data can be obtained"),
        44: Answer(AUTHOR, note="funding and the role of funders"),
    }  # fmt: skip


def _robustness(a: Available) -> Answer:
    """Item 30 from what ran: the imbalance arms (02), TTA rows (07), 08's subgroups and
    unknown inputs; nothing is claimed whose table is missing."""
    parts = {
        "tab:imbalance": "sensitivity to the imbalance strategy",
        "tab:comparison": "test-time augmentation rows" if a.tta else "",
        "tab:trust_subgroups": "balanced accuracy by subgroup",
        "tab:trust_unknown": "detection of unknown inputs",
    }
    found = [lbl for lbl, words in parts.items() if words and lbl in a.labels]
    section = ["sec:imbalance"] if "tab:imbalance" in found else []
    labels = a.refs(*section, *found)
    return Answer(REPORTED, labels, "; ".join(parts[lbl] for lbl in found))


def _internal_testing(a: Available) -> Answer:
    """Item 32: the test split, and training against validation only where 03's loss figures
    (``train_<run>_loss``, training and validation loss) exist; 07's curves are validation only."""
    losses = sorted(
        lbl for lbl in a.labels if lbl.startswith("fig:train_") and lbl.endswith("_loss")
    )
    note = "held-out internal test split"
    if losses:
        note += "; training against validation loss per epoch"
    if "fig:comparison_curves" in a.labels:
        note += "; validation balanced accuracy per epoch"
    return Answer(REPORTED, a.refs("tab:comparison", *losses, "fig:comparison_curves"), note)


def _performance(a: Available) -> Answer:
    """Item 37: subgroups are reported once 08 wrote its subgroup table, skin tone once 09 wrote
    its per-band table."""
    groups = {
        "tab:trust_subgroups": "balanced accuracy by subgroup",
        "tab:skin_tone_performance": "by skin-tone band (ITA)",
    }
    shown = [label for label in groups if label in a.labels]
    if not shown:
        return Answer(
            REPORTED,
            a.refs("tab:comparison", "tab:calibration"),
            "test split; no subgroup analysis",
        )
    figures = ["fig:trust_subgroups"] if "tab:trust_subgroups" in shown else []
    return Answer(
        REPORTED,
        a.refs("tab:comparison", "tab:calibration", *shown, *figures),
        "test split; " + "; ".join(groups[label] for label in shown) + " for the audited run",
    )


def _failures(a: Available) -> Answer:
    """Item 39: the maps of 06's errors, and 09's confused pairs and top losses where it ran."""
    found = {
        "fig:xai_gallery": "false negatives and false positives with their maps",
        "tab:confused_pairs": "the most confused class pairs with lesion intervals",
        "fig:top_losses": "the test images the model is surest and wrong about",
        "tab:label_issue_counts": "possible label errors (confident learning)",
    }
    shown = [label for label in found if label in a.labels] or ["fig:xai_gallery"]
    return Answer(REPORTED, a.refs(*shown), "; ".join(found[label] for label in shown))


def claim_items(a: Available) -> list[ClaimRow]:
    """Every CLAIM 2024 item with this study's answer; an item whose locations do not exist
    (its notebook has not run) is marked not reported, with the reason."""
    rows = resolve(ITEMS, _answers(a))
    _check_complete(rows)
    return rows


def resolve(items: Sequence[Item], answers: dict) -> list[ClaimRow]:
    """Each item with its answer; one reported where nothing it points at exists yet (its
    notebook has not run) becomes not reported, with the reason."""
    rows = []
    for item in items:
        answer = answers[item.number]
        if answer.status == REPORTED and not answer.labels:
            answer = Answer(
                NOT_REPORTED,
                note="its section, table or figure has not been generated yet: run the pipeline",
            )
        rows.append(ClaimRow(item, answer))
    return rows


def _check_complete(rows: Sequence[ClaimRow]) -> None:
    numbers = [r.item.number for r in rows]
    if numbers != list(range(1, 45)):
        raise AssertionError(f"the CLAIM 2024 checklist has items 1-44; got {numbers}")


# --- rendering -----------------------------------------------------------------------------------

KIND = {"sec": "Section", "tab": "Table", "fig": "Figure"}


def _refs_latex(labels: Sequence[str]) -> str:
    """``Sections~\\ref{a}, \\ref{b}; Table~\\ref{c}``: one word per kind, in first-seen order."""
    kinds: dict[str, list[str]] = {}
    for lbl in labels:
        kinds.setdefault(lbl.split(":")[0], []).append(f"\\ref{{{lbl}}}")
    return "; ".join(
        f"{KIND[k]}{'s' if len(refs) > 1 else ''}~{', '.join(refs)}" for k, refs in kinds.items()
    )


def _where_latex(answer: Answer) -> str:
    refs = _refs_latex(answer.labels)
    if answer.status == REPORTED:
        return refs + (f" ({latex_escape(answer.note)})" if answer.note else "")
    if answer.status == AUTHOR:
        return f"\\emph{{Author to fill:}} {latex_escape(answer.note)}"
    return f"\\emph{{Not reported:}} {latex_escape(answer.note)}"


@dataclass(frozen=True)
class Checklist:
    """How a checklist is named in the thesis: its caption, table label, citation and module."""

    name: str  # "The CLAIM 2024 checklist"
    label: str  # tab:claim
    cite: str  # bibliography key
    module: str  # the module that writes it (named in the generated file's header)


CLAIM = Checklist(
    "The CLAIM 2024 checklist", "tab:claim", "tejani2024claim", "skinlib.thesis.claim"
)


def to_latex(rows: Sequence[ClaimRow], checklist: Checklist = CLAIM) -> str:
    """A ``longtable`` (needs ``\\usepackage{longtable}``) of the items and where each is."""
    body = []
    section = ""
    for row in rows:
        if row.item.section != section:
            section = row.item.section
            body.append(f"\\multicolumn{{3}}{{@{{}}l}}{{\\textbf{{{latex_escape(section)}}}}}\\\\")
        asks = f"\\textit{{{latex_escape(row.item.topic)}.}} {latex_escape(row.item.asks)}"
        body.append(f"{row.item.number} & {asks} & {_where_latex(row.answer)}\\\\")
    cite = inline_latex(f"[@{checklist.cite}]")
    head = "No. & Item & Where this study reports it\\\\"
    return "\n".join(
        [
            f"% generated by {checklist.module}; rerun the pipeline to update",
            "\\begin{small}",
            "\\begin{longtable}{@{}r p{0.45\\linewidth} p{0.43\\linewidth}@{}}",
            f"\\caption{{{checklist.name}{cite}: where each item is reported.}}"
            f"\\label{{{checklist.label}}}\\\\",
            "\\toprule",
            head,
            "\\midrule",
            "\\endfirsthead",
            "\\toprule",
            head,
            "\\midrule",
            "\\endhead",
            "\\bottomrule",
            "\\endfoot",
            *body,
            "\\end{longtable}",
            "\\end{small}",
            "",
        ]
    )


def to_markdown(
    rows: Sequence[ClaimRow], titles: dict[str, str] | None = None, checklist: Checklist = CLAIM
) -> str:
    """The same checklist as a Markdown table (labels shown as the titles they stand for)."""
    titles = titles or {}

    def where(answer: Answer) -> str:
        refs = ", ".join(titles.get(lbl, lbl) for lbl in answer.labels)
        if answer.status == REPORTED:
            return refs + (f" ({answer.note})" if answer.note else "")
        prefix = "Author to fill" if answer.status == AUTHOR else "Not reported"
        return f"*{prefix}:* {answer.note}"

    lines = [
        f"<!-- generated by {checklist.module}; rerun the pipeline to update -->",
        "",
        f"{checklist.name} [@{checklist.cite}]: where each item is reported.",
        "",
        "| No. | Section | Item | Where this study reports it |",
        "| --- | --- | --- | --- |",
    ]
    for row in rows:
        i = row.item
        lines.append(f"| {i.number} | {i.section} | *{i.topic}.* {i.asks} | {where(row.answer)} |")
    return "\n".join(lines) + "\n"
