"""The test-look ledger: each time a configuration's test or external predictions are scored.

A model chosen after several looks at the test set has a test result biased upwards, and a thesis
should say how many looks there were. ``experiments/<study>/test_looks.jsonl`` keeps one JSON line
per look: when, which run, its configuration (:func:`config_fingerprint`), what was scored (the
internal test split, or ``external:<set>``) and by which entry point. :class:`skinlib.runs.folder.RunFolder`
records a look whenever a run's test predictions or test images are read, and
:func:`skinlib.external.evaluate.evaluate_external` whenever an external set is scored, so no caller can
forget; :func:`scored_before` reads the ledger for the methods.

A look is one ``write`` to a file opened for appending (whole lines, safe for the processes of a
local-parallel run); a ledger that cannot be written costs a warning, never the run's work.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from skinlib.config import Config

log = logging.getLogger(__name__)

LEDGER = "test_looks.jsonl"  # in the study folder, beside its run folders
TEST = "test"  # what was scored: the run's own test split (else "external:<set name>")
ENTRY_VAR = "SKINLIB_ENTRY"  # who scores: set by the CLI and, per notebook, by the pipeline
# Settings that change how a run is fed or where its files are, not the model it trains.
NOT_THE_MODEL = frozenset(
    {
        "study",
        "run",
        "data.num_workers",
        "train.device",
        "train.compile",
        "train.channels_last",
        "train.log_resources",
    }
)
# Paths: a moved dataset or weights file is the same configuration; whether one is set is not.
PATHS = frozenset({"data.root", "data.split_file", "model.weights"})
_warned: set[tuple[str, str]] = set()  # (ledger, run) already warned about in this process


@dataclass(frozen=True)
class Look:
    """One line of the ledger."""

    time: str  # ISO 8601, UTC
    run: str  # run folder name
    config: str  # config_fingerprint (an ensemble: ensemble_fingerprint)
    scored: str  # "test", or "external:<set name>"
    tta: bool  # the test-time augmentation predictions were read
    entry: str  # who scored: "skinlib evaluate", a notebook, a program


def _settings(values: dict, defaults: dict, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """``(section.key, value)`` for every setting of ``values`` that differs from ``defaults``."""
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            yield from _settings(value, defaults.get(key) or {}, f"{name}.")
            continue
        default = defaults.get(key)
        if name in PATHS:
            value, default = bool(value), bool(default)
        if name not in NOT_THE_MODEL and value != default:
            yield name, value


def _digest(data: Any) -> str:
    text = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def config_fingerprint(cfg: Config) -> str:
    """A stable name for the model a config trains: the hash of its settings that differ from
    skinlib's defaults, without those in :data:`NOT_THE_MODEL` and with each path in
    :data:`PATHS` reduced to whether it is set. Hashing only the departures from the defaults
    keeps a fingerprint when skinlib adds a setting, so old ledger lines still match.

    >>> from skinlib.config import apply_overrides
    >>> same = apply_overrides(Config(), ["run=renamed", "data.num_workers=8"])
    >>> config_fingerprint(same) == config_fingerprint(Config())
    True
    >>> other = apply_overrides(Config(), ["train.lr=0.001"])
    >>> config_fingerprint(other) == config_fingerprint(Config())
    False
    """
    return _digest(dict(_settings(cfg.to_dict(), Config().to_dict())))


def ensemble_fingerprint(members: Sequence[str], combine: str, weighted: bool) -> str:
    """An ensemble's configuration: its members' fingerprints (in any order), how they are
    combined and whether they are weighted (the weights come from validation)."""
    return _digest({"ensemble": sorted(members), "combine": combine, "weighted": bool(weighted)})


def external(name: str) -> str:
    """What :attr:`Look.scored` says for an external set."""
    return f"external:{name}"


def entry_point() -> str:
    """Who is scoring: :data:`ENTRY_VAR` (the ``skinlib`` command, or the pipeline's notebook),
    else the notebook JupyterLab runs (``JPY_SESSION_NAME``), else the program's name."""
    named = os.environ.get(ENTRY_VAR) or os.environ.get("JPY_SESSION_NAME")
    if named:
        return named
    program = Path(sys.argv[0]) if sys.argv and sys.argv[0] else Path("python")
    return program.parent.name if program.name == "__main__.py" else program.name


@contextmanager
def entered(name: str):
    """Name the entry point of the looks inside the block (processes started there inherit it)."""
    before = os.environ.get(ENTRY_VAR)
    os.environ[ENTRY_VAR] = name
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(ENTRY_VAR, None)
        else:
            os.environ[ENTRY_VAR] = before


def record_look(
    study_dir: str | Path,
    run: str,
    fingerprint: str | Callable[[], str],
    scored: str = TEST,
    tta: bool = False,
) -> Look | None:
    """Append one look to ``<study_dir>/test_looks.jsonl``; never raises.

    Args:
        fingerprint: the configuration, or a function giving it (called here, so that a run
            folder whose config cannot be read costs a warning too).
        scored: :data:`TEST` or :func:`external`.

    Returns:
        The look written, or None where it could not be (logged as a warning).
    """
    path = Path(study_dir) / LEDGER
    try:
        config = fingerprint() if callable(fingerprint) else fingerprint
        look = Look(datetime.now(UTC).isoformat(), run, config, scored, bool(tta), entry_point())
        _append(path, json.dumps(dataclasses.asdict(look)) + "\n")
    except Exception as err:  # the ledger must never cost a run its work
        if (str(path), run) not in _warned:
            _warned.add((str(path), run))
            log.warning("test look of %s not recorded in %s: %s", run, path, err)
        return None
    return look


def _append(path: Path, line: str) -> None:
    """One ``write`` to a file opened with ``O_APPEND``: concurrent looks land as whole lines."""
    data = line.encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        written = os.write(fd, data)
    finally:
        os.close(fd)
    if written != len(data):
        raise OSError(f"wrote {written} of {len(data)} bytes")


def read_looks(study_dir: str | Path) -> list[Look] | None:
    """The looks in the order they were written, or None where the study has no ledger (nothing
    can be said then, not even "no looks"). Lines that do not parse (a write cut short) are
    skipped with a warning."""
    path = Path(study_dir) / LEDGER
    if not path.is_file():
        return None
    looks, bad = [], 0
    for line in path.read_text().splitlines():
        try:
            looks.append(Look(**json.loads(line)))
        except (ValueError, TypeError):
            bad += 1
    if bad:
        log.warning("%s: %d line(s) that are not looks were skipped", path, bad)
    return looks


def distinct_configurations(looks: Iterable[Look]) -> list[str]:
    """The configurations scored, each once, in the order of their first look."""
    return list(dict.fromkeys(look.config for look in looks))


def scored_before(looks: Sequence[Look], reported: Iterable[str]) -> list[str] | None:
    """The configurations other than ``reported`` that were scored before a reported one was
    last scored (so before the reported numbers were computed), or None where no reported
    configuration is in the ledger (it cannot tell what came before them).

    >>> looks = [Look("", "r", c, TEST, False, "") for c in ("a", "b", "a", "c", "b", "d")]
    >>> scored_before(looks, ["c"]), scored_before(looks, ["b", "c"]), scored_before(looks, ["x"])
    (['a', 'b'], ['a'], None)
    """
    reported = set(reported)
    last = max((i for i, look in enumerate(looks) if look.config in reported), default=None)
    if last is None:
        return None
    return [c for c in distinct_configurations(looks[:last]) if c not in reported]
