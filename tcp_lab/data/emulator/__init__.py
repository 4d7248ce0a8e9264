"""An exchange emulator speaking Binance spot's wire format on 127.0.0.1.

The unmodified ccxt client (sync, async and ccxt.pro), with only its API URLs pointed
at the emulator (see :func:`tcp_lab.data.providers.ccxt_client.make_exchange`), loads
markets, pages klines and trades, and watches live trades, against a deterministic
synthetic market; faults (429s, 5xx, timeouts, malformed bodies, websocket drops, trade
gaps) are injected on command.

- :class:`~tcp_lab.data.emulator.market.MarketModel`: the market (pure numpy).
- :class:`~tcp_lab.data.emulator.server.EmulatorServer`: the server handle
  (aiohttp in a background thread); loaded on first access.
- ``tcp-lab emulator``: the same from the command line.

>>> from tcp_lab.data.emulator import EmulatorServer   # doctest: +SKIP
>>> with EmulatorServer(symbols=("BTC/USDT",), seed=0) as emu:   # doctest: +SKIP
...     print(emu.base_url, emu.ws_url)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from tcp_lab.data.emulator.clock import EmulatorClock
from tcp_lab.data.emulator.faults import FAULT_KINDS
from tcp_lab.data.emulator.market import DEFAULT_GENESIS, Klines, MarketModel, Trades

__all__ = ["DEFAULT_GENESIS", "FAULT_KINDS", "EmulatorClock", "EmulatorServer", "Klines",
           "MarketModel", "Trades"]


def __getattr__(name: str) -> Any:
    if name == "EmulatorServer":  # imports aiohttp: only when asked for
        return importlib.import_module("tcp_lab.data.emulator.server").EmulatorServer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if TYPE_CHECKING:  # pragma: no cover
    from tcp_lab.data.emulator.server import EmulatorServer
