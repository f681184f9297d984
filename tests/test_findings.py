"""The computed sentences under each result state what the numbers say."""

from __future__ import annotations

import numpy as np
import pandas as pd
from fixtures.results import weak_site_audit

from skinlib.study import findings
from skinlib.thesis import plots


def _row(model, value, low, high):
    return {
        "model": model,
        "balanced_accuracy": value,
        "balanced_accuracy_low": low,
        "balanced_accuracy_high": high,
    }


def test_ranking_orders_and_names_overlapping_intervals():
    rows = [_row("b", 0.6, 0.5, 0.7), _row("a", 0.8, 0.72, 0.88), _row("c", 0.75, 0.6, 0.8)]
    text = findings.ranking(rows, n_classes=7)
    assert text.startswith("Best: a, balanced accuracy 0.800 [0.720, 0.880] (chance 0.143)")
    assert text.index("c 0.750") < text.index("b 0.600")
    assert text.endswith("Intervals overlapping the best one's: c.")
    alone = findings.ranking([_row("a", 0.8, 0.75, 0.85), _row("b", 0.5, 0.4, 0.6)], 2)
    assert alone.endswith("overlapping the best one's: none.")


def test_calibration_names_who_improved_and_who_did_not():
    table = pd.DataFrame(
        {
            "model": ["r", "r", "r", "r", "v", "v", "v", "v"],
            "split": ["val", "val", "test", "test"] * 2,
            "stage": ["before", "after"] * 4,
            "ece": [0.08, 0.02, 0.117, 0.039, 0.15, 0.2, 0.19, 0.22],
        }
    )
    text = findings.calibration(table)
    assert text.startswith(
        "Temperature scaling lowered the test ECE for 1 of 2 models: r 0.117 -> 0.039"
    )
    assert "It did not for v 0.190 -> 0.220" in text
    assert "for 1 of 2 models: r 0.080 -> 0.020" in findings.calibration(table, "val")


def test_calibration_explains_an_ece_interval_above_its_estimate():
    """Binned ECE is biased upwards and its resamples share the bias, so a test interval can lie
    wholly above the estimate; the finding names where and says why."""
    table = pd.DataFrame(
        {
            "model": ["r"] * 4,
            "split": ["val", "val", "test", "test"],
            "stage": ["before", "after"] * 2,
            "ece": [0.08, 0.02, 0.117, 0.019],
            "ece_low": [np.nan, np.nan, 0.09, 0.024],  # after scaling: above its 0.019
        }
    )
    text = findings.calibration(table)
    assert "The ECE interval lies above the estimate for r (after): binned errors" in text
    assert "r (before)" not in text
    assert "lies above" not in findings.calibration(table.assign(ece_low=table["ece"] - 0.01))
    assert "lies above" not in findings.calibration(table.drop(columns="ece_low"))


def test_operating_points_picks_the_target_row_per_model():
    points = pd.DataFrame(
        {
            "model": ["r", "r", "d", "d"],
            "positive": ["mel"] * 4,
            "criterion": ["specificity", "youden"] * 2,
            "target": [0.95, None, 0.95, None],
            "test_sensitivity": [0.7, 0.9, 0.65, 0.9],
            "test_sensitivity_low": [0.48, 0.7, 0.43, 0.7],
            "test_sensitivity_high": [0.86, 0.97, 0.82, 0.97],
            "test_specificity": [0.967, 0.9, 0.98, 0.8],
        }
    )
    text = findings.operating_points(points, "mel", 0.95)
    assert "95% specificity on validation, mel sensitivity on test" in text
    assert "r 0.700 [0.480, 0.860] at specificity 0.97; d 0.650 [0.430, 0.820]" in text
    assert "0.900" not in text  # the Youden rows are not the 95 % operating point


def test_cam_scores_best_and_worst_against_chance():
    summary = pd.DataFrame(
        {
            "pointing": [0.958, 0.167, None],
            "energy_inside": [0.56, 0.21, None],
            "mask_share": 0.144,
        },
        index=pd.Index(["densenet121", "resnet18", "flat"], name="model"),
    )
    text = findings.cam_scores(summary)
    assert text == (
        "densenet121's maps peak on the lesion in 96% of test images (56% of their energy "
        "inside, 14% by chance); resnet18's in 17% (21%)."
    )
    assert "ROAD" in findings.cam_scores(pd.DataFrame({"road": [0.1]}))


def _detection_rows(unknown, reference, score, selection, auroc):
    return {
        "unknown": unknown,
        "reference": reference,
        "score": score,
        "selection_auroc": selection,
        "auroc": auroc,
        "auroc_low": auroc - 0.05,
        "auroc_high": auroc + 0.05,
        "fpr": 0.3,
        "fpr_low": 0.2,
        "fpr_high": 0.4,
    }


def test_unknown_detection_reports_the_score_chosen_on_validation_not_on_test():
    """msp has the higher test AUROC but energy the higher selection AUROC: energy is named."""
    table = pd.DataFrame(
        [
            _detection_rows("blank skin", "test", "msp", 0.70, 0.90),
            _detection_rows("blank skin", "test", "energy", 0.80, 0.85),
        ]
    )
    text = findings.unknown_detection(table)
    assert "blank skin: energy AUROC 0.850 [0.800, 0.900]" in text
    assert "chosen on validation images and a held-out half of the unknown lesions" in text


def test_unknown_detection_states_novelty_beside_the_dataset_shift_control():
    table = pd.DataFrame(
        [
            _detection_rows("known classes (isic2019)", "test", "msp", 0.6, 0.70),
            # the control's own best selection score; it is reported with its unknowns' score
            _detection_rows("known classes (isic2019)", "test", "energy", 0.9, 0.95),
            _detection_rows("unseen class (scc)", "test", "msp", 0.8, 0.80),
            _detection_rows("unseen class (scc)", "known classes (isic2019)", "msp", 0.8, 0.60),
        ]
    )
    text = findings.unknown_detection(table)
    assert "known classes (isic2019): msp AUROC 0.700 [0.650, 0.750]" in text
    assert "(known classes from another source: dataset shift alone)" in text
    assert (
        "unseen class (scc): msp AUROC 0.800 [0.750, 0.850], 0.30 [0.20, 0.40] accepted at 95% "
        "of known images kept; against known classes (isic2019) from its own source (novelty "
        "alone) AUROC 0.600 [0.550, 0.650]"
    ) in text


def _coverage_rows(setting, cov, size, every=(False, False, False), lesions=(95, 40, 5)):
    return [
        {
            "setting": setting,
            "class": name,
            "target": 0.9,
            "coverage": c,
            "coverage_low": c - 0.05,
            "coverage_high": c + 0.05,
            "image_coverage": c - 0.1,
            "mean_size": size,
            "mean_size_low": size - 0.1,
            "mean_size_high": size + 0.1,
            "in_every_set": e,
            "calibration_lesions": n,
        }
        for name, c, e, n in zip(["all", "a", "b"], cov, every, lesions, strict=True)
    ]


def test_coverage_words_the_mondrian_change_from_the_computed_numbers():
    # Mondrian lowers the marginal least-covered class b (0.70 -> 0.60): no "raise"
    table = pd.DataFrame(
        _coverage_rows("lac 90%", [0.9, 0.95, 0.7], 1.5)
        + _coverage_rows("lac Mondrian 90%", [0.9, 0.55, 0.6], 1.8)
    )
    text = findings.coverage(table, "lac 90%", "lac Mondrian 90%")
    assert "raise" not in text and "lower b from 0.700 to 0.600" in text
    assert "per lesion 0.900 [0.850, 0.950] (image average 0.800)" in text


def test_coverage_says_which_classes_are_in_every_set_for_too_few_lesions():
    table = pd.DataFrame(
        _coverage_rows("lac 90%", [0.9, 0.95, 0.7], 1.5)
        + _coverage_rows("lac Mondrian 90%", [0.9, 0.9, 1.0], 1.8, every=(False, False, True))
    )
    text = findings.coverage(table, "lac 90%", "lac Mondrian 90%")
    assert "raise b from 0.700 to 1.000" in text
    assert "b (5 lesions) is in every set: too few validation lesions calibrate it" in text
    table.loc[table["calibration_lesions"] == 5, "calibration_lesions"] = 1  # the demo's vasc
    assert "b (1 lesion) is in every set" in findings.coverage(table, "lac 90%", "lac Mondrian 90%")


def test_findings_name_the_split_that_fitted_the_step():
    """With a calibration split, each sentence says the temperature, threshold, sets and
    deferral were fitted there; validation's words stay where validation fitted them."""
    table = pd.DataFrame(
        {
            "model": ["v"] * 4,
            "split": ["calibration", "calibration", "test", "test"],
            "stage": ["before", "after"] * 2,
            "ece": [0.15, 0.2, 0.19, 0.22],
        }
    )
    assert "(the temperature minimises calibration NLL," in findings.calibration(table)
    points = pd.DataFrame(
        {
            "model": ["r"],
            "positive": ["mel"],
            "criterion": ["specificity"],
            "target": [0.95],
            "test_sensitivity": [0.7],
            "test_sensitivity_low": [0.48],
            "test_sensitivity_high": [0.86],
            "test_specificity": [0.967],
        }
    )
    text = findings.operating_points(points, "mel", 0.95, chosen_on="calibration")
    assert "95% specificity on the calibration split, mel sensitivity on test" in text
    sets = pd.DataFrame(
        _coverage_rows("lac 90%", [0.9, 0.95, 0.7], 1.5)
        + _coverage_rows("lac Mondrian 90%", [0.9, 0.9, 1.0], 1.8, every=(False, False, True))
    )
    text = findings.coverage(sets, "lac 90%", "lac Mondrian 90%", calibrated_on="calibration")
    assert "(lac 90%, calibrated on calibration lesions)" in text
    assert "too few calibration lesions calibrate it" in text and "validation" not in text
    deferral = pd.DataFrame(
        {
            "confidence": ["max_probability"],
            "target": 0.9,
            "val_coverage": [0.6],
            "coverage": [0.55],
            "coverage_low": [0.5],
            "coverage_high": [0.6],
            "balanced_accuracy": [0.88],
            "balanced_accuracy_low": [0.8],
            "balanced_accuracy_high": [0.95],
            "balanced_accuracy_all": [0.7],
        }
    )
    text = findings.deferral(deferral, chosen_on="calibration")
    assert "answering most calibration images; threshold chosen on the calibration split" in text
    assert "validation" not in text


def test_worst_subgroup_also_names_a_clear_gap_behind_a_larger_noisy_one():
    """Regression (real HAM10000): the largest gap (site = unknown, 30 lesions, p_holm = 1) was
    named and the clear one (histopathology-confirmed lesions, p_holm < 0.001) was not."""
    row = {"images": 50, "lesions": 40, "classes": 3, "low": 0.1, "high": 0.9, "rest": 0.7}
    table = pd.DataFrame(
        [
            row
            | {"attribute": "site", "group": "unknown", "value": 0.25, "difference": -0.47}
            | {"difference_low": -0.53, "difference_high": 0.13, "p": 0.15, "p_holm": 1.0},
            row
            | {"attribute": "confirmation", "group": "histo", "value": 0.38}
            | {"difference": -0.38, "difference_low": -0.53, "difference_high": -0.25}
            | {"p": 0.0, "p_holm": 0.0},
            row
            | {"attribute": "sex", "group": "male", "value": 0.6, "difference": 0.05}
            | {"difference_low": -0.1, "difference_high": 0.2, "p": 0.01, "p_holm": 0.02},
        ]
    ).assign(small=False, worst=[True, True, True])
    text = findings.worst_subgroup(table)
    assert text.startswith("Furthest below the rest of the test set: site = unknown")
    assert "Clearly below the rest after Holm's adjustment: confirmation = histo (" in text
    assert "p < 0.001" in text and "sex = male" not in text  # above its rest: not "below"


def test_deferral_sentence_states_the_trade_off():
    text = findings.deferral(_deferral())
    assert "max probability" in text and "answers 0.55 [0.50, 0.60] of test images" in text
    assert "balanced accuracy 0.880 [0.800, 0.950], against 0.700 when it answers all" in text
    assert "defer every image" in findings.deferral(_deferral(0.0).iloc[[0]])


def test_worst_subgroup_sentence_and_forest():
    audit = weak_site_audit()
    text = findings.worst_subgroup(audit)
    assert text.startswith("Furthest below the rest of the test set: site = face, balanced")
    assert "a difference at the 5% level" in text and "1 group(s) had too few lesions" in text
    fig = plots.subgroup_forest(audit)
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert "site: ear (small)" in labels and len(labels) == 3


def test_unknown_detection_sentence_names_the_best_score_per_kind():
    table = pd.DataFrame(
        {
            "unknown": ["blank", "blank"],
            "score": ["msp", "energy"],
            "auroc": [0.7, 0.9],
            "auroc_low": [0.6, 0.85],
            "auroc_high": [0.8, 0.95],
            "fpr": [0.5, 0.2],
            "fpr_low": [0.4, 0.1],
            "fpr_high": [0.6, 0.3],
        }
    )
    text = findings.unknown_detection(table)
    assert "blank: energy AUROC 0.900 [0.850, 0.950], 0.20 [0.10, 0.30] accepted" in text


def _deferral(val_coverage=0.6):
    return pd.DataFrame(
        {
            "confidence": ["max_probability", "margin"],
            "target": 0.9,
            "val_coverage": [val_coverage, 0.5],
            "coverage": [0.55, 0.5],
            "coverage_low": [0.5, 0.45],
            "coverage_high": [0.6, 0.55],
            "balanced_accuracy": [0.88, 0.87],
            "balanced_accuracy_low": [0.8, 0.8],
            "balanced_accuracy_high": [0.95, 0.94],
            "balanced_accuracy_all": [0.7, 0.7],
        }
    )


def test_epochs_says_how_many_each_run_got_and_why():
    def run(ran, stopped="epochs", **plan):
        budget = {"epochs": 4, "cap": 6, "budget_min": 1.5, "step_s": 0.25, **plan}
        return {"epochs_run": ran, "stopped_by": stopped, "budget": budget if plan else None}

    text = findings.epochs(
        {
            "fits": run(4, limited_by="budget"),
            "capped": run(6, limited_by="cap", epochs=6),
            "least": run(1, limited_by="minimum", epochs=1),
            "behind": run(2, "budget", limited_by="budget"),
            "patient": run(3, "patience", limited_by="budget"),
            "given": run(10),
            "stopped": run(7, "patience"),
        }
    )
    assert text == (
        "Epochs per run: fits 4 of at most 6 (what fits its 1.5 min at 0.25 s per step); "
        "capped 6, the cap (its 1.5 min at 0.25 s per step would fit more); "
        "least 1 (none fits its 1.5 min at 0.25 s per step; one is the least a run trains); "
        "behind 2 of 4 planned (stopped at its budget, 1.5 min at 0.25 s per step measured); "
        "patient 3 of 4 planned (early stopping; 1.5 min at 0.25 s per step); "
        "given 10 (as given); stopped 7 (early stopping)."
    )
