"""What a run records about the code that trained it."""

from __future__ import annotations

import subprocess

from skinlib.training import runinfo


def test_git_commit_does_not_run_the_notebook_filter(tmp_path, monkeypatch):
    """Regression: with the notebooks' stat info stale (a fresh clone, a notebook saved), `git
    status` ran nbstripout once per notebook, over the 10 s timeout: seconds lost per training
    and the commit recorded as "unknown". A filter that fails would show here as "unknown"."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=tmp_path, check=True, capture_output=True, text=True
        ).stdout.strip()

    git("init", "-q")
    git("config", "user.email", "t@example.org")
    git("config", "user.name", "t")
    (tmp_path / ".gitattributes").write_text("*.ipynb filter=nbstripout\n")
    (tmp_path / "a.ipynb").write_text("{}\n")
    git("add", ".")
    git("-c", "filter.nbstripout.clean=cat", "commit", "-qm", "x")
    git("config", "filter.nbstripout.clean", "sleep 30; cat")  # a filter far over the timeout
    (tmp_path / "a.ipynb").touch()  # stale stat info: git would have to run the filter
    monkeypatch.setattr(runinfo.paths, "PROJECT_ROOT", tmp_path)
    assert runinfo.git_commit() == {"commit": git("rev-parse", "HEAD"), "dirty": False}
    (tmp_path / "a.ipynb").write_text('{"cells": []}\n')
    assert runinfo.git_commit()["dirty"] is True
