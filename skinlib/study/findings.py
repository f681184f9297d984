"""Findings: the sentence under each result that says what it shows, computed from the result.

Prose written by hand into a notebook goes stale the moment the profile or the data changes;
these functions read the numbers the notebook has just produced and state the finding, with its
uncertainty, so an executed notebook reads as a study on any profile. They only format: every
number comes from :mod:`skinlib.evaluation.metrics`, :mod:`skinlib.evaluation.calibration`, :mod:`skinlib.evaluation.thresholds`
or :mod:`skinlib.inference.xai` through :class:`skinlib.study.front.Study`.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Sequence

import pandas as pd

from skinlib.data.splits import on_split, split_name
from skinlib.evaluation.subgroups import worst_group
from skinlib.evaluation.thresholds import at_specificity
from skinlib.formatting import format_ci


def _ci(row, metric: str) -> str:
    return format_ci(row[metric], row[f"{metric}_low"], row[f"{metric}_high"])


def ranking(rows: Sequence[dict], n_classes: int, metric: str = "balanced_accuracy") -> str:
    """Models (or strategies) ranked by a metric with its interval, and which intervals overlap
    the best one's (the candidates for "no real difference").

    Args:
        rows: :meth:`skinlib.study.front.Study.headline` rows (``model``, ``metric``, ``_low``/``_high``).
        n_classes: for the chance level of balanced accuracy (1 / classes).

    >>> rows = [dict(model="a", balanced_accuracy=0.8, balanced_accuracy_low=0.7,
    ...              balanced_accuracy_high=0.9),
    ...         dict(model="b", balanced_accuracy=0.75, balanced_accuracy_low=0.65,
    ...              balanced_accuracy_high=0.85)]
    >>> print(ranking(rows, 4))
    Best: a, balanced accuracy 0.800 [0.700, 0.900] (chance 0.250); then b 0.750 [0.650, 0.850]. Intervals overlapping the best one's: b.
    """
    frame = pd.DataFrame(rows).sort_values(metric, ascending=False, kind="stable")
    best, rest = frame.iloc[0], frame.iloc[1:]
    name = metric.replace("_", " ")
    text = f"Best: {best['model']}, {name} {_ci(best, metric)}"
    if metric == "balanced_accuracy":
        text += f" (chance {1 / n_classes:.3f})"
    if len(rest):
        text += "; then " + ", ".join(f"{r['model']} {_ci(r, metric)}" for _, r in rest.iterrows())
    overlapping = rest[rest[f"{metric}_high"] >= best[f"{metric}_low"]]["model"].tolist()
    text += ". Intervals overlapping the best one's: " + (", ".join(overlapping) or "none") + "."
    return text


def epochs(records: dict[str, dict]) -> str:
    """How many epochs each run trained and what decided it: its time budget (the epochs that
    fit from the step time it measured, ``train.epochs`` the cap), early stopping, or the epochs
    as given.

    Args:
        records: run name -> the run's ``meta.json``.

    >>> plan = {"epochs": 3, "cap": 5, "budget_min": 0.5, "step_s": 0.123, "limited_by": "budget"}
    >>> print(epochs({"a": {"epochs_run": 3, "stopped_by": "epochs", "budget": plan},
    ...               "b": {"epochs_run": 5, "stopped_by": "epochs"}}))
    Epochs per run: a 3 of at most 5 (what fits its 0.5 min at 0.123 s per step); b 5 (as given).
    """
    return "Epochs per run: " + "; ".join(f"{r} {_epochs(m)}" for r, m in records.items()) + "."


def _epochs(meta: dict) -> str:
    ran, plan, stopped = meta["epochs_run"], meta.get("budget"), meta.get("stopped_by")
    if not plan:
        return f"{ran} (early stopping)" if stopped == "patience" else f"{ran} (as given)"
    at = f"{plan['budget_min']:g} min at {plan['step_s']:.3g} s per step"
    if stopped == "budget":
        return f"{ran} of {plan['epochs']} planned (stopped at its budget, {at} measured)"
    if stopped == "patience":
        return f"{ran} of {plan['epochs']} planned (early stopping; {at})"
    if plan["limited_by"] == "minimum":
        return f"{ran} (none fits its {at}; one is the least a run trains)"
    if plan["limited_by"] == "cap":
        return f"{ran}, the cap (its {at} would fit more)"
    return f"{ran} of at most {plan['cap']} (what fits its {at})"


def calibration(table: pd.DataFrame, split: str = "test") -> str:
    """Which models temperature scaling helped on ``split`` (ECE before -> after), and which not.

    Args:
        table: rows of :func:`skinlib.evaluation.calibration.calibration_report` with a ``model`` column;
            its first row is on the split the temperature was fitted on (val or calibration).
    """
    fitted = split_name(table["split"].iloc[0])
    rows = table[table["split"] == split].pivot(index="model", columns="stage", values="ece")
    rows = rows.loc[table.loc[table["split"] == split, "model"].unique()]  # the table's order
    change = {m: f"{m} {r['before']:.3f} -> {r['after']:.3f}" for m, r in rows.iterrows()}
    better = [change[m] for m, r in rows.iterrows() if r["after"] < r["before"]]
    worse = [change[m] for m, r in rows.iterrows() if r["after"] >= r["before"]]
    text = f"Temperature scaling lowered the {split} ECE for {len(better)} of {len(rows)} models"
    text += (": " + "; ".join(better)) if better else ""
    if worse:
        text += ". It did not for " + "; ".join(worse)
        text += f" (the temperature minimises {fitted} NLL, not ECE on another split)"
    return text + "." + _interval_above(table[table["split"] == split])


def _interval_above(rows: pd.DataFrame) -> str:
    """Where an ECE interval lies wholly above its estimate, say why (binned errors are biased
    upwards and every resample shares the bias), so a reader does not take it for an error."""
    if "ece_low" not in rows:
        return ""
    above = rows[rows["ece_low"] > rows["ece"]]
    if above.empty:
        return ""
    names = ", ".join(f"{r['model']} ({r['stage']})" for _, r in above.iterrows())
    return (
        f" The ECE interval lies above the estimate for {names}: binned errors are biased "
        "upwards in small samples and every resample shares the bias, so the interval shows "
        "the estimate's spread, not a range for the true error."
    )


def operating_points(
    points: pd.DataFrame, positive: str, target: float, chosen_on: str = "val"
) -> str:
    """Test sensitivity (with interval) and specificity at the threshold chosen for ``target``
    specificity on ``chosen_on`` (validation, or the calibration split), per model, most
    sensitive first.

    Args:
        points: :func:`skinlib.evaluation.thresholds.operating_points_table` rows with a ``model`` column.
        positive: the positive set as the table names it (e.g. ``mel`` or ``akiec+bcc+mel``).
    """
    chosen = at_specificity(points[points["positive"] == positive], target)
    chosen = chosen.sort_values("test_sensitivity", ascending=False, kind="stable")
    parts = [
        f"{r['model']} {format_ci(r['test_sensitivity'], r['test_sensitivity_low'], r['test_sensitivity_high'])}"
        f" at specificity {r['test_specificity']:.2f}"
        for _, r in chosen.iterrows()
    ]
    return (
        f"At the threshold chosen for {target:.0%} specificity on {on_split(chosen_on)}, {positive} "
        f"sensitivity on test: " + "; ".join(parts) + "."
    )


def cam_scores(summary: pd.DataFrame) -> str:
    """Which architecture's maps point at the lesion most and least often, against chance.

    Args:
        summary: :meth:`skinlib.study.front.Study.cam_summary` (index ``model``; ``pointing``,
            ``energy_inside``, ``mask_share``).
    """
    if "pointing" not in summary:
        return "No lesion masks: the maps are scored by faithfulness (ROAD) instead."
    ranked = summary.dropna(subset=["pointing"]).sort_values("pointing", ascending=False)
    first, last = ranked.iloc[0], ranked.iloc[-1]
    return (
        f"{ranked.index[0]}'s maps peak on the lesion in {first['pointing']:.0%} of test images "
        f"({first['energy_inside']:.0%} of their energy inside, {first['mask_share']:.0%} by "
        f"chance); {ranked.index[-1]}'s in {last['pointing']:.0%} ({last['energy_inside']:.0%})."
    )


_NUMBER_WITH_INTERVAL = re.compile(r"(?<![\w.])(\d+\.\d+)( \[\d+\.\d+, \d+\.\d+\])")
_PERCENT = re.compile(r"(?<![\w.*])(\d+(?:\.\d+)?%)")


def as_markdown(text: str) -> str:
    """A finding as a Markdown paragraph: estimates before an interval and percentages in bold.

    >>> as_markdown("Best: a, balanced accuracy 0.800 [0.700, 0.900]; 96% of images.")
    'Best: a, balanced accuracy **0.800** [0.700, 0.900]; **96%** of images.'
    """
    text = _NUMBER_WITH_INTERVAL.sub(r"**\1**\2", text)
    return _PERCENT.sub(r"**\1**", text)


class Finding(str):
    """A finding sentence that a notebook renders as Markdown (bold numbers, wrapped by the
    browser) and a terminal prints as wrapped plain text."""

    def _repr_markdown_(self) -> str:
        return as_markdown(str(self))

    def __repr__(self) -> str:
        return textwrap.fill(str(self), width=100)


def show(*sentences: str) -> Finding:
    """The finding(s) of a cell, for display as its last expression (one paragraph each)."""
    return Finding("\n\n".join(sentences))


# --- 08 trust ---------------------------------------------------------------------------------


def coverage(
    table: pd.DataFrame,
    setting: str,
    mondrian_setting: str | None = None,
    calibrated_on: str = "val",
) -> str:
    """Test coverage and mean set size of one conformal setting, its least-covered class, and
    (if given) that of the class-conditional (Mondrian) sets.

    Args:
        table: :meth:`skinlib.study.front.Study.conformal_sets` rows (``setting``, ``class``,
            ``coverage``/``mean_size`` with ``_low``/``_high``, ``target``).
        calibrated_on: the split whose lesions calibrated the sets (val or calibration).

    >>> t = pd.DataFrame({"setting": ["lac 90%"] * 3, "class": ["all", "a", "b"],
    ...     "target": 0.9, "coverage": [0.91, 0.95, 0.7], "coverage_low": [0.88, 0.9, 0.5],
    ...     "coverage_high": [0.94, 0.99, 0.9], "mean_size": [1.5, 1.4, 2.0],
    ...     "mean_size_low": [1.4, 1.3, 1.8], "mean_size_high": [1.6, 1.5, 2.2]})
    >>> print(coverage(t, "lac 90%"))
    Conformal sets for 90% (lac 90%, calibrated on validation lesions): test coverage per lesion 0.910 [0.880, 0.940], mean set size 1.50 [1.40, 1.60]; least covered class b 0.700 [0.500, 0.900].
    """

    def part(name: str) -> tuple[pd.DataFrame, pd.Series, pd.Series]:
        rows = table[table["setting"] == name].set_index("class")
        classes = rows.drop(index="all")
        return classes, rows.loc["all"], classes.sort_values("coverage", kind="stable").iloc[0]

    classes, whole, low = part(setting)
    image = f" (image average {whole['image_coverage']:.3f})" if "image_coverage" in whole else ""
    text = (
        f"Conformal sets for {whole['target']:.0%} ({setting}, calibrated on "
        f"{split_name(calibrated_on)} lesions): "
        f"test coverage per lesion {_ci(whole, 'coverage')}{image}, mean set size "
        f"{format_ci(whole['mean_size'], whole['mean_size_low'], whole['mean_size_high'], 2)}; "
        f"least covered class {low.name} {_ci(low, 'coverage')}"
    )
    if mondrian_setting:
        m_classes, m_whole, _ = part(mondrian_setting)
        before, after = low["coverage"], m_classes.loc[low.name, "coverage"]
        verb = "raise" if after > before else "lower" if after < before else "leave"
        text += (
            f". Class-conditional sets ({mondrian_setting}) {verb} {low.name} from "
            f"{before:.3f} to {after:.3f} at mean set size {m_whole['mean_size']:.2f}"
        )
        text += _in_every_set(m_classes, calibrated_on)
    return text + "."


def _silenced(row: pd.Series) -> str:
    """The clause naming classes the policy never answers on test, or its least answered one."""
    if row.get("unanswered"):
        return f"; it answers no test image of {row['unanswered']}, which all go to a doctor"
    if "least_answered" in row:
        return (
            f"; least answered class {row['least_answered']} "
            f"({row['least_answered_coverage']:.0%} of its images)"
        )
    return ""


def _in_every_set(classes: pd.DataFrame, calibrated_on: str = "val") -> str:
    """The classes in every set because too few calibrating lesions calibrate them."""
    if "in_every_set" not in classes:
        return ""
    every = classes[classes["in_every_set"].astype(bool)]
    if every.empty:
        return ""
    names = ", ".join(
        f"{c} ({int(n)} lesion{'' if int(n) == 1 else 's'})"
        for c, n in every["calibration_lesions"].items()
    )
    verb, pronoun = ("is", "it") if len(every) == 1 else ("are", "them")
    lesions = f"{split_name(calibrated_on)} lesions"
    return f"; {names} {verb} in every set: too few {lesions} calibrate {pronoun}"


def deferral(table: pd.DataFrame, chosen_on: str = "val") -> str:
    """The deferral trade-off on test for the confidence score that answers most images of the
    split the threshold is chosen on (validation, or the calibration split; choosing on test
    would flatter it), and the classes it never answers. Where no threshold reaches the target
    there, the fixed-share policies (``answers 70%`` rows) say what deferring buys instead.

    Args:
        table: :meth:`skinlib.study.front.Study.deferral` rows (``val_coverage``: on ``chosen_on``).
    """
    targets = table[table["target"].notna()] if "policy" in table else table
    best = targets.sort_values("val_coverage", ascending=False, kind="stable").iloc[0]
    where, images = on_split(chosen_on), f"{split_name(chosen_on)} images"
    if not best["val_coverage"]:
        return (
            f"No confidence threshold reaches balanced accuracy {best['target']:.2f} on "
            f"{where}: the model would have to defer every image." + _fixed_shares(table)
        )
    return (
        f"Deferring the least confident images ({best['confidence'].replace('_', ' ')}, the score "
        f"answering most {images}; threshold chosen on {where} for balanced accuracy "
        f"{best['target']:.2f} over every class), the model answers "
        f"{format_ci(best['coverage'], best['coverage_low'], best['coverage_high'], 2)} of test "
        f"images with balanced accuracy {_ci(best, 'balanced_accuracy')}, against "
        f"{best['balanced_accuracy_all']:.3f} when it answers all" + _silenced(best) + "."
    )


def _fixed_shares(table: pd.DataFrame) -> str:
    """What answering a fixed share of images gives on test (the first confidence score's
    rows, all with thresholds chosen on the same split), with the least answered class."""
    if "policy" not in table:
        return ""
    rows = table[table["target"].isna()]
    rows = rows[rows["confidence"] == table["confidence"].iloc[0]]
    if rows.empty:
        return ""
    parts = [
        f"answering {r['coverage']:.0%} of test images ({r['policy']} of the threshold's split) "
        f"gives balanced accuracy {_ci(r, 'balanced_accuracy')} and answers "
        f"{r['least_answered_coverage']:.0%} of {r['least_answered']}"
        for _, r in rows.iterrows()
    ]
    first = rows.iloc[0]
    return (
        f" By {first['confidence'].replace('_', ' ')}, against "
        f"{first['balanced_accuracy_all']:.3f} when it answers all: " + "; ".join(parts) + "."
    )


def _p(p: float) -> str:
    """A bootstrap p-value: one that no resample reached reads as below 0.001, not as 0."""
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


CAVEAT = (
    " Subgroups differ in case mix, in how and where their images were taken and in how their "
    "diagnoses were confirmed: a difference is an association to look into, not its cause."
)


def worst_subgroup(table: pd.DataFrame) -> str:
    """The subgroup (not small) furthest below the rest of the test set on the classes both
    contain, its difference with interval and Holm-adjusted p, how many groups are small, and
    the caveat that holds on any data (small or confounded groups).

    Args:
        table: :func:`skinlib.evaluation.subgroups.subgroup_table` output.
    """
    small = int(table["small"].sum())
    note = (
        f" {small} group(s) had too few lesions to judge and are marked in the table."
        if small
        else ""
    )
    worst = worst_group(table)
    if worst is None:
        return "Every subgroup had too few lesions to name a worst one." + note + CAVEAT
    tested = int(table["p_holm"].notna().sum())
    verdict = "a difference" if worst["p_holm"] < 0.05 else "no clear difference"
    return (
        f"Furthest below the rest of the test set: {worst['attribute']} = {worst['group']}, "
        f"balanced accuracy on the {worst['classes']} classes both contain "
        f"{format_ci(worst['value'], worst['low'], worst['high'])} against {worst['rest']:.3f}, "
        f"difference {format_ci(worst['difference'], worst['difference_low'], worst['difference_high'])}"
        f" (lesion bootstrap), Holm-adjusted {_p(worst['p_holm'])} over {tested} groups: "
        f"{verdict} at the 5% level." + _clear_below(table, worst) + note + CAVEAT
    )


def _clear_below(table: pd.DataFrame, worst: pd.Series) -> str:
    """The other groups clearly below their rest (Holm-adjusted p < 0.05): the largest gap need
    not be the clearest, and a reader must not miss a clear one behind a noisy one."""
    clear = table[(table["p_holm"] < 0.05) & (table["difference"] < 0) & ~table["small"]]
    clear = clear[(clear["attribute"] != worst["attribute"]) | (clear["group"] != worst["group"])]
    if clear.empty:
        return ""
    parts = [
        f"{r['attribute']} = {r['group']} "
        f"({format_ci(r['difference'], r['difference_low'], r['difference_high'])}, "
        f"{_p(r['p_holm'])})"
        for _, r in clear.iterrows()
    ]
    return " Clearly below the rest after Holm's adjustment: " + "; ".join(parts) + "."


def _chosen_score(rows: pd.DataFrame) -> str:
    """The score a kind is reported with: highest ``selection_auroc`` (validation knowns against
    a held-out half of the unknowns), or the highest AUROC where there is no selection column."""
    key = "selection_auroc"
    if key not in rows or rows[key].isna().all():
        key = "auroc"
    return rows.sort_values(key, ascending=False, kind="stable").iloc[0]["score"]


def unknown_detection(table: pd.DataFrame) -> str:
    """Per kind of unknown input, the chosen score's AUROC and FPR at 95% TPR with intervals;
    for a near unknown with a control, also its AUROC against known classes of its own source
    (novelty alone), and the control's against test (dataset shift alone) with the same score.

    The score is chosen on validation (:func:`skinlib.evaluation.ood.detection_table`'s
    ``selection_auroc``), never on the test numbers the sentence reports.

    Args:
        table: :meth:`skinlib.study.front.Study.unknown_detection` rows.
    """
    if "reference" not in table:
        table = table.assign(reference="test")
    on_test = table[table["reference"] == "test"]
    controls = set(table.loc[table["reference"] != "test", "reference"])
    validated = "selection_auroc" in table and table["selection_auroc"].notna().any()
    chosen = {kind: _chosen_score(rows) for kind, rows in on_test.groupby("unknown", sort=False)}
    for kind, control in table.loc[table["reference"] != "test", ["unknown", "reference"]].values:
        chosen[control] = chosen[kind]  # the shift row uses the score its unknowns are judged by
    parts = []
    for kind, rows in on_test.groupby("unknown", sort=False):
        score = chosen[kind]
        best = rows[rows["score"] == score].iloc[0]
        text = (
            f"{kind}: {score} AUROC {_ci(best, 'auroc')}, "
            f"{format_ci(best['fpr'], best['fpr_low'], best['fpr_high'], 2)} accepted at 95% of "
            f"known images kept"
        )
        if kind in controls:
            text += " (known classes from another source: dataset shift alone)"
        novelty = table[(table["unknown"] == kind) & (table["reference"] != "test")]
        for _, r in novelty[novelty["score"] == score].iterrows():
            text += (
                f"; against {r['reference']} from its own source (novelty alone) AUROC "
                f"{_ci(r, 'auroc')}"
            )
        parts.append(text)
    how = (
        "score per kind chosen on validation images and a held-out half of the unknown lesions, "
        "reported on test and the other half"
        if validated
        else "best score per kind"
    )
    return f"Unknown-input detection ({how}): " + "; ".join(parts) + "."


# --- 09 audit ---------------------------------------------------------------------------------


def label_issues(counts: pd.DataFrame, splits: str = "validation and test") -> str:
    """How many held-out images confident learning flags, the class with the largest share
    flagged, and (where the data record it) how often the flagged labels were confirmed by
    histopathology against all audited labels.

    Args:
        counts: :meth:`skinlib.study.front.Study.label_issues`'s counts (index ``class``, last
            row the total; ``images, flagged, flagged_share``, optional ``histo_*``).
        splits: the held-out splits audited, in words.

    >>> c = pd.DataFrame({"images": [50, 150, 200], "flagged": [5, 3, 8],
    ...     "flagged_share": [0.1, 0.02, 0.04]}, index=["mel", "nv", "all classes"])
    >>> print(label_issues(c))
    Confident learning flags 8 of 200 held-out images (4.0%; validation and test) as possible label errors; the largest share in mel (5 of 50, 10.0%). Nothing was relabelled or dropped: the flags are for an expert to review.
    """
    total, classes = counts.iloc[-1], counts.iloc[:-1]
    text = (
        f"Confident learning flags {int(total['flagged'])} of {int(total['images'])} held-out "
        f"images ({total['flagged_share']:.1%}; {splits}) as possible label errors"
    )
    if total["flagged"]:
        top = classes.sort_values("flagged_share", ascending=False, kind="stable").iloc[0]
        text += (
            f"; the largest share in {top.name} ({int(top['flagged'])} of {int(top['images'])}, "
            f"{top['flagged_share']:.1%})"
        )
        if "histo_flagged" in counts and pd.notna(total["histo_flagged"]):
            text += (
                f". {total['histo_flagged']:.0%} of the flagged labels were confirmed by "
                f"histopathology, against {total['histo_all']:.0%} of all audited labels"
            )
    return text + ". Nothing was relabelled or dropped: the flags are for an expert to review."


def skin_tone_bands(bands: pd.DataFrame) -> str:
    """How the images spread over the ITA bands: the share of the two lightest, and how many
    images are brown or dark (the least represented skin, the caveat that ITA is a proxy).

    Args:
        bands: :meth:`skinlib.study.front.Study.skin_tone_bands` (index ``band``, an
            ``all splits`` column).
    """
    counts = bands["all splits"]
    total = int(counts.sum())
    light = int(counts.reindex(["very light", "light"]).fillna(0).sum())
    darker = counts.reindex(["brown", "dark"]).fillna(0).astype(int)
    missing = int(counts.get("not measurable", 0))
    text = (
        f"Of {total} images, {light / max(total, 1):.0%} show very light or light skin (ITA above "
        f"41°); {darker['brown']} are brown and {darker['dark']} dark (ITA at or below 10°)"
    )
    if missing:
        text += f", and the skin of {missing} could not be measured"
    return (
        text + ". ITA read from dermoscopic images is a proxy for skin colour under the "
        "dermoscope's light, not a Fitzpatrick skin type."
    )


def skin_tone_performance(audit: pd.DataFrame) -> str:
    """The band furthest below the rest (the subgroup audit's sentence, :func:`worst_subgroup`)
    and the positive set's sensitivity at the stored threshold in each band, with intervals.

    Args:
        audit: :meth:`skinlib.study.front.Study.skin_tone_audit` rows and ``attrs``.
    """
    text = worst_subgroup(audit)
    points = audit.attrs.get("operating_point")
    if points is not None and "positive" in audit.attrs:
        positive = "+".join(audit.attrs["positive"])
        rows = points.droplevel("attribute")
        small = set(audit.loc[audit["small"], "group"])
        parts = [
            f"{band}{' (small)' if band in small else ''} "
            + format_ci(r["sensitivity"], r.get("sensitivity_low"), r.get("sensitivity_high"))
            + f" ({int(r['positives'])} positives)"
            for band, r in rows.iterrows()
            if r["positives"] > 0
        ]
        if parts:
            text += (
                f" {positive} sensitivity at the stored threshold by band: "
                + "; ".join(parts)
                + "."
            )
    return text


def confused_pairs(pairs: pd.DataFrame) -> str:
    """The most confused pair on test with its share of the true class and interval, and the
    share of all errors the listed pairs make.

    Args:
        pairs: :meth:`skinlib.study.front.Study.confused_pairs` rows.
    """
    if pairs.empty:
        return "The model misclassifies no test image."
    top = pairs.iloc[0]
    share = format_ci(
        top["share_of_true_class"],
        top.get("share_of_true_class_low"),
        top.get("share_of_true_class_high"),
    )
    return (
        f"The most frequent error reads {top['true class']} as {top['predicted class']}: "
        f"{int(top['images'])} test images of {int(top['lesions'])} lesions, a share of "
        f"{share} of the {top['true class']} images (lesion bootstrap); the {len(pairs)} pairs "
        f"listed make {pairs['share_of_errors'].sum():.0%} of all test errors."
    )


def top_losses(losses: pd.DataFrame) -> str:
    """How sure the model is on its surest errors, and which true classes they come from."""
    if losses.empty:
        return "The model misclassifies no test image."
    classes = losses["true"].value_counts()
    which = ", ".join(f"{c} ({n})" for c, n in classes.items())
    return (
        f"On its {len(losses)} surest errors the model gives the wrong class a probability of "
        f"{losses['predicted_probability'].min():.2f} to {losses['predicted_probability'].max():.2f}; "
        f"their true classes: {which}."
    )
