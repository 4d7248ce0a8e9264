"""Paper-trading bots: a config per bot, bots of one symbol or a portfolio, bot hosts, one policy.

A bot (``config/bots/<name>.json``) paper-trades a strategy on the closed
candles of one series (:class:`Bot`), or of several symbols from one account
with shared cash (``symbols``: :class:`PortfolioBot`, the live
``run_portfolio``): it records its signals, virtual fills and equity in the
store and publishes its signals and status on the bus. The
:class:`BotManager` starts and stops bots, watches their heartbeats and
progress, restarts crashed, hung or stuck bots with backoff (at most 3
restarts in any rolling hour, then ``failed``) and restores the active bots
when it starts again. Bots run in bot hosts (:mod:`tcp_lab.bots.host`): many
bots per loop, one subscription per symbol, one records transaction per
candle. On the embedded default (DuckDB + ``memory://``) the host is a thread
of the process that owns the store; on PostgreSQL + Redis hosts are processes
(``python -m tcp_lab.bots.host_process``), bots placed on them by symbol.

Live trading on a real exchange is impossible by construction: this package
has no code path that places an order anywhere. Fills are virtual, computed
by :class:`~tcp_lab.bots.broker.PaperBroker` on the backtest's execution
engine (:mod:`tcp_lab.execution`), stops and targets included, so a replayed
history gives exactly the backtest's trades.

>>> from tcp_lab.bots import BotManager, load_bot_config     # doctest: +SKIP
>>> manager = BotManager().start()                          # doctest: +SKIP
>>> manager.start_bot("sma-btc")                            # doctest: +SKIP
'sma-btc'
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from tcp_lab.bots.broker import Account, Fill, Flags, PaperBroker
from tcp_lab.bots.config import BotConfig, find_bot_config, load_bot_config
from tcp_lab.bots.policy import RestartPolicy

__all__ = [
    "BotConfig",
    "load_bot_config",
    "find_bot_config",
    "PaperBroker",
    "Account",
    "Flags",
    "Fill",
    "RestartPolicy",
    "Bot",
    "Step",
    "CandleError",
    "BotManager",
    "BotHost",
    "PortfolioBot",
    "PortfolioAccount",
]

# The bot and the manager pull in the store and the bus: load them on first use.
_LAZY = {
    "Bot": "tcp_lab.bots.bot",
    "Step": "tcp_lab.bots.bot",
    "CandleError": "tcp_lab.bots.bot",
    "BotManager": "tcp_lab.bots.manager",
    "BotHost": "tcp_lab.bots.host",
    "PortfolioBot": "tcp_lab.bots.portfolio_bot",
    "PortfolioAccount": "tcp_lab.bots.portfolio_broker",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'tcp_lab.bots' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


if TYPE_CHECKING:  # pragma: no cover
    from tcp_lab.bots.bot import Bot, CandleError, Step
    from tcp_lab.bots.host import BotHost
    from tcp_lab.bots.manager import BotManager
    from tcp_lab.bots.portfolio_bot import PortfolioBot
    from tcp_lab.bots.portfolio_broker import PortfolioAccount
