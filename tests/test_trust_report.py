"""08 trust: the findings sentences and figures, from small known tables."""

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from skinlib.evaluation.selective import risk_coverage  # noqa: E402
from skinlib.evaluation.subgroups import subgroup_table  # noqa: E402
from skinlib.study import findings  # noqa: E402
from skinlib.thesis import plots


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


def test_deferral_sentence_states_the_trade_off():
    text = findings.deferral(_deferral())
    assert "max probability" in text and "answers 0.55 [0.50, 0.60] of test images" in text
    assert "balanced accuracy 0.880 [0.800, 0.950], against 0.700 when it answers all" in text
    assert "defer every image" in findings.deferral(_deferral(0.0).iloc[[0]])


def _audit():
    rng = np.random.default_rng(0)
    n = 400
    site = np.where(np.arange(n) % 2, "back", "face").astype(object)
    site[:6] = "ear"
    y = rng.integers(0, 2, n)
    right = np.where(site == "face", rng.random(n) < 0.6, rng.random(n) < 0.95)
    proba = np.stack([1 - np.where(right, y, 1 - y), np.where(right, y, 1 - y)], 1) * 0.8 + 0.1
    return subgroup_table(y, proba, np.arange(n), pd.DataFrame({"site": site}), n_boot=100)


def test_worst_subgroup_sentence_and_forest():
    audit = _audit()
    text = findings.worst_subgroup(audit)
    assert text.startswith("Furthest below the rest of the test set: site = face, balanced")
    assert "a difference at the 5% level" in text and "1 group(s) had too few lesions" in text
    fig = plots.subgroup_forest(audit)
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert "site: ear (small)" in labels and len(labels) == 3


def test_subgroup_forest_draws_the_tested_difference_against_zero():
    """The figure shows what the table tests: each group minus the rest, with that interval,
    against a zero line, in the order of the ticks (top row first)."""
    audit = _audit()
    ax = plots.subgroup_forest(audit).axes[0]
    drawn = []
    for bars in ax.containers:
        (x,), (y,) = bars.lines[0].get_xdata(), bars.lines[0].get_ydata()
        (low, _), (high, _) = bars.lines[2][0].get_segments()[0]
        drawn.append((y, x, low, high))
    drawn = [row[1:] for row in sorted(drawn, reverse=True)]  # top row first
    expected = audit[["difference", "difference_low", "difference_high"]].to_numpy()
    np.testing.assert_allclose(drawn, expected)
    assert any(list(line.get_xdata()) == [0, 0] for line in ax.lines)  # no difference
    label = ax.get_xlabel()
    assert "difference in balanced accuracy" in label and "rest of the test set" in label
    assert "_" not in label


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


def test_risk_coverage_and_set_size_figures():
    y = np.array([0, 1, 0, 1])
    p = np.array([[0.9, 0.1], [0.2, 0.8], [0.4, 0.6], [0.7, 0.3]])
    fig = plots.risk_coverage_curves(
        {"max_probability": risk_coverage(y, p, p.max(1))}, error_rate=0.5
    )
    assert len(fig.axes[0].lines) == 2
    sizes = {"known": pd.Series([0, 3, 1]), "blank": pd.Series([0, 0, 4])}
    fig = plots.set_size_bars(sizes)
    assert len(fig.axes[0].patches) == 6


def test_profile_trust_section(tmp_path):
    import pytest

    from skinlib.errors import ConfigError
    from skinlib.profile import load_study_profile

    path = tmp_path / "p.yaml"
    path.write_text(
        "study: x\narchitectures: [resnet18]\ntrust: {coverages: [0.8], run: resnet18}\n"
    )
    trust = load_study_profile(path).trust
    assert trust.coverages == [0.8] and trust.run == "resnet18" and trust.set_method == "lac"
    assert load_study_profile("params/demo.yaml").trust.coverages == [0.9, 0.95]
    path.write_text("study: x\narchitectures: [resnet18]\ntrust: {coverage: 0.8}\n")
    with pytest.raises(ConfigError, match="coverage"):
        load_study_profile(path)
