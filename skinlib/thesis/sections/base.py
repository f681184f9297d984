"""What every section module shares: the :class:`Section`, and words for units and counts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from skinlib.data.formats import FORMATS
from skinlib.thesis.records import RunRecord


def group_unit(run: RunRecord) -> str:
    """What a split group is: lesion, patient, or image where the source gave no group ids."""
    split = run.split
    if split["group"].nunique() == len(split) or split["group"].equals(split["image_id"]):
        return "image"
    name = run.config.data.format
    return FORMATS[name].group_unit if name in FORMATS else "group"


def percent(x: float) -> str:
    return f"{100 * x:.1f}%"


@dataclass
class Section:
    """A titled part of the methods; each paragraph is a list of sentences in the markup."""

    title: str
    label: str
    paragraphs: list[list[str]]


def non_empty(*items: str) -> list[str]:
    return [s for s in items if s]


def short_sha(sha: str | None) -> str:
    """The first 12 hex digits, as code."""
    return f"`{sha[:12]}`" if sha else "not recorded"


def and_list(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]
