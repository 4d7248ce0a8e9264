"""Fixtures: one emulator per module (port 0 on 127.0.0.1) and ccxt clients pointed at it."""

from __future__ import annotations

import pytest

from tcp_lab.data.emulator import EmulatorServer
from tcp_lab.data.providers.ccxt_client import make_exchange

SEED = 7


@pytest.fixture(scope="module")
def emulator():
    with EmulatorServer(symbols=("BTC/USDT", "ETH/USDT"), seed=SEED) as server:
        yield server


@pytest.fixture
def emu(emulator):
    """The module's emulator; pending faults are dropped after each test."""
    yield emulator
    emulator.clear_faults()


@pytest.fixture
def exchange(emu):
    """A sync ``ccxt.binance`` pointed at the emulator, markets loaded."""
    ex = make_exchange("binance", exchange_url=emu.base_url, rateLimit=5)
    ex.load_markets()
    yield ex
    ex.session.close()
