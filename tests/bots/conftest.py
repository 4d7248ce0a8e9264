"""Bot test fixtures (helpers live in ``bots_helpers``)."""

from __future__ import annotations

import os

import pytest
from bots_helpers import HERE, FakeStore

# A private redis-server that a test may kill and restart (never the shared one).
from tests.bus.conftest import own_redis, own_redis_factory  # noqa: F401


@pytest.fixture(autouse=True)
def _bot_strategies_importable(monkeypatch):
    """``bot_strategies:Name`` imports here and in worker processes (PYTHONPATH)."""
    monkeypatch.syspath_prepend(str(HERE))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(HERE), str(HERE.parents[1])]))


@pytest.fixture
def fake_store() -> FakeStore:
    return FakeStore()
