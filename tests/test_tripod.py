"""The TRIPOD+AI checklist: every item and part has a place or a reason, points only at what
exists, and follows what ran (thesis/tripod.py)."""

from __future__ import annotations

import re
from pathlib import Path

from fixtures.results import write_tables

from skinlib import paths
from skinlib.thesis import tripod, write

ROOT = Path(__file__).resolve().parents[1]
# the published statement's 27 items with their parts (Collins et al., BMJ 2024, Table 1)
PARTS = {"3": "abc", "5": "ab", "6": "abc", "8": "abc", "9": "abc", "12": "abcdefg"}
PARTS |= {"18": "abcdef", "20": "abc", "23": "ab", "27": "abc"}


def _rows() -> dict[str, str]:
    tex = (paths.generated_tables_dir("mini") / "tripod.tex").read_text()
    return {
        m.group(1): line for line in tex.splitlines() if (m := re.match(r"(\d+[a-g]?) &", line))
    }


def test_every_item_and_part_is_there_in_order_with_a_place_or_a_reason(study_dirs):
    write.write_methods(study_dirs())
    expected = [f"{n}{p}" for n in map(str, range(1, 28)) for p in PARTS.get(n, [""])]
    assert [i.number for i in tripod.ITEMS] == expected and len(expected) == 52
    rows = _rows()
    assert list(rows) == expected
    for number, row in rows.items():
        where = row.split(" & ")[-1]
        assert where.startswith(
            ("Section", "Table", "Figure", "\\emph{Not reported:}", "\\emph{Author to fill:}")
        ), (number, row)
    out = paths.generated_tables_dir("mini")
    assert "\\label{tab:tripod}" in (out / "tripod.tex").read_text()
    assert "TRIPOD+AI checklist [@collins2024tripod]" in (out / "tripod.md").read_text()


def test_tripod_points_only_at_labels_that_exist(study_dirs):
    write.write_methods(study_dirs())
    out = paths.generated_tables_dir("mini")
    refs = set(re.findall(r"\\ref\{([^}]+)\}", (out / "tripod.tex").read_text()))
    defined = set(re.findall(r"\\label\{([^}]+)\}", (out / "methods.tex").read_text()))
    defined |= set(re.findall(r"\\label\{([^}]+)\}", (ROOT / "thesis" / "main.tex").read_text()))
    assert refs and refs <= defined, refs - defined


def test_fairness_and_subgroup_items_follow_08_and_09(study_dirs):
    file = study_dirs()
    write_tables("mini", "comparison")  # 07 ran; neither 08 nor 09
    write.write_methods(file)
    rows = _rows()
    assert "Not reported:} no fairness analysis ran" in rows["14"]
    assert "no subgroups" in rows["23a"] and "skin_tone" not in rows["23a"]
    write_tables("mini", "trust_subgroups", "skin_tone_performance", "label_issue_counts")
    write.write_methods(file)
    rows = _rows()
    assert "tab:trust_subgroups" in rows["14"] and "tab:skin_tone_performance" in rows["14"]
    assert "skin-tone band" in rows["14"] and "no fairness constraint" in rows["14"]
    assert "tab:skin_tone_performance" in rows["23a"] and "; subgroups" in rows["23a"]
    assert "tab:label_issue_counts" in rows["7"] and "nothing relabelled" in rows["7"]
