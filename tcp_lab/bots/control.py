"""How the CLI, notebooks and the manager talk: rows of the ``bots`` table and bus events.

The ``bots`` table is the source of truth. Its ``status`` column is the bot's
lifecycle (``starting running stopping stopped crashed failed``) and doubles
as the request channel: ``tcp-lab bots start`` writes the bot's definition
with status ``starting``, ``tcp-lab bots stop`` sets ``stopping``, and the
manager (``tcp-lab bots serve``), which polls the table, acts on them. A
:class:`~tcp_lab.bus.EventMessage` of kind :data:`REQUEST_EVENT` on
``system:events`` wakes the manager at once instead of at its next poll.

The bot's definition (its :class:`~tcp_lab.bots.config.BotConfig`) is kept
in ``state["config"]`` next to the account, so a worker process, or a
manager restarted elsewhere, needs no config file.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tcp_lab.bots.config import BotConfig, find_bot_config, load_bot_config
from tcp_lab.bots.policy import utc_now
from tcp_lab.errors import ConfigError, DataError

if TYPE_CHECKING:
    from tcp_lab.bus import Bus
    from tcp_lab.store import Store

__all__ = [
    "REQUEST_EVENT",
    "FAILED_EVENT",
    "SHUTDOWN_REASON",
    "ACTIVE_STATUSES",
    "resolve_config",
    "save_definition",
    "stored_config",
    "request_start",
    "request_stop",
    "publish_event",
]

log = logging.getLogger("tcp_lab.bots")

#: ``system:events`` kind that wakes the manager (a start or stop was requested).
REQUEST_EVENT = "bots.request"
#: ``system:events`` kind published when a bot exhausts its restart budget.
FAILED_EVENT = "bots.failed"
#: ``last_error`` of bots the manager stopped on its own shutdown: it restarts them.
SHUTDOWN_REASON = "manager shut down; the bot resumes when a manager starts"
#: Statuses of bots that should be running (restored when a manager starts).
ACTIVE_STATUSES = ("starting", "running", "crashed")


def resolve_config(bot: str | Path | BotConfig,
                   config_dir: str | Path | None = None) -> tuple[BotConfig, str | None]:
    """A config and the file it came from: a :class:`BotConfig`, a path, or a bot name."""
    if isinstance(bot, BotConfig):
        return bot, None
    path = Path(bot) if Path(bot).suffix == ".json" else find_bot_config(str(bot), config_dir)
    return load_bot_config(path), str(path)


def stored_config(row: dict[str, Any]) -> BotConfig:
    """The config a ``bots`` row carries in ``state["config"]``.

    Raises
    ------
    ConfigError
        The row has none (created by other code) or it no longer validates.
    """
    data = (row.get("state") or {}).get("config")
    if data is None:
        raise ConfigError(f"bot {row['id']!r} has no stored definition",
                          hint=f"start it with `tcp-lab bots start {row['id']}`")
    return BotConfig.from_mapping(data, source=f"bots table, bot {row['id']!r}")


def save_definition(store: Store, config: BotConfig, config_path: str | None,
                    status: str) -> dict[str, Any]:
    """Store ``config`` in the bot's row (keeping its account) and set ``status``.

    A bot that had failed gets a fresh restart budget.
    """
    row = store.get_bot(config.name)
    state = dict((row or {}).get("state") or {})
    old = state.get("config")
    if old is not None and (old.get("symbol"), old.get("exchange"), old.get("timeframe")) != (
            config.symbol, config.exchange, config.timeframe):
        log.warning("bot %s now trades %s %s %s; its account and last candle are kept",
                    config.name, config.exchange, config.symbol, config.timeframe)
    state["config"] = config.to_json()
    store.upsert_bot(config.name, strategy=config.strategy, name=config.name,
                     config_path=config_path, state=state)
    fields: dict[str, Any] = {"status": status, "last_error": None}
    if row is not None and row["status"] == "failed":
        fields["restart_times"] = []
    return store.update_bot(config.name, **fields)


def publish_event(bus: Bus | None, kind: str, detail: dict[str, Any]) -> None:
    """Publish an event on ``system:events`` (logged, not raised, when the bus is down)."""
    if bus is None:
        return
    from tcp_lab.bus import SYSTEM_EVENTS, EventMessage

    try:
        bus.publish(SYSTEM_EVENTS, EventMessage(kind=kind, source="tcp_lab.bots", ts=utc_now(),
                                                detail=detail))
    except Exception as e:  # the table is the source of truth; the event is a courtesy
        log.warning("could not publish %s event: %s", kind, e)


def request_start(store: Store, bus: Bus | None, bot: str | Path | BotConfig,
                  config_dir: str | Path | None = None) -> BotConfig:
    """Ask the manager to start ``bot``: store its definition with status ``starting``.

    A bot that is already running keeps running (its definition is updated
    for its next start).

    Returns
    -------
    BotConfig
        The validated config.

    Raises
    ------
    ConfigError
        No such config, or an invalid one.
    """
    config, path = resolve_config(bot, config_dir)
    row = store.get_bot(config.name)
    status = "starting"
    if row is not None and row["status"] in ("running", "starting"):
        status = row["status"]
    save_definition(store, config, path, status)
    publish_event(bus, REQUEST_EVENT, {"bot_id": config.name, "request": "start"})
    return config


def request_stop(store: Store, bus: Bus | None, bot_id: str) -> dict[str, Any]:
    """Ask the manager to stop ``bot_id`` (status ``stopping``); a bot that is not
    running is simply marked ``stopped``.

    Raises
    ------
    DataError
        No such bot.
    """
    row = store.get_bot(bot_id)
    if row is None:
        raise DataError(f"no bot {bot_id!r} in the store", hint="see `tcp-lab bots list`")
    status = "stopping" if row["status"] in ACTIVE_STATUSES else "stopped"
    row = store.update_bot(bot_id, status=status, last_error=None if status == "stopped"
                           else row["last_error"])
    publish_event(bus, REQUEST_EVENT, {"bot_id": bot_id, "request": "stop"})
    return row
