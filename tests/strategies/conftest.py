"""Fixtures for strategy tests: the broken-strategy module importable by dotted path."""

from __future__ import annotations

from pathlib import Path

import pytest

from tcp_lab.testing import make_candles

FIXTURES = Path(__file__).parents[1] / "fixtures"


@pytest.fixture
def fixtures_on_path(monkeypatch):
    """Put ``tests/fixtures`` on ``sys.path`` so ``peeking_strategies:...`` imports."""
    monkeypatch.syspath_prepend(str(FIXTURES))


@pytest.fixture(scope="session")
def candles():
    return make_candles(1500, seed=3)
