"""Label issues by confident learning: planted label flips are found, the table and the counts
per class say what a reviewer needs (given and suggested label, confirmation)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from skinlib.evaluation.label_issues import (
    flag_label_issues,
    issue_counts,
    label_issues,
    label_quality,
)

CLASSES = ["akiec", "bcc", "bkl", "mel", "nv"]


def _held_out_set(n: int = 800, flips: int = 40, seed: int = 0):
    """Probabilities of a good held-out model (the true class gets most of the mass, drawn from
    a Dirichlet), and given labels of which ``flips`` were changed to another class."""
    rng = np.random.default_rng(seed)
    true = rng.integers(0, len(CLASSES), n)
    alpha = np.ones((n, len(CLASSES)))
    alpha[np.arange(n), true] = 15.0
    proba = np.array([rng.dirichlet(a) for a in alpha])
    given = true.copy()
    planted = rng.choice(n, flips, replace=False)
    given[planted] = (true[planted] + rng.integers(1, len(CLASSES), flips)) % len(CLASSES)
    return given, proba, planted, true


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_cleanlab_finds_most_planted_label_flips(seed):
    """Among the k images of lowest label quality (k = the flips planted) at least 80% are
    flips; confident learning flags most of them and almost nothing else. It errs towards
    precision: a flip counts only where the model gives the true class more than that class's
    mean self-confidence (here 0.72-0.90 of the flips are flagged, at precision 1.0)."""
    given, proba, planted, true = _held_out_set(seed=seed)
    k = len(planted)
    quality = label_quality(given, proba)
    assert np.isin(np.argsort(quality, kind="stable")[:k], planted).mean() >= 0.8
    flagged = flag_label_issues(given, proba)
    assert np.isin(planted, flagged).mean() >= 0.7  # most flips are flagged
    assert np.isin(flagged, planted).mean() >= 0.95  # and few correct labels
    assert np.isin(flagged[: k // 2], planted).all()  # the top of the ranking is all flips
    assert np.all(np.diff(quality[flagged]) >= 0)  # ranked, most doubtful first
    table = label_issues([f"I{i}" for i in range(len(given))], given, proba, CLASSES)
    found = table[np.isin(table["image_id"], [f"I{i}" for i in planted])]
    rows = found["image_id"].str[1:].astype(int).to_numpy()
    # the suggested label of a found flip is its true class
    assert (found["suggested_label"].to_numpy() == np.asarray(CLASSES)[true[rows]]).mean() >= 0.9


def test_the_table_ranks_flags_and_carries_split_lesion_and_confirmation():
    given = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2, 0])
    proba = np.full((10, 3), 0.05)
    proba[np.arange(10), given] = 0.9
    proba[9] = [0.02, 0.95, 0.03]  # labelled 0, looks like 1
    proba[8] = [0.04, 0.06, 0.90]
    proba /= proba.sum(1, keepdims=True)
    ids = [f"I{i}" for i in range(10)]
    split = ["val"] * 5 + ["test"] * 5
    lesion = [f"L{i // 2}" for i in range(10)]
    dx = ["histo", "follow_up"] * 5
    table = label_issues(ids, given, proba, ["a", "b", "c"], split, lesion, dx)
    assert table.columns.tolist() == [
        "rank", "image_id", "split", "lesion", "confirmation", "given_label",
        "suggested_label", "label_quality", "suggested_probability",
    ]  # fmt: skip
    top = table.iloc[0]
    assert (top["image_id"], top["split"], top["lesion"]) == ("I9", "test", "L4")
    assert (top["given_label"], top["suggested_label"]) == ("a", "b")
    assert top["confirmation"] == "follow_up"
    assert top["label_quality"] == pytest.approx(proba[9, 0])
    assert top["suggested_probability"] == pytest.approx(proba[9, 1])
    assert table.attrs["images"] == 10


def test_counts_per_class_with_the_share_confirmed_by_histopathology():
    issues = pd.DataFrame(
        {
            "given_label": ["mel", "mel", "nv", "mel"],
            "lesion": ["L1", "L1", "L2", "L3"],
            "confirmation": ["histo", "histo", "follow_up", "consensus"],
        }
    )
    labels = np.array([0] * 10 + [1] * 30 + [2] * 5)  # mel, nv, df
    dx = ["histo"] * 10 + ["histo"] * 3 + ["follow_up"] * 27 + ["histo"] * 5
    counts = issue_counts(issues, labels, ["mel", "nv", "df"], dx)
    assert counts.index.tolist() == ["mel", "nv", "df", "all"]
    mel, nv, df, all_ = (counts.loc[c] for c in ("mel", "nv", "df", "all"))
    assert (mel["images"], mel["flagged"], mel["flagged_lesions"]) == (10, 3, 2)
    assert mel["flagged_share"] == pytest.approx(0.3)
    assert mel["histo_flagged"] == pytest.approx(2 / 3) and mel["histo_all"] == 1.0
    assert nv["histo_flagged"] == 0.0 and nv["histo_all"] == pytest.approx(0.1)
    assert df["flagged"] == 0 and np.isnan(df["histo_flagged"])
    assert (all_["images"], all_["flagged"], all_["flagged_lesions"]) == (45, 4, 3)
    assert all_["histo_flagged"] == pytest.approx(0.5)
    without = issue_counts(issues.drop(columns="confirmation"), labels, ["mel", "nv", "df"])
    assert "histo_flagged" not in without
