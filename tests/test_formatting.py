"""Numbers as tables show them: values with intervals and p-values (formatting.py)."""

from __future__ import annotations

from skinlib.formatting import format_ci, format_p


def test_format_ci():
    assert format_ci(0.81234, 0.7, 0.9) == "0.812 [0.700, 0.900]"
    assert format_ci(0.81234, 0.7, 0.9, digits=2) == "0.81 [0.70, 0.90]"
    assert format_ci(float("nan"), 0, 1) == "--"
    assert format_ci(0.5, float("nan"), float("nan")) == "0.500"


def test_format_p_never_prints_zero():
    assert format_p(0.0) == "<0.001" and format_p(2.5e-22) == "<0.001"
    assert format_p(0.001) == "0.001" and format_p(0.04123) == "0.041"
    assert format_p(0.004, digits=2) == "<0.01" and format_p(float("nan")) == "--"
