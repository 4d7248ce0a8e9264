"""Every ```python block of README.md runs as written.

The blocks run in order, in one namespace, as a user pasting them into one
notebook would: a block may use what an earlier block defined. Each block is one
test step (``test_readme_block[NN-heading]``) whose failure names the block's
heading, its first line and its line in README.md. The namespace lives in a
temporary ``TCP_LAB_HOME`` that is also the working directory, so the blocks
never touch the user's data dir or settings (files a block writes, e.g.
``report.html``, land there).

Markers: an HTML comment alone on the line right before a block's fence
(invisible on GitHub) says how to run it::

    <!-- readme-test: services -->
        Needs servers: runs with ``TCP_LAB_DATABASE_URL`` / ``TCP_LAB_REDIS_URL``
        pointing at the test PostgreSQL and Redis (their own schema and key
        prefix, the fixtures of ``tests/conftest.py``); skipped with the reason
        when they are not reachable, a failure under ``TCP_LAB_REQUIRE_SERVICES=1``.
    <!-- readme-test: skip REASON -->
        Not run, skipped with REASON (say why a reader would accept it: it opens
        a browser, runs forever, needs a real exchange). Use sparingly.

Any other ``readme-test:`` comment is an error, so a typo cannot silently skip a
block. After a failing block the later ones still run (as in a notebook); their
failures name the blocks that failed before them. ``_CHECKS`` adds assertions on
what a block computed where the README states a result (keyed by heading).

Bash blocks are not run as such: ``test_readme_cli_examples`` runs the README's
offline CLI examples (emulator, collect, db, data check, strategy, backtest) as
written, against ``tcp-lab emulator``.
"""

from __future__ import annotations

import re
import shlex
import socket
import subprocess
import sys
import textwrap
import time
import traceback
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

README = Path(__file__).parents[1] / "README.md"
_FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<lang>\S*)\s*$")
_MARKER = re.compile(r"^\s*<!--\s*readme-test:\s*(?P<body>.*?)\s*-->\s*$")


@dataclass(frozen=True)
class Block:
    """One fenced python block of the README."""

    number: int
    heading: str
    line: int  # 1-based line of the opening fence
    code: str
    marker: str | None  # "services", "skip REASON" or None

    @property
    def first_line(self) -> str:
        return next((ln.strip() for ln in self.code.splitlines() if ln.strip()), "")

    @property
    def label(self) -> str:
        return f"README.md block {self.number} under {self.heading!r} (line {self.line}): " \
               f"{self.first_line}"


def readme_blocks(text: str) -> list[Block]:
    """The ```python blocks of ``text`` in order, with heading and marker."""
    lines = text.splitlines()
    blocks: list[Block] = []
    heading = "(top)"
    i = 0
    while i < len(lines):
        line = lines[i]
        m = _FENCE.match(line)
        if line.startswith("#"):
            heading = line.lstrip("#").strip()
        elif m and m["lang"]:
            end = i + 1
            while end < len(lines) and not (lines[end].strip() == "```"):
                end += 1
            if m["lang"] == "python":
                prev = lines[i - 1] if i else ""
                mk = _MARKER.match(prev)
                code = textwrap.dedent("\n".join(lines[i + 1:end])) + "\n"
                blocks.append(Block(len(blocks) + 1, heading, i + 1, code,
                                    mk["body"] if mk else None))
            i = end
        i += 1
    return blocks


BLOCKS = readme_blocks(README.read_text(encoding="utf-8"))


def _slug(block: Block) -> str:
    return f"{block.number:02d}-" + re.sub(r"[^a-z0-9]+", "-", block.heading.lower()).strip("-")


@pytest.fixture(scope="module")
def readme_namespace():
    """The one namespace all blocks share (a notebook's globals).

    Strategies the blocks register are unregistered afterwards, so later tests see
    the built-ins only.
    """
    from tcp_lab.strategies import registry

    saved = dict(registry._REGISTRY)
    yield {"__name__": "__readme__", "__failed__": []}
    registry._REGISTRY.clear()
    registry._REGISTRY.update(saved)


@pytest.fixture(scope="module")
def readme_home(tmp_path_factory) -> Path:
    """``TCP_LAB_HOME`` and working directory shared by all blocks."""
    return tmp_path_factory.mktemp("readme_home")


def test_readme_has_python_blocks():
    assert len(BLOCKS) >= 8, [b.label for b in BLOCKS]


def test_markers_are_read_from_the_line_before_the_fence():
    text = ("## A\n<!-- readme-test: services -->\n```python\nx = 1\n```\n"
            "## B\n<!-- readme-test: skip opens a browser -->\n  ```python\n  y = 2\n  ```\n"
            "```bash\nz\n```\n```python\nw = 3\n```\n")
    a, b, c = readme_blocks(text)
    assert (a.heading, a.marker, a.code, a.line) == ("A", "services", "x = 1\n", 3)
    assert (b.heading, b.marker, b.code) == ("B", "skip opens a browser", "y = 2\n")
    assert (c.marker, c.first_line) == (None, "w = 3")


@pytest.mark.parametrize("block", BLOCKS, ids=_slug)
def test_readme_block(block: Block, readme_namespace, readme_home, monkeypatch, request):
    monkeypatch.setenv("TCP_LAB_HOME", str(readme_home))
    monkeypatch.chdir(readme_home)
    if block.marker is not None:
        kind, _, reason = block.marker.partition(" ")
        if kind == "skip":
            assert reason.strip(), f"{block.label}: `readme-test: skip` needs a reason"
            pytest.skip(f"{block.label}: {reason.strip()}")
        elif kind == "services":
            monkeypatch.setenv("TCP_LAB_DATABASE_URL", request.getfixturevalue("postgres_url"))
            monkeypatch.setenv("TCP_LAB_REDIS_URL", request.getfixturevalue("redis_url"))
        else:
            pytest.fail(f"{block.label}: unknown marker `readme-test: {block.marker}` "
                        "(expected `services` or `skip REASON`)", pytrace=False)
    source = "\n" * (block.line) + block.code  # tracebacks show README line numbers
    try:
        exec(compile(source, str(README), "exec"), readme_namespace)
        error = None
    except Exception:
        error = traceback.format_exc()
    if error is not None:
        failed = readme_namespace["__failed__"]
        earlier = f" (blocks {failed} failed before it)" if failed else ""
        failed.append(block.number)
        pytest.fail(f"{block.label} failed{earlier}:\n{error}", pytrace=False)
    check = _CHECKS.get(block.heading)
    if check is not None:
        check(readme_namespace)


def _check_overfitting(ns: dict) -> None:
    assert ns["psr"] > 0.95 > ns["dsr"]  # the point of the example
    assert ns["result"].n_combinations == 12870
    assert len(ns["splits"]) == 15


def _check_bus(ns: dict) -> None:
    assert ns["msg"] == ns["candle"]  # the comment says: True 62100.0


def _check_storage(ns: dict) -> None:
    assert str(ns["candles"].index[0]) == "2024-03-01 12:00:00+00:00"  # start is inclusive


_CHECKS = {"Storage": _check_storage, "Message bus": _check_bus,
           "Overfitting statistics": _check_overfitting}


# --------------------------------------------------------------------------- CLI examples
# The README's offline CLI examples, as written; `extra` adds what the README says to add
# for a closed, offline run (`--until`, `--exchange-url`). Each must appear in README.md.
_EMULATOR = "tcp-lab emulator --port 8765 --symbols BTC/USDT,ETH/USDT --seed 0"
_CLI = [
    ("tcp-lab config show", "", 0),
    ("tcp-lab db init", "", 0),
    ("tcp-lab collect --exchange binance --symbols BTC/USDT,ETH/USDT --timeframes 1m,5m,1h "
     "--since 2024-01-01", " --until 2024-01-02 --exchange-url {url}", 0),
    ("tcp-lab db info", "", 0),
    ("tcp-lab data check [--repair]", "", 0),  # repairs from the recorded source: the emulator
    ("tcp-lab strategy list", "", 0),
    ("tcp-lab strategy check NAME", "", 0),
    ("tcp-lab backtest --strategy sma_cross --parameters '{\"fast\":10,\"slow\":30}' "
     "--exchange binance --symbol BTC/USDT --timeframe 1m --html report.html", "", 0),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(url: str, proc: subprocess.Popen, log: Path, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"`{_EMULATOR}` exited with {proc.returncode}: "
                                 f"{log.read_text()}")
        try:
            with urllib.request.urlopen(f"{url}/api/v3/time", timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"the emulator did not answer at {url} within {seconds} s")


@pytest.mark.slow
def test_readme_cli_examples(tmp_path, monkeypatch, capsys):
    """The offline CLI examples run as written, against `tcp-lab emulator` as documented."""
    from tcp_lab.cli import main

    text = " ".join(README.read_text(encoding="utf-8").split())  # README lines wrap
    monkeypatch.chdir(tmp_path)
    port = _free_port()
    assert _EMULATOR in text
    # As written, but on a free port and with the emulated clock at 2024-01-02 (else the
    # backfill since 2024-01-01 would be years of candles).
    argv = shlex.split(_EMULATOR.replace("8765", str(port)))
    argv[:1] = [sys.executable, "-m", "tcp_lab"]
    argv += ["--start-at", "2024-01-02T00:00Z", "--warm-days", "0"]
    log = tmp_path / "emulator.log"
    with log.open("w") as f:
        proc = subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_for(url, proc, log)
        for documented, extra, expected in _CLI:
            documented = " ".join(documented.split())
            assert documented in text, f"README no longer shows `{documented}`"
            command = documented.replace("[--repair]", "--repair").replace("NAME", "sma_cross")
            command += extra.format(url=url)
            code = main(shlex.split(command)[1:])
            out = capsys.readouterr()
            assert code == expected, f"`{command}` exited {code}:\n{out.out}\n{out.err}"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert (tmp_path / "report.html").is_file()
