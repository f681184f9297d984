"""Label issues: images whose given label a model that never trained on them doubts, by
confident learning (cleanlab; Northcutt, Jiang and Chuang 2021).

Confident learning estimates, from held-out predicted probabilities, how often each given class
is really another one (per-class thresholds: the mean probability the model gives a class on
the images labelled with it), and flags the images most likely to be mislabelled
(``cleanlab.filter.find_label_issues``, pruned by noise rate). Each image also gets a label
quality score, the probability of its given label (cleanlab's self-confidence): flagged images
are ranked by it, lowest (most doubtful) first, and the suggested label is the most probable
other class. The predictions must come from images the model did not train on (validation,
test, a calibration split, or every fold's held-out part): on training images a model agrees
with its labels, wrong ones included.

A flag is a question for an expert, not a verdict: nothing is relabelled or dropped.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from cleanlab.filter import find_label_issues
from cleanlab.rank import get_label_quality_scores

HISTO = "histo"  # HAM10000's dx_type of a histopathology-confirmed diagnosis


def label_quality(labels: np.ndarray, proba: np.ndarray) -> np.ndarray:
    """Each image's label quality in [0, 1] (cleanlab's self-confidence: the probability of
    its given label; lower is more doubtful)."""
    return get_label_quality_scores(np.asarray(labels, int), np.asarray(proba, float))


def flag_label_issues(labels: np.ndarray, proba: np.ndarray) -> np.ndarray:
    """Row indices of the likely label issues, most doubtful first.

    Args:
        labels: (N,) given class indices; proba: (N, C) held-out probabilities.

    Returns:
        (K,) indices into ``labels``, ranked by label quality (lowest first).
    """
    y, p = np.asarray(labels, int), np.asarray(proba, float)
    return np.asarray(
        find_label_issues(
            y, p, filter_by="prune_by_noise_rate", return_indices_ranked_by="self_confidence"
        ),
        int,
    )


def label_issues(
    image_id: Sequence[str],
    labels: np.ndarray,
    proba: np.ndarray,
    classes: Sequence[str],
    split: Sequence[str] | None = None,
    group: Sequence[str] | None = None,
    dx_type: Sequence | None = None,
) -> pd.DataFrame:
    """The flagged images as a ranked table (:func:`flag_label_issues`).

    Args:
        image_id, labels, proba: (N,) ids and given class indices, (N, C) held-out probabilities.
        classes: class names in column order.
        split, group, dx_type: (N,) optional columns carried into the table (the split each
            image was held out in, its lesion, how its diagnosis was confirmed).

    Returns:
        One row per flagged image, most doubtful first: ``rank, image_id`` (then ``split``,
        ``lesion``, ``confirmation`` where given), ``given_label, suggested_label,
        label_quality`` (probability of the given label), ``suggested_probability``.
    """
    y, p = np.asarray(labels, int), np.asarray(proba, float)
    flagged = flag_label_issues(y, p)
    quality = label_quality(y, p)
    others = p.copy()
    others[np.arange(len(y)), y] = -np.inf
    suggested = others.argmax(1)
    names = np.asarray(classes, dtype=object)
    out = pd.DataFrame({"rank": np.arange(1, len(flagged) + 1)})
    out["image_id"] = np.asarray(image_id)[flagged]
    for column, values in (("split", split), ("lesion", group), ("confirmation", dx_type)):
        if values is not None:
            out[column] = np.asarray(values, dtype=object)[flagged]
    out["given_label"] = names[y[flagged]]
    out["suggested_label"] = names[suggested[flagged]]
    out["label_quality"] = quality[flagged]
    out["suggested_probability"] = p[flagged, suggested[flagged]]
    out.attrs["images"] = len(y)
    return out


def issue_counts(
    issues: pd.DataFrame,
    labels: np.ndarray,
    classes: Sequence[str],
    dx_type: Sequence | None = None,
) -> pd.DataFrame:
    """Flagged images per given class, against the class's audited images.

    Args:
        issues: :func:`label_issues` rows (``given_label``; ``lesion`` and ``confirmation`` where
            the audited images had them).
        labels: (N,) given class indices of every audited image; dx_type: (N,) their
            confirmation (``histo`` for histopathology).

    Returns:
        One row per class (index ``class``) and ``all``: ``images, flagged, flagged_share``
        (of the class's images), ``flagged_lesions`` where lesions are known, and where
        confirmations are: ``histo_flagged`` (share of the flagged images confirmed by
        histopathology) beside ``histo_all`` (that share among all the class's audited images),
        NaN where a class has none flagged.
    """
    names = np.asarray(classes, dtype=object)
    given = pd.Series(names[np.asarray(labels, int)])
    keys = [*classes, "all"]
    rows = pd.DataFrame(index=pd.Index(keys, name="class"))
    in_class = {c: (given == c).to_numpy() for c in classes} | {"all": np.ones(len(given), bool)}
    flagged = {c: (issues["given_label"] == c).to_numpy() for c in classes}
    flagged["all"] = np.ones(len(issues), bool)
    rows["images"] = [int(in_class[c].sum()) for c in keys]
    rows["flagged"] = [int(flagged[c].sum()) for c in keys]
    with np.errstate(invalid="ignore", divide="ignore"):
        rows["flagged_share"] = rows["flagged"] / rows["images"].replace(0, np.nan)
    if "lesion" in issues:
        rows["flagged_lesions"] = [int(issues.loc[flagged[c], "lesion"].nunique()) for c in keys]
    if dx_type is not None and "confirmation" in issues:
        histo = pd.Series(np.asarray(dx_type, dtype=object)) == HISTO
        flagged_histo = issues["confirmation"] == HISTO
        rows["histo_flagged"] = [
            float(flagged_histo[flagged[c]].mean()) if flagged[c].any() else np.nan for c in keys
        ]
        rows["histo_all"] = [
            float(histo[in_class[c]].mean()) if in_class[c].any() else np.nan for c in keys
        ]
    return rows
