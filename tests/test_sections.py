"""The generated methods chapter says what the runs recorded, and the thesis builds with it (thesis/sections/, thesis/write.py)."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml
from fixtures.results import write_tables
from fixtures.studies import PROFILE, _split

from skinlib import paths
from skinlib.config import Config, TrainConfig
from skinlib.data.formats import FORMATS
from skinlib.data.splits import file_hash
from skinlib.evaluation.conformal import StoredConformal, save_conformal
from skinlib.evaluation.thresholds import OperatingPoint, save_thresholds
from skinlib.io import write_json
from skinlib.profile import load_study_profile
from skinlib.runs import ledger
from skinlib.runs.folder import RunFolder
from skinlib.thesis import citations, records, sections, write

ROOT = Path(__file__).resolve().parents[1]
BIB = ROOT / "thesis" / "references.bib"

# the recipe levers of issue 26 as imbalance arms
LEVERS = {
    "logit_adjusted": {"imbalance.loss": "logit_adjusted", "imbalance.tau": 0.5},
    "balanced_softmax": {"imbalance.loss": "balanced_softmax"},
    "drw": {"imbalance.drw_epoch": 1},
    "metadata": {"model.metadata": True},
}


def _methods_text(profile_file: Path) -> str:
    study = records.read_study(load_study_profile(profile_file))
    return write.to_markdown(sections.methods_sections(study))


def test_changing_the_epochs_changes_the_sentence(study_dirs, tmp_path):
    text = _methods_text(study_dirs())
    assert "for 3 epochs" in text and "Epochs run: 3" in text
    shutil.rmtree(tmp_path / "experiments")
    changed = {**PROFILE, "config": {**PROFILE["config"], "train": {**PROFILE["config"]["train"]}}}
    changed["config"]["train"]["epochs"] = 7
    text = _methods_text(study_dirs(changed))
    assert "for 7 epochs" in text and "Epochs run: 7" in text and "for 3 epochs" not in text


def test_epochs_that_differ_by_run_are_named_per_run(study_dirs):
    recipes = {"vit_tiny": {"train.lr": 0.001, "train.epochs": 4}}
    text = _methods_text(study_dirs({**PROFILE, "recipes": recipes}))
    assert "for 3 epochs for `resnet18`; 4 epochs for `vit_tiny`." in text
    assert "for 3 epochs." not in text


def test_a_monitor_window_is_stated_only_where_a_run_used_one(study_dirs, tmp_path):
    assert "mean over the last" not in _methods_text(study_dirs())
    shutil.rmtree(tmp_path / "experiments")
    recipes = {"vit_tiny": {"train.lr": 0.001, "train.monitor_window": 3}}
    text = _methods_text(study_dirs({**PROFILE, "recipes": recipes}))
    assert "(its mean over the last 1 epoch(s) for `resnet18`; 3 epoch(s) for `vit_tiny`" in text


def test_runs_that_disagree_on_the_seed_are_named_not_averaged(study_dirs, tmp_path):
    text = _methods_text(study_dirs(seeds={"resnet18": 0, "vit_tiny": 1}))
    assert "The runs disagree on the training seed: 0 (`resnet18`); 1 (`vit_tiny`)" in text
    assert "Training seed: 0 for `resnet18`; 1 for `vit_tiny`." in text
    # the same seed everywhere is stated once, with no disagreement
    shutil.rmtree(tmp_path / "experiments")
    agreed = _methods_text(study_dirs())
    assert "Training seed: 0." in agreed and "disagree on the training seed" not in agreed


def test_recipes_are_stated_as_what_differs(study_dirs):
    text = _methods_text(study_dirs())
    assert "`vit_tiny` trained with `train.lr` 0.001 instead of 0.002." in text
    assert "learning rate 0.002 for `resnet18`; 0.001 for `vit_tiny`" in text
    # each imbalance arm is its base plus exactly its own change
    assert "`none`: no change" in text and "`focal`: `imbalance.loss` focal" in text


def test_a_setting_no_recipe_explains_is_flagged(study_dirs, tmp_path):
    file = study_dirs()
    cfg_file = tmp_path / "experiments" / "mini" / "resnet18" / "config.yaml"
    cfg = yaml.safe_load(cfg_file.read_text())
    cfg["train"]["weight_decay"] = 0.1
    cfg_file.write_text(yaml.safe_dump(cfg))
    text = _methods_text(file)
    assert "`train.weight_decay` 0.1 instead of 0.05 (not a recipe of the profile)" in text


def test_runs_on_different_splits_or_versions_are_named(study_dirs, tmp_path):
    file = study_dirs()
    meta_file = tmp_path / "experiments" / "mini" / "vit_tiny" / "meta.json"
    meta = json.loads(meta_file.read_text())
    meta["split_sha256"] = "f" * 64
    meta["versions"]["torch"] = "2.13.0"
    meta_file.write_text(json.dumps(meta))
    text = _methods_text(file)
    assert "The runs disagree on the split file: `3c1146c75096`" in text
    assert "`ffffffffffff` (`vit_tiny`)" in text
    assert "The runs disagree on the version of PyTorch: 2.14.1 (`resnet18`, " in text
    assert "2.13.0 (`vit_tiny`)" in text


def test_split_facts_come_from_the_split_file(study_dirs):
    text = _methods_text(study_dirs())
    assert "60 images of 30 lesions in 3 classes" in text
    assert "achieved, in images: 66.7%/16.7%/16.7% (40/10/10 images)" in text
    sha = file_hash(paths.run_dir("mini", "resnet18") / "split.csv")
    assert f"SHA-256 begins `{sha[:12]}`." in text and "disagree on the split" not in text


def test_augmentation_is_described_from_the_built_transform():
    basic = sections.describe_augmentation("basic")
    assert "random resized crops of 60-100% of the image area" in basic
    assert "rotations by up to 180 degrees" in basic and "brightness 0.1" in basic
    strong = sections.describe_augmentation("strong")
    assert (
        "random erasing" in strong
        and "Gaussian blur" in strong
        and "with probability 0.3" in strong
    )


def _bib_keys() -> set[str]:
    return set(re.findall(r"@\w+\{([^,\s]+),", BIB.read_text()))


def test_every_citation_is_in_the_bibliography(study_dirs):
    write.write_methods(study_dirs())
    out = paths.generated_tables_dir("mini")
    used = set()
    for name in ("methods.tex", "claim.tex"):
        used |= set(
            k
            for group in re.findall(r"\\cite\{([^}]*)\}", (out / name).read_text())
            for k in group.split(",")
        )
    # and every key the code can cite in another study (other datasets, optimisers, methods)
    source = "".join(p.read_text() for p in Path(sections.__file__).parent.glob("*.py"))
    for call in re.findall(r"citation\(([^)]*)\)", source):
        used |= set(re.findall(r"[\"']([a-z]+\d{4}[a-z0-9]*|papermill)[\"']", call))
    used |= {k for f in FORMATS.values() for k in f.citations}
    used |= set(citations.ARCH_PAPERS.values()) | {k for _, k in citations.XAI_PAPERS.values()}
    used |= {k for _, k in citations.SOFTWARE.values() if k} | {"tejani2024claim"}
    assert len(used) > 30 and used <= _bib_keys(), used - _bib_keys()


def test_a_missing_run_is_named(study_dirs, tmp_path):
    file = study_dirs()
    shutil.rmtree(tmp_path / "experiments" / "mini" / "vit_tiny")
    text = _methods_text(file)
    assert "not complete, left out: `vit_tiny`" in text
    assert "`vit_tiny` trained with" not in text


def _compile(folder: Path, main: str = "main") -> str:
    """pdflatex, bibtex, pdflatex twice; returns the final log."""
    for cmd in (["pdflatex"], ["bibtex"], ["pdflatex"], ["pdflatex"]):
        args = [*cmd, main] if cmd == ["bibtex"] else [*cmd, "-interaction=nonstopmode", main]
        run = subprocess.run(args, cwd=folder, capture_output=True, text=True, timeout=180)
        assert run.returncode == 0, (cmd, run.stdout[-3000:])
    return (folder / f"{main}.log").read_text(errors="replace")


@pytest.mark.slow
@pytest.mark.skipif(
    shutil.which("pdflatex") is None or shutil.which("bibtex") is None,
    reason="pdflatex/bibtex not installed (apt-get install latexmk texlive-latex-extra texlive-bibtex-extra)",
)
@pytest.mark.parametrize("levers", [False, True])
def test_the_thesis_builds_with_the_generated_methods_and_bibliography(
    study_dirs, tmp_path, levers
):
    """With ``levers``, every arm of LEVERS and an architecture trained with them: their
    sentences and references set without an overfull line."""
    profile = PROFILE
    if levers:
        imbalance = {**PROFILE["imbalance"], "strategies": {"none": {}, **LEVERS}}
        recipe = {"train.lr": 0.001, "imbalance.loss": "logit_adjusted", "model.metadata": True}
        profile = {**PROFILE, "imbalance": imbalance, "recipes": {"vit_tiny": recipe}}
    write.write_methods(study_dirs(profile))
    thesis = tmp_path / "thesis"
    for name in ("main.tex", "references.bib"):
        shutil.copy(ROOT / "thesis" / name, thesis / name)
    main = (
        (thesis / "main.tex")
        .read_text()
        .replace("\\newcommand{\\study}{demo}", "\\newcommand{\\study}{mini}")
    )
    (thesis / "main.tex").write_text(main)
    log = _compile(thesis)
    assert "Citation" not in log or "undefined" not in log, re.findall(
        r".*Citation.*undefined.*", log
    )
    assert "There were undefined references" not in log
    assert "Overfull \\hbox" not in log, re.findall(r"Overfull \\hbox.*\n.*", log)
    assert (thesis / "main.bbl").read_text().count("\\bibitem") >= 10


def test_the_pipeline_writes_the_methods_after_its_steps(study_dirs, monkeypatch):
    from skinlib.study import pipeline

    def fake_step(step, output, progress=True):  # the notebook's work is not under test here
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text("{}")

    monkeypatch.setattr(pipeline, "execute_step", fake_step)
    file = study_dirs()
    pipeline.run_pipeline(file, only=["01_eda"], progress=False)
    out = paths.generated_tables_dir("mini")
    assert "\\label{sec:methods-training}" in (out / "methods.tex").read_text()
    assert (out / "claim.md").is_file() and (out / "methods.md").is_file()
    # a run that skips every step leaves them as they are, as it leaves the steps' outputs
    (out / "methods.tex").write_text("kept")
    assert set(pipeline.run_pipeline(file, only=["01_eda"], progress=False).values()) == {"skipped"}
    assert (out / "methods.tex").read_text() == "kept"


def test_a_split_without_lesion_ids_is_called_image_level(study_dirs, tmp_path):
    file = study_dirs()
    for split_file in (tmp_path / "experiments" / "mini").glob("*/split.csv"):
        split = pd.read_csv(split_file)
        split.assign(group=split["image_id"]).to_csv(split_file, index=False)
    write_tables("mini", "comparison")
    text = _methods_text(file)
    assert "grouped by image" in text and "the split is at the image level" in text
    assert "resamples of images" in text


def _interval_sentence(text: str) -> str:
    return re.search(r"On the test set, .*? without an interval\.", text).group()


def test_the_interval_sentence_names_the_metrics_without_intervals(study_dirs):
    """Tables written before 04 and 08 gave intervals: their metrics are point estimates."""
    file = study_dirs()
    write_tables("mini", "comparison", "calibration", "trust_aurc", "xai_scores")
    text = _methods_text(file)
    assert "Every metric on the test set has" not in text
    assert (
        "On the test set, balanced accuracy, accuracy, macro F1 and macro AUC carry 95% "
        "percentile bootstrap intervals"
    ) in text
    assert (
        "the calibration metrics (ECE, MCE, classwise ECE, negative log-likelihood, Brier "
        "score), the area under the risk-coverage curve and the Grad-CAM scores are point "
        "estimates without an interval."
    ) in text


def test_the_calibration_sentence_warns_that_binned_errors_are_biased(study_dirs):
    file = study_dirs()
    assert "biased upwards" not in _methods_text(file)  # 04 and 07 did not run
    write_tables("mini", "calibration")
    text = _methods_text(file)
    assert "Binned errors are biased upwards in finite samples" in text
    assert "[@kumar2019verified]" in text and "can lie above the estimate itself" in text


def test_the_interval_sentence_lists_calibration_and_aurc_once_their_tables_hold_intervals(
    study_dirs,
):
    file = study_dirs()
    write_tables("mini", "comparison", "xai_scores")
    write_tables(
        "mini",
        "calibration",
        columns=[f"test_{s}{b}" for s in ("before", "after") for b in ("", "_low", "_high")],
    )
    write_tables("mini", "trust_aurc", columns=["confidence", "aurc", "aurc_low", "aurc_high"])
    sentence = _interval_sentence(_methods_text(file))
    assert (
        "; so do the calibration metrics (ECE, MCE, classwise ECE, negative log-likelihood, "
        "Brier score) before and after scaling and the area under the risk-coverage curve; "
    ) in sentence
    assert sentence.endswith(
        "the ECE shown in the model comparison and the Grad-CAM scores are point estimates "
        "without an interval."
    )
    # map scores with intervals join the others; with 04 not run, only 07's ECE is left
    write_tables("mini", "xai_scores", columns=["pointing", "pointing_low", "pointing_high"])
    (paths.generated_tables_dir("mini") / "calibration.csv").unlink()
    sentence = _interval_sentence(_methods_text(file))
    assert "so do the area under the risk-coverage curve and the Grad-CAM scores;" in sentence
    assert "calibration metrics" not in sentence
    assert sentence.endswith(
        "the ECE shown in the model comparison is a point estimate without an interval."
    )


def test_tta_xai_and_trust_sentences_need_the_files_their_steps_write(study_dirs):
    file = study_dirs({**PROFILE, "evaluation": {**PROFILE["evaluation"], "tta": True}})
    text = _methods_text(file)  # the profile asks for them, but no step ran (pipeline --only)
    for sentence in ("Test-time augmentation", "Explanations are", "Prediction sets were built"):
        assert sentence not in text, sentence
    assert "deferring an image" not in text and "paired bootstrap" not in text
    write_tables("mini", "xai_scores", "trust_conformal", "trust_deferral", "paired_tests")
    tta = paths.run_dir("mini", "resnet18") / "predictions_test_tta.csv"
    tta.write_text("image_id\n")
    text = _methods_text(file)
    assert "Test-time augmentation (for `resnet18`) averages the predicted probabilities" in text
    assert "Explanations are Grad-CAM" in text and "paired bootstrap" in text
    assert "Prediction sets were built by split conformal prediction" in text
    assert "; the threshold for deferring an image to a dermatologist" in text
    assert "thresholds answering" not in text  # a deferral table without fixed shares
    write_tables("mini", "trust_deferral", columns=("policy", "confidence"))
    assert (
        "(a class never answered counts as 0), and, beside it, thresholds answering 90%, 70%, "
        "50% of the same split's images." in _methods_text(file)
    )


def test_the_external_auc_column_says_which_probabilities_it_scored():
    from skinlib.external.sets import external_for_reading

    def rows(calibrated: list[bool]) -> pd.DataFrame:
        values = {
            f"{m}{s}": 0.7
            for m in ("balanced_accuracy", "macro_auc", "positive_auc", "positive_sensitivity")
            for s in ("", "_low", "_high")
        }
        return pd.DataFrame(
            [
                {"run": "r", "set": "ph2", "images": 10, "calibrated": c, **values}
                for c in calibrated
            ]
        )

    assert "AUC (calibrated)" in external_for_reading(rows([True, True])).columns
    assert "AUC (raw)" in external_for_reading(rows([False])).columns
    mixed = external_for_reading(rows([True, False])).columns
    assert "AUC (raw)" not in mixed and "AUC (calibrated)" not in mixed


def test_the_test_look_sentence_counts_other_configurations_scored_before(study_dirs):
    file = study_dirs()
    assert "test-look ledger" not in _methods_text(file)  # no ledger: no claim, not "zero"
    study_dir = paths.study_dir("mini")
    reported = {run: RunFolder.of("mini", run).fingerprint() for run in ("resnet18", "vit_tiny")}
    tried = [ledger.config_fingerprint(Config(train=TrainConfig(lr=lr))) for lr in (0.1, 0.2)]
    ledger.record_look(study_dir, "resnet18", tried[0])  # an earlier resnet18, since retrained
    assert "test-look ledger" not in _methods_text(file)  # it never saw a reported one
    ledger.record_look(study_dir, "resnet18", tried[0], ledger.external("ph2"))  # a repeat
    ledger.record_look(study_dir, "resnet18", reported["resnet18"])
    ledger.record_look(study_dir, "vit_tiny", tried[1])  # after the last reported look: not yet
    text = _methods_text(file)
    assert (
        "1 distinct configuration other than the 4 reported here was scored on the test split "
        "or an external set before the reported results were last computed."
    ) in text
    ledger.record_look(study_dir, "vit_tiny", reported["vit_tiny"])
    assert "2 distinct configurations other than the 4 reported here were scored" in (
        _methods_text(file)
    )
    (study_dir / ledger.LEDGER).write_text("")
    ledger.record_look(study_dir, "resnet18", reported["resnet18"])
    text = _methods_text(file)
    assert "no configuration other than the 4 reported here was scored" in text
    assert f"kept since {ledger.read_looks(study_dir)[0].time[:10]}" in text


def _give_calibration_split(run_dir: Path) -> None:
    """What training, 04, 05 and 08 leave in a run with a calibration split: lesions 16-19 of
    training in ``split.csv``, its predictions, and records fitted on it."""
    split = _split()
    split.loc[split["group"].isin([f"L{i}" for i in range(16, 20)]), "split"] = "calibration"
    split.to_csv(run_dir / "split.csv", index=False)
    (run_dir / "predictions_calibration.csv").write_text("image_id\n")  # the split 08 fits on
    write_json(
        run_dir / "calibration.json",
        {"temperature": 1.5, "fitted_on": "calibration", "method": "temperature scaling"},
    )
    point = OperatingPoint(["mel"], "specificity", 0.95, 0.3, 1.5, 0.7, 0.95)
    save_thresholds(run_dir / "thresholds.json", [point], chosen_on="calibration")
    grouping = "lesion weights (each calibration lesion weighs 1; asymptotically valid)"
    stored = StoredConformal("lac", 0.9, False, [0.8] * 3, ["bkl", "mel", "nv"], 1.5, grouping)
    save_conformal(run_dir / "conformal.json", dataclasses.replace(stored, fitted_on="calibration"))


def test_methods_say_which_split_fitted_what_from_the_records(study_dirs):
    with_fraction = {**PROFILE, "config": {**PROFILE["config"]}}
    with_fraction["config"]["data"] = {**PROFILE["config"]["data"], "calibration_fraction": 0.1}
    file = study_dirs(with_fraction)
    write_tables("mini", "trust_conformal", "trust_deferral")
    default = _methods_text(file)  # the fraction asked, but no run's split file holds one
    assert "calibration split" not in default and "Validation chose" not in default
    assert "fitted on the validation split" in default
    for arch in ("resnet18", "vit_tiny"):
        _give_calibration_split(paths.run_dir("mini", arch))
    text = _methods_text(file)
    assert (
        "Requested fractions (training/validation/test/calibration): 60.0%/15.0%/15.0%/10.0%"
        in text
    )
    assert "achieved, in images: 53.3%/16.7%/16.7%/13.3% (32/10/10/8 images)" in text
    assert "assigned to training, validation, test and calibration sets grouped by lesion" in text
    assert "A calibration split was carved out of the training images, grouped by lesion" in text
    assert (
        "Validation chose the kept checkpoint of every run, the architectures' recipes and the "
        "run the trust analysis audits; post-hoc calibration fitted the temperature, the "
        "operating thresholds, the conformal sets and the deferral threshold on the calibration "
        "split."
    ) in text
    assert "by temperature scaling [@guo2017calibration], fitted on the calibration split" in text
    assert "Operating thresholds were chosen on the calibration split for a target" in text
    assert "Mondrian sets, calibrated on the calibration split with each lesion weighted" in text
    assert "deferring an image to a dermatologist was chosen on the calibration split for" in text
    assert "validation split" not in text
    # a step is named with the split its record gives: a temperature fitted on validation
    # (04 run before the split existed) says so, and a step that has not run is not named
    vit = paths.run_dir("mini", "vit_tiny")
    write_json(
        vit / "calibration.json",
        {"temperature": 1.2, "fitted_on": "val", "method": "temperature scaling"},
    )
    (vit / "thresholds.json").unlink()
    (paths.run_dir("mini", "resnet18") / "thresholds.json").unlink()
    text = _methods_text(file)
    assert (
        "post-hoc calibration fitted the temperature on the calibration split for `resnet18`; "
        "validation split for `vit_tiny`; the conformal sets and the deferral threshold on the "
        "calibration split."
    ) in text
    assert "operating thresholds" not in text


def test_the_levers_are_described_only_where_a_run_used_them(study_dirs, tmp_path):
    plain = _methods_text(study_dirs())
    for words in ("Logit adjustment", "Deferred re-weighting", "age, sex and the lesion's"):
        assert words not in plain
    shutil.rmtree(tmp_path / "experiments")
    imbalance = {**PROFILE["imbalance"], "strategies": {"none": {}, **LEVERS}}
    text = _methods_text(study_dirs({**PROFILE, "imbalance": imbalance}))
    # each arm is its base plus its own change, and what the change does is said with its paper
    assert "`drw`: `imbalance.drw_epoch` 1" in text and "`metadata`: `model.metadata` on" in text
    assert "Logit adjustment [@menon2021logit] adds tau times the logarithm" in text
    assert "the balanced softmax [@ren2020balanced]" in text
    assert "uniform under oversampling" in text and "unadjusted logits" in text
    assert "Deferred re-weighting [@cao2019ldam]" in text
    assert "`imbalance_metadata` also read the patient's age, sex" in text
    assert "(2 sex and 3 site levels)" in text and "64 and 32 units" in text
    assert "fitted on the training split alone" in text
    # the architecture runs used none of them: their training sentence names plain CE
    assert "Loss and class-imbalance handling: cross-entropy" in text
    assert "`resnet18` also read" not in text


def test_an_architecture_trained_with_a_lever_says_so_in_its_loss_and_model(study_dirs):
    recipes = {
        "vit_tiny": {
            "train.lr": 0.001,
            "imbalance.loss": "logit_adjusted",
            "imbalance.drw_epoch": 0.5,
            "model.metadata": True,
        }
    }
    text = _methods_text(study_dirs({**PROFILE, "recipes": recipes}))
    assert "logit-adjusted cross-entropy (tau 1), deferred re-weighting (class-balanced" in text
    assert "beta 0.999, from epoch 3 on) for `vit_tiny`" in text  # round(0.5 * 3) = 2 plain
    assert "[@cao2019ldam; @cui2019classbalanced; @menon2021logit]" in text
    assert "`vit_tiny` also read the patient's age" in text
