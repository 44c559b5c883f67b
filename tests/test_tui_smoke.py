"""The real `sluice` in a real terminal (tmux): open the cockpit, filter,
open a build and hold it; then the CLI confirms the build is held."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import run_process

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is installed by scripts/setup")


class Tmux:
    """One tmux server of our own (its own socket), ended by the test."""

    def __init__(self, socket: str) -> None:
        self.socket = socket

    def __call__(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.socket, *args], check=True, capture_output=True,
                              text=True).stdout

    def screen(self) -> str:
        return self("capture-pane", "-p", "-t", "smoke")

    def wait_for(self, text: str, timeout: float = 20) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            shown = self.screen()
            if text in shown:
                return shown
            time.sleep(0.1)
        raise AssertionError(f"{text!r} never showed; the screen was:\n{self.screen()}")

    def keys(self, *keys: str) -> None:
        self("send-keys", "-t", "smoke", *keys)

    def sluice(self, *args: str) -> None:
        """Start the venv's `sluice ARGS` at 80x24 with the test's environment;
        the pane stays open after it exits, with its exit status on screen."""
        sluice = Path(sys.executable).parent / "sluice"
        env = " ".join(f"{k}={v}" for k, v in os.environ.items()
                       if k.startswith(("SLUICE_", "XDG_", "GIT_CONFIG")) or k == "HOME")
        self("new-session", "-d", "-s", "smoke", "-x", "80", "-y", "24",
             f"env {env} {sluice} {' '.join(args)}; echo exited $?; sleep 30")


@pytest.fixture
def tmux(tmp_path):
    server = Tmux(f"sluice-test-{os.getpid()}-{tmp_path.name}")
    yield server
    subprocess.run(["tmux", "-L", server.socket, "kill-server"], capture_output=True)


def test_filter_open_and_hold_in_the_real_terminal(tmux, make_clone, make_srpm):
    clone = make_clone("state.git")
    other = clone.submit(make_srpm("zlib"))
    build = clone.submit(make_srpm("inventor"))
    for each in (other, build):
        clone.built(each)
    tmux.sluice("--repo", str(clone.path))  # no command: the cockpit, on a terminal
    tmux.wait_for("2 of 2 builds")
    tmux.keys("/")
    tmux.wait_for("filter: words")
    time.sleep(0.2)
    tmux.keys("-l", "invent")
    tmux.wait_for("1 of 2 builds  filter: invent")
    tmux.keys("Enter")  # keep the filter, back to the table
    time.sleep(0.3)
    tmux.keys("Enter")  # open the build
    tmux.wait_for("you may:")
    tmux.keys("h")
    tmux.wait_for("Why hold")
    time.sleep(0.2)
    tmux.keys("-l", "waiting for libcdio")
    tmux.keys("Enter")
    tmux.wait_for("held inventor")  # the notification
    shown = run_process("--repo", str(clone.path), "show", build[:7], "--json", check=True)
    doc = json.loads(shown.stdout)
    assert doc["state"] == "held" and doc["events"][-1]["reason"] == "waiting for libcdio"
    tmux.keys("@")
    assert "sluice hold" in tmux.wait_for("sluice hold")
    tmux.keys("Escape")
    time.sleep(0.2)
    for _ in range(3):  # back to the queue, clear the filter, quit
        tmux.keys("q")
        time.sleep(0.2)
    tmux.wait_for("exited 0")


def test_no_command_prints_the_summary_when_not_on_a_terminal(sluice):
    """Scripts and pipes keep the summary; only a terminal gets the cockpit."""
    sluice("init")
    result = sluice()
    assert result.code == 0 and result.out.startswith("sluice queue ")
    assert sluice("--json").json["builds"] == 0


def test_tui_without_a_terminal_says_so(sluice):
    sluice("init")
    result = sluice("tui")
    assert result.code == 2 and "needs a terminal" in result.err


def test_sluice_tui_opens_and_q_quits_with_0(tmux, make_clone):
    clone = make_clone("state.git")
    tmux.sluice("--repo", str(clone.path), "tui")
    tmux.wait_for("0 of 0 builds")
    tmux.keys("q")
    tmux.wait_for("exited 0")
