"""Fixtures for the end-to-end tests: a notebook served by Voila, a page in headless Chromium.

The browser is Debian's Chromium (``/usr/bin/chromium``, or the path in
``TCP_LAB_CHROMIUM``) driven by Playwright, never Playwright's own browser
download (it needs the internet). Where Chromium, Voila or Playwright is
missing the tests skip with the reason; with ``TCP_LAB_REQUIRE_SERVICES=1``
(set by ``.ci/run``, which installs Chromium and, through the dev extra,
Voila and Playwright) they fail instead.

Voila runs as a child process of this interpreter on 127.0.0.1 and a free
port, with Jupyter's config, data and runtime directories in the test's tmp
dir (no user kernels or settings leak in); it is always stopped afterwards.
The page may fetch only from 127.0.0.1: every other request is aborted and
recorded, so a widget that needs a CDN fails here as it would offline.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

REQUIRE_SERVICES = os.environ.get("TCP_LAB_REQUIRE_SERVICES") == "1"
DEFAULT_CHROMIUM = "/usr/bin/chromium"
# Without the background-networking flags Chromium's own connections (updates,
# sync, field trials) are refused by a closed network and disturb the page.
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
START_TIMEOUT = 60.0  # seconds for Voila to listen
STOP_TIMEOUT = 20.0  # seconds for Voila to shut its kernels down before it is killed
LOCAL_HOSTS = {"127.0.0.1", "localhost"}
_ANSI = re.compile(r"\x1b\[[0-9;]*m")  # colours in the kernel's tracebacks


def _unavailable(what: str, fix: str) -> None:
    if REQUIRE_SERVICES:
        pytest.fail(f"{what} (TCP_LAB_REQUIRE_SERVICES=1: CI installs it, so its absence "
                    f"is a failure); {fix}")
    pytest.skip(f"{what}; {fix}")


def chromium_path() -> str:
    """Path of the Chromium to drive: ``TCP_LAB_CHROMIUM``, else Debian's, else on PATH."""
    configured = os.environ.get("TCP_LAB_CHROMIUM")
    candidates = [configured] if configured else [DEFAULT_CHROMIUM, shutil.which("chromium")]
    for path in candidates:
        if path and os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    where = f"TCP_LAB_CHROMIUM={configured}" if configured else DEFAULT_CHROMIUM
    _unavailable(f"headless Chromium not found at {where}",
                 "install Debian's package (apt-get install chromium) or point "
                 "TCP_LAB_CHROMIUM at a Chromium binary")
    raise AssertionError("unreachable")  # pragma: no cover


def _require_module(name: str) -> None:
    if importlib.util.find_spec(name) is None:
        _unavailable(f"the Python package {name!r} is not installed",
                     "install the dev extra: pip install -e '.[dev]'")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1.0)
        return s.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class VoilaServer:
    """A running Voila process serving one notebook."""

    url: str
    process: subprocess.Popen
    log: Path

    def log_tail(self, chars: int = 4000) -> str:
        """The end of Voila's log (server and kernel messages), for failure reports."""
        try:
            return _ANSI.sub("", self.log.read_text(errors="replace"))[-chars:]
        except OSError as e:  # pragma: no cover - only in a failure report
            return f"(no log: {e})"


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM (Voila then shuts its kernels down), SIGKILL the group if it hangs."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=STOP_TIMEOUT)


def _voila_env(root: Path) -> dict[str, str]:
    env = dict(os.environ)  # already isolated by tests/conftest.py (TCP_LAB_HOME in tmp)
    env.pop("JUPYTER_PATH", None)
    for var, sub in (("JUPYTER_CONFIG_DIR", "config"), ("JUPYTER_DATA_DIR", "data"),
                     ("JUPYTER_RUNTIME_DIR", "runtime"), ("IPYTHONDIR", "ipython")):
        env[var] = str(root / sub)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _start_voila(notebook: Path, root: Path, attempts: int = 3) -> VoilaServer:
    """Start Voila on a free port; retry on another port if that one was taken meanwhile."""
    root.mkdir(parents=True, exist_ok=True)
    env = _voila_env(root)
    for attempt in range(1, attempts + 1):
        port = _free_port()
        log = root / f"voila-{attempt}.log"
        # The kernel is this interpreter: the kernelspec's "python" is replaced by
        # sys.executable of the launching process (Voila's), i.e. the venv's Python.
        cmd = [sys.executable, "-m", "voila", str(notebook), "--no-browser",
               f"--port={port}", "--Voila.ip=127.0.0.1", "--Voila.port_retries=0",
               f"--Voila.connection_dir_root={root}", "--Voila.log_level=INFO",
               "--VoilaConfiguration.show_tracebacks=True"]
        with log.open("wb") as out:
            process = subprocess.Popen(cmd, cwd=root, env=env, stdin=subprocess.DEVNULL,
                                       stdout=out, stderr=subprocess.STDOUT,
                                       start_new_session=True)
        server = VoilaServer(f"http://127.0.0.1:{port}/", process, log)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline and process.poll() is None:
            if _listening(port):
                return server
            time.sleep(0.25)
        _stop(process)
        if "already in use" in server.log_tail() and attempt < attempts:
            continue
        raise AssertionError(f"Voila did not start listening on 127.0.0.1:{port} within "
                             f"{START_TIMEOUT:.0f} s (exit code {process.returncode}):\n"
                             f"{server.log_tail()}")
    raise AssertionError("unreachable")  # pragma: no cover


@pytest.fixture
def serve_notebook(tmp_path: Path) -> Iterator[Callable[[Path], VoilaServer]]:
    """``serve_notebook(path)`` starts Voila on it; every server is stopped afterwards."""
    _require_module("voila")
    servers: list[VoilaServer] = []

    def serve(notebook: Path) -> VoilaServer:
        server = _start_voila(notebook, tmp_path / f"voila{len(servers)}")
        servers.append(server)
        return server

    yield serve
    for server in servers:
        _stop(server.process)


@dataclass
class PageLog:
    """What the page did besides rendering: uncaught errors and blocked requests."""

    errors: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)
    slow_widgets: int = 0

    def page_error(self, error: Any) -> None:
        """Record an uncaught page error, except anywidget's start-up timer.

        anywidget rejects a promise when a widget's front end is not ready within 2 s
        (``[anywidget] Failed to initialize model.``) and goes on building it; on two
        busy cores a plotly FigureWidget can take longer. The tests check that every
        chart renders (count and size), so that timer is counted, not failed on.
        """
        text = str(error)
        if text == "[anywidget] Failed to initialize model.":
            self.slow_widgets += 1
        else:
            self.errors.append(text)

    def __str__(self) -> str:
        return f"page errors: {self.errors or 'none'}; blocked non-local requests: " \
               f"{self.blocked or 'none'}"


@pytest.fixture
def browser_page() -> Iterator[tuple[Any, PageLog]]:
    """A Playwright page in headless Chromium that may fetch only from 127.0.0.1."""
    executable = chromium_path()
    _require_module("playwright")
    from playwright.sync_api import sync_playwright

    log = PageLog()

    def local_only(route: Any) -> None:
        url = route.request.url
        if urlsplit(url).scheme in ("data", "blob") or urlsplit(url).hostname in LOCAL_HOSTS:
            route.continue_()
        else:
            log.blocked.append(url)
            route.abort()

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS,
                                     headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.on("pageerror", log.page_error)
            page.route("**/*", local_only)
            yield page, log
        finally:
            browser.close()
