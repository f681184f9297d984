"""The web app as a user meets it: ``skinlib serve`` in a subprocess, driven in headless Chromium.

Needs Debian's ``chromium`` (``apt-get install chromium chromium-driver``; CI installs it) and the
``playwright`` Python package (no browser download: Playwright drives the system Chromium).
Set ``SKINLIB_SCREENSHOT_DIR`` to keep a screenshot of the page after a prediction there.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import write_jpeg
from PIL import Image

from skinlib.data.classes import class_name

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("chromium") is None,
        reason="Chromium not installed (apt-get install chromium chromium-driver)",
    ),
]
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
ANSWER_TIMEOUT_MS = 60_000  # a cold first prediction on a busy 2-core CI machine


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_answering(url: str, server: subprocess.Popen, log: Path, timeout: float = 120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"skinlib serve exited with {server.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"skinlib serve did not answer on {url} within {timeout} s:\n{log.read_text()}")


@contextlib.contextmanager
def running_server(command: list[str], url: str, log: Path, **popen):
    """Start a server process (output to ``log``), wait until ``url`` answers, stop it after."""
    with log.open("w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, **popen)
    try:
        wait_until_answering(url, process, log)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def run_dir(tiny_run) -> Path:
    return tiny_run


@pytest.fixture(scope="module")
def server(run_dir, tmp_path_factory):
    """``python -m skinlib serve`` on a free loopback port, as a user would start it."""
    port = free_port()
    log = tmp_path_factory.mktemp("server") / "serve.log"
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "skinlib", "serve", "--run", str(run_dir)]
    command += ["--port", str(port), "--max-upload-mb", "1", "--device", "cpu"]
    url = f"http://127.0.0.1:{port}/"
    with running_server(command, url, log, env=env) as process:
        yield url, process.pid


@pytest.fixture(scope="module")
def browser():
    playwright_api = pytest.importorskip("playwright.sync_api")
    with playwright_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=shutil.which("chromium"), args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


def save_screenshot(page, folder: Path) -> Path:
    """The whole page as a 256-colour PNG (small enough for the README)."""
    shot = Image.open(io.BytesIO(page.screenshot(full_page=True))).convert("RGB")
    path = folder / "app_screenshot.png"
    shot.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
    return path


def upload(page, path: Path) -> None:
    page.locator("#upload input[type=file]").set_input_files(str(path))


def test_server_listens_on_loopback_only(server):
    import psutil

    url, pid = server
    port = int(url.rstrip("/").rsplit(":", 1)[1])
    listening = {
        c.laddr.ip
        for c in psutil.Process(pid).net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN and c.laddr.port == port
    }
    assert listening == {"127.0.0.1"}


def test_upload_predict_refuse_and_recover(server, browser, run_dir, tmp_path):
    from playwright.sync_api import expect

    from skinlib.app.ui import example_images

    server, _ = server
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    outside = []  # the page must not fetch anything beyond the local server (fonts, analytics)
    page.on("request", lambda r: None if r.url.startswith(server) else outside.append(r.url))
    page.goto(server, wait_until="networkidle")
    expect(page.locator("#disclaimer")).to_contain_text("not a medical device")
    status, cam = page.locator("#status"), page.locator("#cam img")
    classes = {class_name(c) for c in ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")}

    # 1. an image: the predicted class, the decision and the Grad-CAM appear
    lesion = tmp_path / "lesion.jpg"
    shutil.copy(example_images(run_dir, n=1)[0], lesion)
    upload(page, lesion)
    expect(status).to_contain_text("Prediction for lesion.jpg", timeout=ANSWER_TIMEOUT_MS)
    predicted = page.locator("#probabilities [data-testid=label-output-value]").inner_text()
    assert predicted in classes
    assert predicted in status.inner_text()
    expect(page.locator("#decision")).to_contain_text("melanoma probability")
    expect(page.locator("#decision")).to_contain_text("90% specificity on validation")
    expect(page.locator("#trust")).to_contain_text("Prediction set:")  # conformal.json, step 08
    expect(page.locator("#trust")).to_contain_text(" at 90%")
    if (
        page.locator("#trust").inner_text().count(" or ")
        or "no class" in page.locator("#trust").inner_text()
    ):
        expect(page.locator("#trust")).to_contain_text("Unsure: refer")
    expect(cam).to_be_visible()
    cam.evaluate("img => img.decode()")  # wait until the heat map is decoded
    assert cam.evaluate("img => img.naturalWidth") == 320
    expect(page.locator("#run-info")).to_contain_text("resnet18")
    saved = save_screenshot(page, tmp_path)
    if os.environ.get("SKINLIB_SCREENSHOT_DIR"):
        folder = Path(os.environ["SKINLIB_SCREENSHOT_DIR"])
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(saved, folder / saved.name)

    # 2. a file that is not an image: a readable message, and the old answer is gone
    notes = tmp_path / "notes.txt"
    notes.write_text("not an image\n")
    upload(page, notes)
    expect(status).to_contain_text("Could not use this file", timeout=ANSWER_TIMEOUT_MS)
    expect(status).to_contain_text("'notes.txt' is not an image")
    expect(cam).to_have_count(0)

    # 3. the server still answers: another image, then an example from the test split
    again = write_jpeg(tmp_path / "again.jpg", size=(80, 60), colour=(150, 90, 80))
    upload(page, again)
    expect(status).to_contain_text("Prediction for again.jpg", timeout=ANSWER_TIMEOUT_MS)
    expect(cam).to_be_visible()
    page.locator("#examples .thumbnail-item").nth(1).click()
    expect(status).to_contain_text("Prediction for example", timeout=ANSWER_TIMEOUT_MS)
    assert outside == []


def test_upload_limit_is_enforced_by_the_server(server, browser, tmp_path):
    """Files above --max-upload-mb are refused by Gradio before they reach the app."""
    page = browser.new_page()
    page.goto(server[0], wait_until="networkidle")
    big = tmp_path / "big.png"
    big.write_bytes(os.urandom(3 * 2**20 // 2))  # 1.5 MB against a 1 MB limit
    upload(page, big)
    toast = page.locator(".toast-body")
    toast.first.wait_for(timeout=ANSWER_TIMEOUT_MS)
    assert "exceed the maximum allowed size of 1.0 Mb" in toast.first.inner_text()
    # and the page keeps working
    upload(page, write_jpeg(tmp_path / "small.jpg", size=(64, 64)))
    page.locator("#status", has_text="Prediction for small.jpg").wait_for(timeout=ANSWER_TIMEOUT_MS)
