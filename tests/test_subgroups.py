"""Subgroup audit: groups, intervals, gaps, small groups marked, the worst one named."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from skinlib.evaluation.subgroups import (
    age_band,
    audit_attributes,
    operating_point_table,
    subgroup_audit,
    subgroup_table,
    worst_group,
)
from skinlib.study import findings


def test_age_bands_and_unknown():
    bands = age_band(pd.Series([5, 29, 30, 44.5, 60, 75, 90, np.nan]))
    assert bands.tolist() == ["<30", "<30", "30-44", "30-44", "60-74", "75+", "75+", "unknown"]


def test_attributes_from_the_common_schema():
    t = pd.DataFrame(
        {
            "age": [40, np.nan],
            "sex": ["male", np.nan],
            "site": ["back", "face"],
            "dx_type": ["histo", "follow_up"],
            "source": ["ham10000", "ham10000"],
        }
    )
    a = audit_attributes(t)
    assert list(a.columns) == ["age band", "sex", "site", "confirmation"]  # one source: no column
    assert a["confirmation"].tolist() == ["histo", "follow-up/consensus/confocal"]
    assert a["sex"].tolist() == ["male", "unknown"]


def test_subgroup_table_knows_the_worse_group_and_marks_small_ones():
    rng = np.random.default_rng(0)
    n = 600
    sex = np.where(np.arange(n) % 2, "female", "male").astype(object)
    sex[:10] = "unknown"  # 10 images of 5 lesions: small
    y = rng.integers(0, 2, n)
    right = np.where(sex == "female", rng.random(n) < 0.95, rng.random(n) < 0.7)
    pred = np.where(right, y, 1 - y)
    proba = np.stack([1 - pred, pred], 1) * 0.8 + 0.1
    groups = np.arange(n) // 2
    table = subgroup_table(y, proba, groups, pd.DataFrame({"sex": sex}), n_boot=200)
    rows = table.set_index("group")
    assert rows.loc["unknown", "small"] and rows.loc["unknown", "lesions"] == 5
    assert rows.loc["male", "worst"] and not rows.loc["female", "worst"]
    assert not rows.loc["unknown", "worst"]  # small groups are shown but never named worst
    assert rows.loc["male", "low"] <= rows.loc["male", "value"] <= rows.loc["male", "high"]
    male = rows.loc["male"]
    assert male["difference"] == pytest.approx(male["value"] - male["rest"])
    assert male["difference_low"] <= male["difference"] <= male["difference_high"] < 0
    assert male["p_holm"] < 0.05 and np.isnan(rows.loc["unknown", "p_holm"])  # small: untested
    assert worst_group(table)["group"] == "male"


REAL_METADATA = Path(__file__).parent / "fixtures" / "ham10000" / "HAM10000_metadata.csv"


def test_attributes_of_the_real_ham10000_metadata():
    from skinlib.data import load_table

    table = load_table(REAL_METADATA, "ham10000", require_images=False)
    a = audit_attributes(table)
    assert a["confirmation"].value_counts().to_dict() == {
        "histo": 5340,
        "follow-up/consensus/confocal": 4675,  # follow_up 3704, consensus 902, confocal 69
    }
    assert (a["age band"] == "unknown").sum() == 57  # the 57 empty ages
    assert (a["sex"] == "unknown").sum() == 57
    assert "unknown" in set(a["site"]) and a["site"].nunique() == 15


def test_audit_joins_the_metadata_by_image_id_not_by_position():
    """Men (t0, t1) are answered right, women (t2, t3) wrong; the predictions list the images in
    the reverse order of the table, so a join by position would swap the two."""
    table = pd.DataFrame(
        {
            "image_id": ["t0", "t1", "t2", "t3", "t4"],
            "age": [20, 50, 20, 50, 80],
            "sex": ["male", "male", "female", "female", "male"],
            "site": ["back"] * 5,
        }
    )
    ids, labels = ["t3", "t2", "t1", "t0"], np.array([1, 0, 1, 0])
    proba = np.array([[0.9, 0.1], [0.2, 0.8], [0.1, 0.9], [0.8, 0.2]])  # t3, t2 wrong
    audit = subgroup_audit(table, ids, labels, proba, ids, n_boot=10, min_lesions=1)
    sex = audit[audit["attribute"] == "sex"].set_index("group")["value"]  # on the shared classes
    assert sex.to_dict() == {"female": 0.0, "male": 1.0}
    assert audit.attrs["overall"] == 0.5


def test_groups_differing_only_in_case_mix_do_not_differ():
    """Regression: the same per-class recall in both sites, but only the face has the hard class
    (recall 0.2); balanced accuracy over each group's own classes named the face worst with an
    interval excluding the overall value. On the classes both contain they do not differ."""
    n = 200
    site = np.array(["face"] * n + ["back"] * n, dtype=object)
    y = np.r_[np.repeat([0, 1, 2], [70, 70, 60]), np.repeat([0, 1], n // 2)]
    pred = y.copy()
    hard = np.flatnonzero(y == 2)
    pred[hard[12:]] = 0  # class 2: recall 12 / 60 = 0.2
    proba = np.eye(3)[pred] * 0.8 + 0.2 / 3
    table = subgroup_table(y, proba, np.arange(2 * n), pd.DataFrame({"site": site}), n_boot=200)
    rows = table.set_index("group")
    assert rows.loc["face", "classes"] == 2
    assert rows.loc["face", "difference"] == 0.0 and rows.loc["face", "p_holm"] == 1.0
    recall = table.attrs["per_class_recall"].loc["site"]
    assert recall.loc["face"].tolist() == [1.0, 1.0, 0.2] and np.isnan(recall.loc["back", "2"])
    text = findings.worst_subgroup(table)
    assert "no clear difference at the 5% level" in text
    assert "an association to look into, not its cause" in text  # on any data, real or synthetic


def test_melanoma_sensitivity_at_the_stored_threshold_and_auc_per_group():
    """Known answer: 4 images per site; at threshold 0.5 the face finds 1 of its 2 melanomas,
    the back both; AUC per class ranks within each group."""
    from skinlib.evaluation.thresholds import OperatingPoint

    y = np.array([1, 1, 0, 0, 1, 1, 0, 0])
    mel = np.array([0.9, 0.4, 0.3, 0.1, 0.8, 0.6, 0.2, 0.7])
    proba = np.stack([1 - mel, mel], 1)
    site = pd.DataFrame({"site": ["face"] * 4 + ["back"] * 4})
    point = OperatingPoint(["mel"], "specificity", 0.95, 0.5, 1.0, 1.0, 1.0)
    table = subgroup_table(
        y, proba, np.arange(8), site, n_boot=10, min_lesions=1, classes=["nv", "mel"], point=point
    )
    at = table.attrs["operating_point"].loc["site"]
    columns = ["positives", "sensitivity", "specificity"]
    assert at.loc["face", columns].tolist() == [2, 0.5, 1.0]
    assert at.loc["back", columns].tolist() == [2, 1.0, 0.5]
    # the interval resamples the group's lesions: the back finds both, in every resample
    assert at.loc["back", ["sensitivity_low", "sensitivity_high"]].tolist() == [1.0, 1.0]
    assert 0.0 <= at.loc["face", "sensitivity_low"] < 0.5 < at.loc["face", "sensitivity_high"]
    auc = table.attrs["per_class_auc"].loc["site", "mel"]
    assert auc.to_dict() == {"face": 1.0, "back": 0.75}
    saved = operating_point_table(table).set_index("group")  # what 08 writes for the thesis
    assert saved.loc["back", ["lesions", "positives", "sensitivity", "AUC mel"]].tolist() == [
        4, 2, 1.0, 0.75,
    ]  # fmt: skip
    assert operating_point_table(subgroup_table(y, proba, np.arange(8), site, n_boot=10)).empty
