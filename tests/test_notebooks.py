"""The notebooks as a student meets them in JupyterLab: the project's kernel, and a clean git
status after opening, running and saving one."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import pytest

from skinlib import paths

ROOT = paths.PROJECT_ROOT
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebooks_open_with_the_project_kernel(path):
    meta = json.loads(path.read_text())["metadata"]
    assert meta["kernelspec"] == {
        "display_name": "Python (skinlib)",
        "language": "python",
        "name": "skinlib",  # `make lab` registers it; the pipeline runs its own interpreter
    }
    assert "language_info" not in meta  # JupyterLab rewrites it on save; the filter drops it


def _jupyterlab_save(path) -> None:
    """What JupyterLab 4 writes when a notebook is opened, run and saved."""
    nb = json.loads(path.read_text())
    nb["metadata"]["language_info"] = {
        "codemirror_mode": {"name": "ipython", "version": 3},
        "file_extension": ".py",
        "mimetype": "text/x-python",
        "name": "python",
        "nbconvert_exporter": "python",
        "pygments_lexer": "ipython3",
        "version": "3.11.7",
    }
    for i, cell in enumerate(c for c in nb["cells"] if c["cell_type"] == "code"):
        cell["execution_count"] = i + 1
        cell["outputs"] = [{"name": "stdout", "output_type": "stream", "text": ["ran\n"]}]
        cell["metadata"]["execution"] = {"iopub.status.idle": "2026-11-25T10:00:00.000Z"}
        cell["metadata"]["scrolled"] = True
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_saving_a_notebook_in_jupyterlab_changes_nothing_git_stores(tmp_path):
    """The git filter as `make install` configures it (nbstripout plus the Makefile's keys)."""
    keys = re.search(r"^NBSTRIPOUT_EXTRA_KEYS := (.*)$", (ROOT / "Makefile").read_text(), re.M)
    repo = tmp_path / "repo"
    (repo / "notebooks").mkdir(parents=True)
    shutil.copy(ROOT / ".gitattributes", repo)
    notebook = repo / "notebooks" / "04_calibration.ipynb"
    shutil.copy(ROOT / "notebooks" / notebook.name, notebook)

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=repo, check=True, capture_output=True, text=True
        ).stdout

    git("init", "-q")
    git("config", "user.email", "t@example.org")
    git("config", "user.name", "t")
    git("config", "filter.nbstripout.clean", f"{sys.executable} -m nbstripout")
    git("config", "filter.nbstripout.smudge", "cat")
    git("config", "filter.nbstripout.required", "true")
    git("config", "filter.nbstripout.extrakeys", keys.group(1))
    git("add", ".")
    git("commit", "-qm", "notebooks as stored")
    _jupyterlab_save(notebook)
    # git lists a file whose size changed until `git add` re-reads it through the filter; the
    # filtered content is what is stored: no diff, and nothing to commit once re-read
    assert git("diff", "--stat") == ""
    git("add", "-A")
    assert git("status", "--porcelain") == ""
    git("config", "filter.nbstripout.extrakeys", "")  # without the Makefile's keys it is dirty
    git("add", "--renormalize", ".")
    assert "04_calibration" in git("status", "--porcelain")
