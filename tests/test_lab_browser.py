"""The notebooks as a student opens them: JupyterLab on 127.0.0.1, driven in headless Chromium.

01_eda (on the smoke profile, as papermill would parametrise it) opens with the project's kernel
("Python (skinlib)", registered as `make lab` does), runs top to bottom, and shows no error and no
``PosixPath`` echo. Needs Debian's ``chromium``, ``playwright`` and ``jupyterlab`` (dev extra).
Set ``SKINLIB_SCREENSHOT_DIR`` to keep a screenshot of the executed notebook.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_app_browser import CHROMIUM_ARGS, free_port, running_server

from skinlib import paths

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("chromium") is None,
        reason="Chromium not installed (apt-get install chromium chromium-driver)",
    ),
]
RUN_ALL_TIMEOUT_MS = 240_000  # SynthDerm generation and the EDA on a busy 2-core machine


def _smoke_copy(folder: Path) -> Path:
    """01_eda with the smoke profile in its parameters cell (what papermill injects)."""
    nb = json.loads((paths.notebooks_dir() / "01_eda.ipynb").read_text())
    params = next(c for c in nb["cells"] if "parameters" in c["metadata"].get("tags", []))
    params["source"] = [
        f'profile = "{paths.PROJECT_ROOT / "params" / "smoke.yaml"}"\n',
        "overrides = []\n",
        "retrain = False\n",
    ]
    path = folder / "01_eda.ipynb"
    path.write_text(json.dumps(nb, indent=1))
    return path


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    pytest.importorskip("jupyterlab")
    root = tmp_path_factory.mktemp("lab")
    env = {
        **os.environ,
        "JUPYTER_DATA_DIR": str(root / "jupyter"),
        "JUPYTER_CONFIG_DIR": str(root / "config"),
        "JUPYTER_RUNTIME_DIR": str(root / "runtime"),
        "SKINLIB_EXPERIMENTS": str(root / "exp"),
        "SKINLIB_FIGURES": str(root / "fig"),
        "SKINLIB_THESIS": str(root / "thesis"),
        "SKINLIB_CACHE": str(root / "cache"),
        "PYTHONPATH": str(paths.PROJECT_ROOT),
    }
    # the project's kernel, registered as `make lab` does (ipykernel install), here per test
    subprocess.run(
        [sys.executable, "-m", "ipykernel", "install", "--prefix", str(root / "jupyter-prefix")]
        + ["--name", "skinlib", "--display-name", "Python (skinlib)"],
        check=True,
        capture_output=True,
        env=env,
    )
    env["JUPYTER_PATH"] = str(root / "jupyter-prefix" / "share" / "jupyter")
    notebooks = root / "notebooks"
    notebooks.mkdir()
    _smoke_copy(notebooks)
    port = free_port()
    log = root / "lab.log"
    command = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1"]
    command += [f"--port={port}", "--ServerApp.token=", "--ServerApp.password="]
    command += [f"--ServerApp.root_dir={notebooks}", "--allow-root"]
    command += ["--ServerApp.disable_check_xsrf=True", "--LabApp.news_url=None"]
    url = f"http://127.0.0.1:{port}/lab"
    with running_server(command, url, log, env=env, cwd=paths.PROJECT_ROOT):
        yield url, notebooks


def test_eda_notebook_runs_with_the_project_kernel(lab, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    url, notebooks = lab
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=shutil.which("chromium"), args=CHROMIUM_ARGS
        )
        page = chromium.new_page(viewport={"width": 1280, "height": 1000})
        page.goto(f"{url}/tree/01_eda.ipynb", wait_until="domcontentloaded")
        kernel = page.locator(".jp-NotebookPanel-toolbar .jp-KernelName")
        expect(kernel).to_have_text("Python (skinlib)", timeout=60_000)  # no kernel dialog
        expect(page.locator(".jp-Notebook-ExecutionIndicator[data-status=idle]")).to_have_count(
            1, timeout=60_000
        )
        page.locator(".lm-MenuBar-itemLabel", has_text=re.compile("^Run$")).click()
        page.locator(".lm-Menu-itemLabel", has_text=re.compile("^Run All Cells$")).click()
        cells = page.locator(".jp-CodeCell")
        n_code = cells.count()
        prompts = page.locator(".jp-CodeCell .jp-InputPrompt")
        # every code cell executed: its prompt shows a number, not "[ ]" or "[*]"
        page.wait_for_function(
            """n => [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')]
                   .filter(p => /\\[\\d+\\]/.test(p.textContent)).length === n""",
            arg=n_code,
            timeout=RUN_ALL_TIMEOUT_MS,
        )
        assert prompts.count() == n_code
        outputs = page.locator(".jp-OutputArea-output").all_inner_texts()
        text = "\n".join(outputs)
        assert "Traceback" not in text and "Error" not in text, text[-2000:]
        assert "PosixPath" not in text
        # stderr may hold progress bars (tqdm without ipywidgets): errors are what must not show
        # JupyterLab renders only cells near the viewport: the last table (the split audit) is there
        assert "lesions in two splits" in text
        if os.environ.get("SKINLIB_SCREENSHOT_DIR"):
            folder = Path(os.environ["SKINLIB_SCREENSHOT_DIR"])
            folder.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(folder / "lab_01_eda.png"), full_page=False)
        chromium.close()
