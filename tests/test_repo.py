"""Repository hygiene: the environment files agree, notebooks carry no outputs, config works."""

from __future__ import annotations

import json
import subprocess
import tomllib

import yaml

from skinlib import paths

ROOT = paths.PROJECT_ROOT


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    expected = set(project["dependencies"]) | set(extras["dev"]) | set(extras["lab"])
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    listed = {d for d in pip_section if not d.startswith("-e")}
    assert listed == expected
    assert "-e .[dev,lab]" in pip_section  # JupyterLab users get the lab extra
    assert any(str(d).startswith("python=3.11") for d in env["dependencies"])


def _tracked(pattern: str) -> list[str]:
    out = subprocess.run(
        ["git", "ls-files", pattern], cwd=ROOT, capture_output=True, text=True, check=False
    )
    return [line for line in out.stdout.splitlines() if line]


def test_committed_notebooks_have_no_outputs():
    notebooks = _tracked("*.ipynb") or [
        str(p.relative_to(ROOT)) for p in ROOT.glob("notebooks/*.ipynb")
    ]
    for name in notebooks:
        nb = json.loads((ROOT / name).read_text())
        for cell in nb["cells"]:
            if cell["cell_type"] == "code":
                assert not cell.get("outputs"), f"{name} carries outputs: run nbstripout"
                assert cell.get("execution_count") is None, f"{name} carries execution counts"


def test_nbstripout_filter_declared():
    assert "filter=nbstripout" in (ROOT / ".gitattributes").read_text()


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci
    assert "make test" in (ROOT / "README.md").read_text()


def test_paths_follow_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("SKINLIB_EXPERIMENTS", str(tmp_path))
    assert paths.run_dir("s", "r") == tmp_path / "s" / "r"


def test_cli_without_command_prints_help(capsys):
    from skinlib.cli import main

    assert main([]) == 2
    assert "usage: skinlib" in capsys.readouterr().out


def test_docstring_examples_hold():
    """The doctests in skinlib's docstrings are examples a reader trusts: run them all."""
    import doctest
    import importlib
    import pkgutil

    import skinlib

    failed, attempted = {}, 0
    for info in pkgutil.walk_packages(skinlib.__path__, "skinlib."):
        if info.name in ("skinlib.__main__",):
            continue
        module = importlib.import_module(info.name)
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        attempted += result.attempted
        if result.failed:
            failed[info.name] = result.failed
    assert failed == {} and attempted >= 5
