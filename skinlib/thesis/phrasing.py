"""Recorded values in words: stated once when the runs share them, per run when they do not.

:func:`per_run` and :func:`disagreement` turn a value of each :class:`~skinlib.thesis.records.RunRecord`
into text; :func:`config_differences` lists where a run's config departs from the study's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from skinlib.config import Config
from skinlib.thesis.records import RunRecord


def fmt(value: Any) -> str:
    """A recorded value as text: 1,200; 0.002; true; `ce`."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,}" if value.is_integer() and abs(value) >= 1000 else f"{value:g}"
    if isinstance(value, list | tuple):
        return ", ".join(fmt(v) for v in value)
    return str(value)


def name_list(runs: Sequence[str]) -> str:
    quoted = [f"`{r}`" for r in runs]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1]


def by_value(runs: Sequence[RunRecord], get: Callable[[RunRecord], Any]) -> dict[str, list[str]]:
    """``{value as text: [run names]}`` in the order the values first appear."""
    groups: dict[str, list[str]] = {}
    for run in runs:
        groups.setdefault(fmt(get(run)), []).append(run.name)
    return groups


def per_run(runs: Sequence[RunRecord], get: Callable[[RunRecord], Any], unit: str = "") -> str:
    """One value when the runs share it, else each value with its runs.

    >>> per_run([], lambda r: 1)
    'not recorded'
    """
    groups = by_value(runs, get)
    if not groups:
        return "not recorded"
    if len(groups) == 1:
        return next(iter(groups)) + unit
    return "; ".join(f"{v}{unit} for {name_list(names)}" for v, names in groups.items())


def disagreement(runs: Sequence[RunRecord], get: Callable[[RunRecord], Any], what: str) -> str:
    """A sentence for something every run should share: stated once, or the disagreement."""
    groups = by_value(runs, get)
    if len(groups) <= 1:
        return ""
    listed = "; ".join(f"{v} ({name_list(names)})" for v, names in groups.items())
    return (
        f"The runs disagree on {what}: {listed}; results that compare them inherit this difference."
    )


def recorded(run: RunRecord, *keys: str, default: Any = None) -> Any:
    node: Any = run.meta
    for key in keys:
        if not isinstance(node, dict) or key not in node:
            return default
        node = node[key]
    return node


def flatten(values: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


IDENTITY_KEYS = {"study", "run", "model.arch"}  # differ between runs by construction


def config_differences(base: Config, run: Config) -> dict[str, tuple[Any, Any]]:
    """``{section.key: (base value, run value)}`` where a run's config departs from ``base``."""
    a, b = flatten(base.to_dict()), flatten(run.to_dict())
    return {k: (a.get(k), b[k]) for k in b if k not in IDENTITY_KEYS and a.get(k) != b[k]}
