"""Subgroup audit: does the model work as well for every age band, sex, body site, diagnosis
confirmation and data source as it does overall?

Each group is compared with its complement (the rest of the test set), not with the whole (which
contains it), on the classes both contain: balanced accuracy over the classes present in a group
alone would make the worst group a matter of case mix (a group without the hardest class looks
better with the same per-class recall). The difference comes with a lesion-bootstrap interval
and a p-value adjusted for the number of groups (Holm); per-class recall by group is given too
(fairlearn's ``MetricFrame``). Groups with too few lesions for a stable estimate are kept and
marked ``small`` (hiding them would hide exactly the people a model is least tested on) and are
neither named worst nor tested.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from fairlearn.metrics import MetricFrame

from skinlib.evaluation.bootstrap import bootstrap_weights, grouped_intervals
from skinlib.evaluation.metrics import auc_per_class, weighted_metrics
from skinlib.evaluation.paired import holm
from skinlib.evaluation.thresholds import OperatingPoint, positive_score, positive_truth, sens_spec

AGE_BANDS = (0, 30, 45, 60, 75, 200)  # years; bands [0, 30), [30, 45), ..., [75, ...)
MIN_LESIONS = 20  # fewer lesions than this: the group is marked small
UNKNOWN = "unknown"


def age_band(age: pd.Series) -> pd.Series:
    """Age in years -> ``"<30"``, ``"30-44"``, ..., ``"75+"``; missing ages -> ``"unknown"``."""
    edges = list(AGE_BANDS)
    names = [f"<{edges[1]}"] + [
        f"{a}-{b - 1}" for a, b in zip(edges[1:-2], edges[2:-1], strict=True)
    ]
    names.append(f"{edges[-2]}+")
    bands = pd.cut(pd.to_numeric(age, errors="coerce"), edges, right=False, labels=names)
    return bands.astype(object).where(bands.notna(), UNKNOWN)


def confirmation(dx_type: pd.Series) -> pd.Series:
    """HAM10000's ``dx_type``: histopathology vs the rest (follow-up, consensus, confocal), whose
    labels are less certain."""
    d = dx_type.astype(object)
    return d.where(d.isna(), np.where(d == "histo", "histo", "follow-up/consensus/confocal"))


def audit_attributes(table: pd.DataFrame) -> pd.DataFrame:
    """The attributes to audit, one column each, from a common-schema table (index kept).

    Age band, sex and site always; ``dx_type`` and ``dataset`` (the HAM10000 source collection)
    where the table has them, and ``source`` where it mixes several data sets.
    """
    out = pd.DataFrame(index=table.index)
    out["age band"] = age_band(table["age"])
    out["sex"] = table["sex"].fillna(UNKNOWN)
    out["site"] = table["site"].fillna(UNKNOWN)
    if "dx_type" in table:
        out["confirmation"] = confirmation(table["dx_type"]).fillna(UNKNOWN)
    if "dataset" in table:
        out["dataset"] = table["dataset"].fillna(UNKNOWN)
    if "source" in table and table["source"].nunique() > 1:
        out["source"] = table["source"].fillna(UNKNOWN)
    return out


def _balanced(y, p, mask, weights) -> np.ndarray:
    """Balanced accuracy of the images in ``mask`` for each weight row (NaN where empty)."""
    if not mask.any():
        return np.full(len(weights), np.nan)
    return weighted_metrics(y[mask], p[mask], weights[:, mask], ["balanced_accuracy"])[
        "balanced_accuracy"
    ]


def _two_sided_p(diffs: np.ndarray) -> float:
    """Bootstrap p-value of "no difference": twice the smaller tail share beyond 0."""
    diffs = diffs[np.isfinite(diffs)]
    if not len(diffs):
        return np.nan
    return float(min(1.0, 2 * min((diffs <= 0).mean(), (diffs >= 0).mean())))


def group_against_rest(y, p, g, keep, n_boot: int, seed: int = 0) -> dict:
    """One group against its complement on the classes both contain (a fixed class set, so the
    case mix does not decide): each one's balanced accuracy, their difference with a lesion
    bootstrap interval (the whole test set resampled by lesion) and a two-sided p-value."""
    shared = np.intersect1d(y[keep], y[~keep])
    in_shared = np.isin(y, shared)
    mg, mr = keep & in_shared, ~keep & in_shared
    ones = np.ones((1, len(y)))
    value, rest = _balanced(y, p, mg, ones)[0], _balanced(y, p, mr, ones)[0]
    vals, diffs = [], []
    for w in bootstrap_weights(g, len(y), n_boot, seed):
        vg = _balanced(y, p, mg, w)
        vals.append(vg)
        diffs.append(vg - _balanced(y, p, mr, w))
    vals, diffs = np.concatenate(vals), np.concatenate(diffs)
    low, high = _quantiles(vals)
    d_low, d_high = _quantiles(diffs)
    return {
        "classes": len(shared),
        "value": float(value),
        "low": low,
        "high": high,
        "rest": float(rest),
        "difference": float(value - rest),
        "difference_low": d_low,
        "difference_high": d_high,
        "p": _two_sided_p(diffs),
    }


def _quantiles(values: np.ndarray) -> tuple[float, float]:
    values = values[np.isfinite(values)]
    if not len(values):
        return np.nan, np.nan
    low, high = np.quantile(values, [0.025, 0.975])
    return float(low), float(high)


def recall_by_group(
    labels: np.ndarray, pred: np.ndarray, values: np.ndarray, classes: Sequence[str]
) -> pd.DataFrame:
    """Recall of every class (columns, a fixed set) in every group (rows), NaN where a group has
    no image of the class: fairlearn's ``MetricFrame.by_group``."""

    def recall_of(c: int):
        def recall(y_true, y_pred) -> float:
            hit = np.asarray(y_true) == c
            return float((np.asarray(y_pred)[hit] == c).mean()) if hit.any() else np.nan

        return recall

    metrics = {str(name): recall_of(c) for c, name in enumerate(classes)}
    frame = MetricFrame(
        metrics=metrics, y_true=labels, y_pred=pred, sensitive_features=pd.Series(values)
    )
    return frame.by_group


def auc_by_group(
    proba: np.ndarray, labels: np.ndarray, values: np.ndarray, classes
) -> pd.DataFrame:
    """One-vs-rest AUC of every class (columns) in every group (rows); NaN where a group lacks
    the class or has only it. Ranking within a group does not depend on its case mix."""
    rows = {
        name: auc_per_class(labels[values == name], proba[values == name])
        for name in pd.unique(values)
    }
    return pd.DataFrame(rows, index=[str(c) for c in classes]).T


def point_by_group(
    labels: np.ndarray,
    proba: np.ndarray,
    values: np.ndarray,
    classes,
    point: OperatingPoint,
    lesions: Sequence | None = None,
    n_boot: int = 0,
    seed: int = 0,
) -> pd.DataFrame:
    """Sensitivity and specificity of the positive set (e.g. melanoma) at the run's stored
    threshold in every group, with the number of positives: the clinical claim per group. With
    ``n_boot``, the sensitivity gets a 95% interval from resampled ``lesions`` of the group."""
    truth = positive_truth(labels, classes, point.positive)
    score = positive_score(proba, classes, point.positive)
    flagged = score >= point.threshold
    rows = []
    for name in pd.unique(values):
        keep = values == name
        t, f = truth[keep], flagged[keep]
        sens, spec = sens_spec(t, score[keep], point.threshold)
        row = {"group": str(name), "positives": int(t.sum()), "sensitivity": sens}
        if n_boot:
            ids = None if lesions is None else np.asarray(lesions)[keep]

            def hits(w, t=t, f=f):
                with np.errstate(invalid="ignore", divide="ignore"):
                    return {"sensitivity": (w @ (t & f)) / (w @ t)}

            low, high = grouped_intervals(hits, ids, len(t), n_boot, seed=seed)["sensitivity"]
            row |= {"sensitivity_low": low, "sensitivity_high": high}
        rows.append(row | {"specificity": spec})
    return pd.DataFrame(rows).set_index("group")


def subgroup_table(
    labels: np.ndarray,
    proba: np.ndarray,
    groups: Sequence,
    attributes: pd.DataFrame,
    n_boot: int = 1000,
    min_lesions: int = MIN_LESIONS,
    seed: int = 0,
    classes: Sequence[str] | None = None,
    point: OperatingPoint | None = None,
) -> pd.DataFrame:
    """Each subgroup against the rest of the test set, on the classes both contain.

    Args:
        labels: (N,) class indices; proba: (N, C); groups: (N,) lesion ids.
        attributes: (N rows, aligned with ``labels``) one column per attribute.
        min_lesions: groups with fewer lesions are marked ``small`` (not tested, not worst).
        classes: class names for the per-class recall table (default: the indices).
        point: the run's stored operating point, for the positive set's sensitivity per group.

    Returns:
        One row per (attribute, group): ``images, lesions, classes`` (shared with the rest),
        ``value, low, high`` (the group's balanced accuracy on them), ``rest``, ``difference``
        with ``_low``/``_high``, ``p``, ``p_holm`` (over the groups not small), ``small``,
        ``worst`` (the most negative difference among this attribute's groups not small).
        ``attrs``: ``overall``, ``metric``, ``per_class_recall`` and ``per_class_auc``
        ((attribute, group) x class) and, given ``point``, ``operating_point`` ((attribute,
        group) x ``positives, sensitivity`` with its lesion-bootstrap ``_low``/``_high``,
        ``specificity``).
    """
    y, p, g = np.asarray(labels, int), np.asarray(proba, float), np.asarray(groups)
    names = classes if classes is not None else [str(c) for c in range(p.shape[1])]
    rows, recalls, aucs, points = [], {}, {}, {}
    for attribute in attributes.columns:
        values = attributes[attribute].astype(str).to_numpy()
        recalls[attribute] = recall_by_group(y, p.argmax(1), values, names)
        aucs[attribute] = auc_by_group(p, y, values, names)
        if point is not None:
            points[attribute] = point_by_group(y, p, values, names, point, g, n_boot, seed)
        for name in pd.unique(values):
            keep = values == name
            lesions = len(pd.unique(g[keep]))
            rows.append(
                {"attribute": attribute, "group": str(name), "images": int(keep.sum())}
                | {"lesions": lesions}
                | group_against_rest(y, p, g, keep, n_boot, seed)
                | {"small": lesions < min_lesions}
            )
    out = _mark_worst(_with_holm(pd.DataFrame(rows)))
    out.attrs["overall"] = float(_balanced(y, p, np.ones(len(y), bool), np.ones((1, len(y))))[0])
    out.attrs["metric"] = "balanced_accuracy"
    out.attrs["per_class_recall"] = pd.concat(recalls, names=["attribute", "group"])
    out.attrs["per_class_auc"] = pd.concat(aucs, names=["attribute", "group"])
    if points:
        out.attrs["operating_point"] = pd.concat(points, names=["attribute", "group"])
    return out.sort_values(["attribute", "difference"], kind="stable").reset_index(drop=True)


def _with_holm(table: pd.DataFrame) -> pd.DataFrame:
    """``p_holm``: Holm's adjustment over the groups tested (not small, p defined)."""
    tested = ~table["small"] & table["p"].notna()
    table["p_holm"] = np.nan
    if tested.any():
        table.loc[tested, "p_holm"] = holm(table.loc[tested, "p"].to_numpy())
    return table


def _mark_worst(table: pd.DataFrame) -> pd.DataFrame:
    """``worst``: per attribute, the group not small furthest below the rest."""
    table["worst"] = False
    for _, part in table[~table["small"]].groupby("attribute"):
        if part["difference"].notna().any():
            table.loc[part["difference"].idxmin(), "worst"] = True
    return table


def subgroup_audit(
    table: pd.DataFrame,
    image_id: Sequence[str],
    labels: np.ndarray,
    proba: np.ndarray,
    groups: Sequence,
    n_boot: int = 1000,
    min_lesions: int = MIN_LESIONS,
    classes: Sequence[str] | None = None,
    point: OperatingPoint | None = None,
) -> pd.DataFrame:
    """:func:`subgroup_table` of predicted images whose metadata (age, sex, site, ...) is read
    from the common-schema ``table`` by image id (predictions files carry no metadata).

    Args:
        table: the study's table (``image_id`` and the columns :func:`audit_attributes` reads).
        image_id, labels, proba, groups: (N,) the predicted images, (N, C) their probabilities.
    """
    meta = table.set_index("image_id").loc[np.asarray(image_id)]
    attributes = audit_attributes(meta).reset_index(drop=True)
    return subgroup_table(
        labels,
        proba,
        groups,
        attributes,
        n_boot=n_boot,
        min_lesions=min_lesions,
        classes=classes,
        point=point,
    )


def worst_group(table: pd.DataFrame) -> pd.Series | None:
    """The per-attribute worst group furthest below its rest (not small), or None where all are
    small."""
    worst = table[table["worst"] & table["difference"].notna()]
    return None if worst.empty else worst.loc[worst["difference"].idxmin()]


def operating_point_table(table: pd.DataFrame) -> pd.DataFrame:
    """The clinical claim per subgroup from :func:`subgroup_table`'s ``attrs``: the positive
    set's sensitivity at the stored threshold (with its lesion interval), specificity and
    the number of positives, beside each group's per-class AUC of the positive classes; empty
    where no operating point was given."""
    if "operating_point" not in table.attrs:
        return pd.DataFrame()
    points = table.attrs["operating_point"]
    lesions = table.set_index(["attribute", "group"])["lesions"]
    auc = table.attrs["per_class_auc"].add_prefix("AUC ")
    out = points.join(lesions).join(auc)
    return out.reset_index()[["attribute", "group", "lesions", *points.columns, *auc.columns]]
