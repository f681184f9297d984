"""Numbers as tables show them: values with intervals and p-values (formatting.py)."""

from __future__ import annotations

import pandas as pd

from skinlib.formatting import format_ci, format_p, readable


def test_format_ci():
    assert format_ci(0.81234, 0.7, 0.9) == "0.812 [0.700, 0.900]"
    assert format_ci(0.81234, 0.7, 0.9, digits=2) == "0.81 [0.70, 0.90]"
    assert format_ci(float("nan"), 0, 1) == "--"
    assert format_ci(0.5, float("nan"), float("nan")) == "0.500"


def test_format_p_never_prints_zero():
    assert format_p(0.0) == "<0.001" and format_p(2.5e-22) == "<0.001"
    assert format_p(0.001) == "0.001" and format_p(0.04123) == "0.041"
    assert format_p(0.004, digits=2) == "<0.01" and format_p(float("nan")) == "--"


def test_trust_tables_read_in_words_not_identifiers():
    """08's rows and headers as the thesis prints them: no code identifiers."""
    deferral = pd.DataFrame(
        {"confidence": ["max_probability", "margin"], "balanced_accuracy_all": [0.7, 0.7]}
    )
    shown = readable(deferral)
    assert list(shown.columns) == ["confidence score", "bal. acc., no deferral"]
    assert list(shown["confidence score"]) == ["maximum probability", "margin of the top two"]
    sets = pd.DataFrame({"coverage": [0.9]}, index=pd.Index(["lac Mondrian 90%"], name="setting"))
    assert list(readable(sets).index) == ["LAC per class (Mondrian) 90%"]
    assert list(readable(pd.DataFrame({"score": ["aurc", "mel"]}))["score"]) == ["AURC", "mel"]
