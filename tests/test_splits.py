"""Grouped, stratified splits on the real HAM10000 metadata; the audit catches leaks."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest
from fixtures.builders import HAM_CSV
from sklearn.model_selection import train_test_split

from skinlib.cli import main
from skinlib.data import load_table
from skinlib.data.splits import (
    CALIBRATION,
    apply_split,
    audit_split,
    carve_calibration,
    count_shared_groups,
    fold_to_split,
    load_split,
    make_folds,
    make_split,
    save_split,
    shared_groups,
    split_fractions,
)
from skinlib.errors import DataError


@pytest.fixture(scope="module")
def ham():
    """The real HAM10000 labels (10,015 images of 7,470 lesions), no images needed."""
    return load_table(HAM_CSV, require_images=False)


@pytest.fixture(scope="module")
def ham_split(ham):
    return make_split(ham, seed=0)


@pytest.mark.slow
def test_grouped_split_shares_no_lesion_and_keeps_class_shares(ham, ham_split):
    audit = audit_split(ham_split)
    assert audit.shared_groups == 0
    assert count_shared_groups(ham_split["group"], ham_split["split"]) == 0
    counts = ham["label"].value_counts()
    big = counts[counts >= 100].index  # every HAM10000 class has >= 115 images
    assert len(big) == 7
    assert (audit.max_deviation[big] <= 0.02).all(), audit.max_deviation
    # 70/15/15 as asked (20 folds: 14/3/3), not the 71.4/14.3/14.3 of one fold in seven
    assert audit.fractions == pytest.approx({"train": 0.70, "val": 0.15, "test": 0.15}, abs=0.01)
    shares = ham_split["split"].value_counts(normalize=True)
    assert audit.fractions == pytest.approx(shares.to_dict())
    assert "images per split: train 70.0%, val 15.0%, test 15.0%" in str(audit)
    assert ham_split.drop(columns="split").equals(ham)  # rows and order kept, input untouched
    assert "split" not in ham


@pytest.mark.slow
@pytest.mark.parametrize(("val", "test"), [(0.1, 0.2), (0.2, 0.1), (0.12, 0.18)])
def test_other_fractions_hit_within_a_point_grouped_and_stratified(ham, val, test):
    split = make_split(ham, val_frac=val, test_frac=test, seed=5)
    audit = audit_split(split)
    want = {"train": 1 - val - test, "val": val, "test": test}
    assert audit.fractions == pytest.approx(want, abs=0.01)
    assert audit.shared_groups == 0
    assert audit.max_share_deviation <= 0.02, audit.max_deviation


def test_fractions_within_a_point_on_a_quick_table():
    # 2,000 single-image groups of three classes: fast enough to run on every commit
    rng = np.random.default_rng(0)
    table = pd.DataFrame(
        {
            "image_id": [f"i{i}" for i in range(2400)],
            "group": [f"g{i // 6 * 5 + i % 6 % 5}" for i in range(2400)],  # some lesions twice
            "label": rng.choice(["nv", "mel", "bcc"], 2400, p=[0.7, 0.2, 0.1]),
        }
    )
    table["label"] = table.groupby("group")["label"].transform("first")
    for val, test in [(0.15, 0.15), (0.1, 0.2), (0.25, 0.05)]:
        split = make_split(table, val_frac=val, test_frac=test, seed=1)
        got = split_fractions(split)
        assert got == pytest.approx({"train": 1 - val - test, "val": val, "test": test}, abs=0.01)
        assert count_shared_groups(split["group"], split["split"]) == 0
    folds = make_folds(table, k=4, seed=0)
    split = fold_to_split(folds, fold=1, val_frac=0.15, seed=0)
    assert split_fractions(split)["val"] == pytest.approx(0.15, abs=0.01)
    assert split_fractions(split)["test"] == pytest.approx(0.25, abs=0.01)


def test_image_level_random_split_leaks_hundreds_of_lesions(ham):
    idx = np.arange(len(ham))
    train, rest = train_test_split(idx, test_size=0.3, random_state=0, stratify=ham["label"])
    assignment = np.full(len(ham), "train", dtype=object)
    assignment[rest] = "test"
    leaked = count_shared_groups(ham["group"], assignment)
    assert 600 < leaked < 1500  # ~1000 of HAM10000's 1,956 multi-image lesions
    naive = ham.assign(split=assignment)
    assert len(shared_groups(naive)) == leaked
    with pytest.raises(DataError, match=r"\d+ groups appear in more than one split \(e.g. \['HAM_"):
        audit_split(naive)
    assert audit_split(naive, raise_on_leak=False).shared_groups == leaked


def test_audit_known_answer():
    table = pd.DataFrame(
        {
            "group": list("abcdefghij"),
            "label": ["mel"] * 4 + ["nv"] * 6,
            "split": [
                "train",
                "train",
                "train",
                "test",
                "train",
                "train",
                "train",
                "train",
                "test",
                "test",
            ],
        }
    )
    audit = audit_split(table)
    assert audit.counts.loc["mel"].to_dict() == {"test": 1, "train": 3}
    # overall mel 0.4; train 3/7, test 1/3 -> deviations 0.0286 and 0.0667
    assert audit.shares.loc["mel", "all"] == pytest.approx(0.4)
    assert audit.max_deviation["mel"] == pytest.approx(0.4 - 1 / 3)
    assert audit.max_share_deviation == pytest.approx(0.4 - 1 / 3)
    assert "groups shared between splits: 0" in str(audit)


def test_split_is_deterministic_by_seed(ham):
    small = ham.head(1500)
    a, b = make_split(small, seed=3), make_split(small, seed=3)
    assert a["split"].tolist() == b["split"].tolist()
    assert a["split"].tolist() != make_split(small, seed=4)["split"].tolist()


def test_save_load_and_apply_roundtrip(ham, ham_split, tmp_path):
    path = save_split(ham_split, tmp_path / "split.csv")
    assert pd.read_csv(path).columns.tolist() == ["image_id", "group", "label", "split"]
    loaded = load_split(path)
    assert loaded["split"].tolist() == ham_split["split"].tolist()
    applied = apply_split(ham.sample(frac=1, random_state=0), path)
    assert applied.set_index("image_id")["split"].equals(
        ham_split.set_index("image_id")["split"].loc[applied["image_id"]]
    )
    with pytest.raises(DataError, match="have no split"):
        apply_split(pd.concat([ham, ham.head(1).assign(image_id="ISIC_new")]), path)


def test_load_split_refuses_bad_files(ham_split, tmp_path):
    leaky = ham_split.copy()
    first = leaky.groupby("group").filter(lambda g: len(g) > 1)["group"].iloc[0]
    leaky.loc[leaky["group"] == first, "split"] = ["train", "test"] + ["train"] * (
        (leaky["group"] == first).sum() - 2
    )
    save_split(leaky, tmp_path / "leaky.csv")
    with pytest.raises(DataError, match=rf"leaky.csv: 1 groups appear .*{first}"):
        load_split(tmp_path / "leaky.csv")
    ham_split.drop(columns="group").to_csv(tmp_path / "nogroup.csv", index=False)
    with pytest.raises(DataError, match=r"nogroup.csv: expected columns image_id, group"):
        load_split(tmp_path / "nogroup.csv")
    ham_split.assign(split="holdout").to_csv(tmp_path / "names.csv", index=False)
    with pytest.raises(DataError, match=r"unknown split names \['holdout'\]"):
        load_split(tmp_path / "names.csv")
    with pytest.raises(DataError, match="not found; make one with `skinlib split`"):
        load_split(tmp_path / "none.csv")


def test_folds_are_grouped_and_balanced(ham):
    folds = make_folds(ham.head(3000), k=5, seed=1)
    assert sorted(folds["fold"].unique()) == [0, 1, 2, 3, 4]
    assert count_shared_groups(folds["group"], folds["fold"]) == 0
    assert folds["fold"].value_counts(normalize=True).between(0.17, 0.23).all()
    split = fold_to_split(folds, fold=2, seed=1)
    assert (split.loc[split["fold"] == 2, "split"] == "test").all()
    assert audit_split(split).shared_groups == 0 and set(split["split"]) == {"train", "val", "test"}
    for k in (1, 11):
        with pytest.raises(DataError, match="folds must be between 2 and 10"):
            make_folds(ham, k=k)


def test_too_few_groups_and_bad_fractions():
    tiny = pd.DataFrame({"group": ["a", "a", "b", "c"], "label": ["mel", "mel", "nv", "nv"]})
    with pytest.raises(DataError, match="only 3 groups"):
        make_split(tiny)
    with pytest.raises(DataError, match="sum to less than 1"):
        make_split(tiny, val_frac=0.5, test_frac=0.5)


def test_split_cli_writes_file_and_prints_audit(tmp_path, capsys):
    pd.read_csv(HAM_CSV, nrows=2000).to_csv(tmp_path / "HAM10000_metadata.csv", index=False)
    out = tmp_path / "splits.csv"
    args = ["split", str(tmp_path), "--labels-only", "--seed", "0", "--out", str(out)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "groups shared between splits: 0" in printed and "wrote" in printed
    assert (
        set(load_split(out)["split"]) == {"train", "val", "test"} and len(load_split(out)) == 2000
    )
    folds = tmp_path / "folds.csv"
    assert main(["split", str(tmp_path), "--labels-only", "--folds", "3", "--out", str(folds)]) == 0
    assert sorted(load_split(folds)["fold"].unique()) == [0, 1, 2]


# --- the calibration split (data.calibration_fraction) -------------------------------------------


def _digest(split: pd.Series) -> str:
    return hashlib.sha256(",".join(split).encode()).hexdigest()[:16]


def test_calibration_fraction_zero_leaves_the_split_as_it_was(ham):
    # digests of the split column that make_split and fold_to_split gave before the calibration
    # split existed (commit 49564e2): off means byte for byte the same assignment
    head = ham.head(3000)
    assert _digest(make_split(head, seed=3)["split"]) == "90a50795449954b9"
    assert _digest(make_split(head, seed=3, calibration_frac=0.0)["split"]) == "90a50795449954b9"
    folds = make_folds(head, k=5, seed=1)
    off = fold_to_split(folds, fold=2, seed=1, calibration_frac=0.0)
    assert _digest(off["split"]) == "1ffc5b3082731de0"
    assert CALIBRATION not in set(off["split"])


@pytest.mark.slow
@pytest.mark.parametrize("fraction", [0.05, 0.2])
def test_calibration_split_is_carved_from_training_grouped_and_stratified(ham, ham_split, fraction):
    off = ham_split  # seed 0, no calibration split
    on = make_split(ham, seed=0, calibration_frac=fraction)
    # no lesion in two splits: none of calibration's lesions is in train, val or test
    cal_groups = set(on.loc[on["split"] == CALIBRATION, "group"])
    for other in ("train", "val", "test"):
        assert not cal_groups & set(on.loc[on["split"] == other, "group"]), other
    assert count_shared_groups(on["group"], on["split"]) == 0
    # the requested share of all images, taken from training only: val and test are unchanged
    got = split_fractions(on)
    want = {"train": 0.7 - fraction, "val": 0.15, "test": 0.15, CALIBRATION: fraction}
    assert got == pytest.approx(want, abs=0.01)
    moved = on["split"] != off["split"]
    assert moved.any() and (off.loc[moved, "split"] == "train").all()
    assert (on.loc[moved, "split"] == CALIBRATION).all()
    # stratified like the other splits: every class within 2 points of its overall share
    audit = audit_split(on)
    assert set(audit.counts.columns) == {"train", "val", "test", CALIBRATION}
    assert (audit.counts[CALIBRATION] > 0).all()
    assert audit.max_share_deviation <= 0.02, audit.max_deviation


def test_calibration_split_quick_in_folds_split_files_and_bad_fractions(ham, tmp_path):
    head = ham.head(3000)
    split = fold_to_split(make_folds(head, k=5, seed=1), fold=2, seed=1, calibration_frac=0.1)
    assert split_fractions(split)[CALIBRATION] == pytest.approx(0.1, abs=0.01)
    assert (split.loc[split["fold"] == 2, "split"] == "test").all()
    assert count_shared_groups(split["group"], split["split"]) == 0
    on = make_split(head, seed=0, calibration_frac=0.1)
    cal_groups = set(on.loc[on["split"] == CALIBRATION, "group"])
    assert cal_groups and not cal_groups & set(on.loc[on["split"] != CALIBRATION, "group"])
    assert split_fractions(on)[CALIBRATION] == pytest.approx(0.1, abs=0.01)
    # a split file with a calibration split reads back as written
    path = save_split(on, tmp_path / "split.csv")
    assert load_split(path)["split"].tolist() == on["split"].tolist()
    with pytest.raises(DataError, match="sum to less than 1"):
        make_split(head, val_frac=0.3, test_frac=0.3, calibration_frac=0.4)
    with pytest.raises(DataError, match="must be in"):
        carve_calibration(make_split(head, seed=0), 0.8)
