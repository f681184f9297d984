"""`skinlib serve`: refuses what it cannot serve with a message, listens on loopback by default
(commands/serve.py)."""

from __future__ import annotations

import socket

import pytest

from skinlib.cli import main


def test_serve_refuses_a_missing_run(tmp_path, capsys):
    assert main(["serve", "--run", str(tmp_path / "nowhere")]) == 2
    assert "no such folder" in capsys.readouterr().err


def test_serve_reports_a_busy_port(tiny_run, capsys, monkeypatch):
    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["serve", "--run", str(tiny_run), "--port", str(port), "--device", "cpu"]) == 2
    assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("localhost", True), ("::1", True), ("0.0.0.0", False)],
)
def test_loopback_detection(host, loopback):
    from skinlib.commands.serve import _is_loopback

    assert _is_loopback(host) is loopback
