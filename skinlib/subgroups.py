"""Subgroup audit: does the model work as well for every age band, sex, body site, diagnosis
confirmation and data source as it does overall?

Each group's metric comes with a lesion-bootstrap interval and its gap to the whole test set.
Groups with too few lesions for a stable estimate are kept and marked ``small`` (hiding them
would hide exactly the people a model is least tested on); the worst group is named among the
groups that are not small.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from skinlib.metrics import bootstrap_weights, weighted_metrics

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


def subgroup_table(
    labels: np.ndarray,
    proba: np.ndarray,
    groups: Sequence,
    attributes: pd.DataFrame,
    metric: str = "balanced_accuracy",
    n_boot: int = 1000,
    min_lesions: int = MIN_LESIONS,
    seed: int = 0,
) -> pd.DataFrame:
    """The metric per subgroup with a lesion-bootstrap 95% interval and its gap to the whole.

    Args:
        labels: (N,) class indices; proba: (N, C); groups: (N,) lesion ids.
        attributes: (N rows, aligned with ``labels``) one column per attribute.
        metric: a name from :data:`skinlib.metrics.METRICS`.
        min_lesions: groups with fewer lesions are marked ``small``.

    Returns:
        One row per (attribute, group): ``images, lesions, value, low, high, gap, small,
        worst`` (``worst``: the lowest value among this attribute's groups that are not small).
    """
    y, p, g = np.asarray(labels, int), np.asarray(proba, float), np.asarray(groups)
    overall = float(weighted_metrics(y, p, np.ones(len(y)), [metric])[metric][0])
    rows = []
    for attribute in attributes.columns:
        values = attributes[attribute].to_numpy()
        for name in pd.unique(values):
            keep = values == name
            yk, pk, gk = y[keep], p[keep], g[keep]
            value = float(weighted_metrics(yk, pk, np.ones(len(yk)), [metric])[metric][0])
            boots = np.concatenate(
                [
                    weighted_metrics(yk, pk, w, [metric])[metric]
                    for w in bootstrap_weights(gk, len(yk), n_boot, seed)
                ]
            )
            boots = boots[np.isfinite(boots)]
            low, high = np.quantile(boots, [0.025, 0.975]) if len(boots) else (np.nan, np.nan)
            lesions = len(pd.unique(gk))
            rows.append(
                {
                    "attribute": attribute,
                    "group": str(name),
                    "images": int(keep.sum()),
                    "lesions": lesions,
                    "value": value,
                    "low": float(low),
                    "high": float(high),
                    "gap": value - overall,
                    "small": lesions < min_lesions,
                }
            )
    out = pd.DataFrame(rows)
    out["worst"] = False
    for _, part in out[~out["small"]].groupby("attribute"):
        if part["value"].notna().any():
            out.loc[part["value"].idxmin(), "worst"] = True
    out.attrs["overall"] = overall
    out.attrs["metric"] = metric
    return out.sort_values(["attribute", "value"], kind="stable").reset_index(drop=True)


def subgroup_audit(
    table: pd.DataFrame,
    image_id: Sequence[str],
    labels: np.ndarray,
    proba: np.ndarray,
    groups: Sequence,
    n_boot: int = 1000,
    min_lesions: int = MIN_LESIONS,
) -> pd.DataFrame:
    """:func:`subgroup_table` of predicted images whose metadata (age, sex, site, ...) is read
    from the common-schema ``table`` by image id (predictions files carry no metadata).

    Args:
        table: the study's table (``image_id`` and the columns :func:`audit_attributes` reads).
        image_id, labels, proba, groups: (N,) the predicted images, (N, C) their probabilities.
    """
    meta = table.set_index("image_id").loc[np.asarray(image_id)]
    attributes = audit_attributes(meta).reset_index(drop=True)
    return subgroup_table(labels, proba, groups, attributes, n_boot=n_boot, min_lesions=min_lesions)


def worst_group(table: pd.DataFrame) -> pd.Series | None:
    """The lowest of the per-attribute worst groups (not small), or None where all are small."""
    worst = table[table["worst"]]
    return None if worst.empty else worst.loc[worst["value"].idxmin()]
