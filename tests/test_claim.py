"""The CLAIM checklist: every item has a place or a reason, and points only at what exists (thesis/claim.py)."""

from __future__ import annotations

import re
from pathlib import Path

from fixtures.results import write_tables

from skinlib import paths
from skinlib.thesis import claim, write


def test_claim_covers_all_44_items_with_a_place_or_a_reason(study_dirs):
    write.write_methods(study_dirs())
    out = paths.generated_tables_dir("mini")
    md = (out / "claim.md").read_text()
    rows = [line for line in md.splitlines() if re.match(r"\| \d+ \|", line)]
    assert [int(r.split("|")[1]) for r in rows] == list(range(1, 45))
    for row in rows:
        where = row.rstrip(" |").split("|")[-1].strip()
        assert where.startswith(
            ("Methods:", "Results:", "Table", "Figure", "*Not reported:*", "*Author to fill:*")
        ), row
    # synthetic data: no patients, so de-identification is not applicable, said so
    assert "| 11 |" in md and "not applicable: the images are synthetic" in md
    # no external test set: said so, with why
    assert "no external test set" in md
    tex = (out / "claim.tex").read_text()
    assert tex.count("\\\\\n") >= 44 and "\\label{tab:claim}" in tex


def test_claim_reports_external_testing_once_a_table_exists(study_dirs):
    file = study_dirs()
    out = paths.generated_tables_dir("mini")
    out.mkdir(parents=True)
    (out / "external_isic2019.tex").write_text("% a table\n")
    write.write_methods(file)
    tex = (out / "claim.tex").read_text()
    row = next(line for line in tex.splitlines() if line.startswith("33 &"))
    assert "Table~\\ref{tab:external_isic2019}" in row and "Not reported" not in row
    assert "Sections~\\ref{sec:methods-split}" not in tex  # one reference there: singular
    assert (
        "Section~\\ref{sec:methods-split}; Table~\\ref{tab:split_audit}" not in tex
    )  # no table yet


def test_claim_points_only_at_labels_that_exist(study_dirs):
    write.write_methods(study_dirs())
    out = paths.generated_tables_dir("mini")
    refs = set(re.findall(r"\\ref\{([^}]+)\}", (out / "claim.tex").read_text()))
    defined = set(re.findall(r"\\label\{([^}]+)\}", (out / "methods.tex").read_text()))
    defined |= set(re.findall(r"\\label\{([^}]+)\}", (ROOT / "thesis" / "main.tex").read_text()))
    # tables do not exist in this study folder yet: the claim must not point at them
    assert refs and refs <= defined, refs - defined
    assert all(item.number for item in claim.ITEMS) and len(claim.ITEMS) == 44


def _claim_row(number: int) -> str:
    tex = (paths.generated_tables_dir("mini") / "claim.tex").read_text()
    return next(line for line in tex.splitlines() if line.startswith(f"{number} &"))


def test_claim_subgroups_robustness_and_curves_follow_the_artefacts(study_dirs):
    file = study_dirs()
    write_tables("mini", "comparison")  # 07 ran, 08 did not
    write.write_methods(file)
    assert "no subgroup analysis" in _claim_row(37)
    assert "Not reported" in _claim_row(30)  # no imbalance, subgroup or unknown table yet
    write_tables("mini", "trust_subgroups", "trust_unknown")
    figures = paths.study_figures_dir("mini")
    figures.mkdir(parents=True)
    for name in ("comparison_curves", "train_resnet18_loss"):
        (figures / f"{name}.pdf").write_text("%PDF")
    write.write_methods(file)
    row = _claim_row(37)
    assert "tab:trust_subgroups" in row and "no subgroup analysis" not in row
    row = _claim_row(30)
    assert "tab:trust_subgroups" in row and "tab:trust_unknown" in row
    assert "imbalance strategy" not in row and "test-time augmentation" not in row
    row = _claim_row(32)
    assert "fig:train_resnet18_loss" in row and "training against validation loss" in row
    assert "validation balanced accuracy per epoch" in row


def test_claim_38_points_at_the_operating_points_only_once_05_wrote_them(study_dirs):
    file = study_dirs()
    write_tables("mini", "comparison")  # 07 ran, 05 did not
    write.write_methods(file)
    assert "tab:comparison" in _claim_row(38) and "tab:operating_points" not in _claim_row(38)
    write_tables("mini", "operating_points")
    write.write_methods(file)
    assert "Tables~\\ref{tab:comparison}, \\ref{tab:operating_points}" in _claim_row(38)


ROOT = Path(__file__).resolve().parents[1]


def test_claim_12_says_whether_metadata_are_model_inputs_as_the_runs_recorded(study_dirs, tmp_path):
    import shutil

    from fixtures.studies import PROFILE

    write.write_methods(study_dirs())
    assert "metadata are not model inputs" in _claim_row(12)
    shutil.rmtree(tmp_path / "experiments")
    shutil.rmtree(tmp_path / "thesis")
    imbalance = {
        **PROFILE["imbalance"],
        "strategies": {"none": {}, "metadata": {"model.metadata": True}},
    }
    write.write_methods(study_dirs({**PROFILE, "imbalance": imbalance}))
    row = _claim_row(12)
    assert "not model inputs" not in row
    assert "age, sex and site are inputs of imbalance" in row and "metadata only" in row
    assert "sec:methods-models" in row and "sec:methods-imbalance" in row


def test_claim_37_and_39_name_09s_audit_only_once_it_wrote_its_tables(study_dirs):
    file = study_dirs()
    write_tables("mini", "comparison")  # 07 ran, 09 did not
    write.write_methods(file)
    assert "skin_tone" not in _claim_row(37) and "confused_pairs" not in _claim_row(39)
    write_tables("mini", "skin_tone_performance", "confused_pairs", "label_issue_counts")
    write.write_methods(file)
    assert "tab:skin_tone_performance" in _claim_row(37) and "skin-tone band" in _claim_row(37)
    row = _claim_row(39)
    assert "tab:confused_pairs" in row and "tab:label_issue_counts" in row
    assert "most confused class pairs" in row
