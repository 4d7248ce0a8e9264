"""Exchange data providers: where candles and trades come from.

- :mod:`tcp_lab.data.providers.ccxt_client`: builds ccxt exchange clients (sync, async,
  ccxt.pro), optionally pointed at the local exchange emulator.
- :mod:`tcp_lab.data.providers.base`: the :class:`Provider` protocol every provider
  follows, and the registry (:func:`register_provider`, :func:`make_provider`).
- :mod:`tcp_lab.data.providers.ccxt_provider`: ``"ccxt"``, klines by REST and live
  trades by ccxt.pro (or REST polling).
- :mod:`tcp_lab.data.providers.replay`: ``"replay"``, trades or candles from files.

Nothing heavy is imported here; ccxt loads when a client is built.
"""

from __future__ import annotations

from tcp_lab.data.providers.base import (
    CandlePage,
    EndOfData,
    Provider,
    ProviderFactory,
    TransientError,
    make_provider,
    provider_names,
    register_provider,
)

__all__ = [
    "Provider",
    "ProviderFactory",
    "CandlePage",
    "TransientError",
    "EndOfData",
    "register_provider",
    "make_provider",
    "provider_names",
]
