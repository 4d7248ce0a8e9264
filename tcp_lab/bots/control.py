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

Whoever asked for a start learns how it went from the same table
(:func:`wait_for_start`): running and beating, crashed, or not started in time.
"""

from __future__ import annotations

import difflib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

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
    "bot_rows",
    "start_warnings",
    "StartOutcome",
    "wait_for_start",
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


def bot_rows(store: Store) -> list[dict[str, Any]]:
    """Every row of the ``bots`` table as a dict (ordered by id), None where a value is missing.

    :meth:`~tcp_lab.store.Store.list_bots` is a DataFrame: in a column where some
    bots have a value and others none (``last_error``, ``heartbeat``…), pandas
    holds NaN or NaT for the latter, which are neither None nor a value.
    """
    rows = store.list_bots().to_dict("records")
    for row in rows:
        for key, value in row.items():
            if pd.api.types.is_scalar(value) and pd.isna(value):
                row[key] = None
    return rows


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
    if old is not None and (tuple(old.get("symbols") or [old.get("symbol")]), old.get("exchange"),
                            old.get("timeframe")) != (config.universe, config.exchange,
                                                      config.timeframe):
        log.warning("bot %s now trades %s; its account and last candle are kept",
                    config.name, config.market)
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


def start_warnings(store: Store, config: BotConfig) -> list[str]:
    """One-line warnings about a bot that can start but may have nothing to trade.

    Looks only at the store (never at the network): the bot's series has no
    stored candle; and, when the store holds candles of the same exchange but
    none of this symbol, the symbol is not among the exchange's markets known
    here (a typo such as ``BTC/USD`` for ``BTC/USDT`` gets a suggestion).

    Returns
    -------
    list of str
        Empty when the series has candles (a portfolio bot: one per symbol without).
    """
    c = config
    missing = [s for s in c.universe
               if store.latest_candle_ts(c.exchange, s, c.timeframe) is None]
    if not missing:
        return []
    series = store.list_series()
    on_exchange = series[series["exchange"] == c.exchange]
    symbols = sorted(set(on_exchange["symbol"]))
    return [_missing_warning(c, s, symbols, on_exchange) for s in missing]


def _missing_warning(c: BotConfig, symbol: str, symbols: list[str],
                     on_exchange: pd.DataFrame) -> str:
    collect = (f"`tcp-lab collect --exchange {c.exchange} --symbols {symbol} "
               f"--timeframes {c.timeframe}`")
    if symbols and symbol not in symbols:
        guess = difflib.get_close_matches(symbol, symbols, n=1)
        known = f"did you mean {guess[0]!r}?" if guess else \
            f"stored: {', '.join(symbols[:5])}{', …' if len(symbols) > 5 else ''}"
        return (f"bot {c.name}: {symbol!r} is not among the {len(symbols)} {c.exchange} "
                f"symbols in the store ({known}); it waits for candles of a market that may "
                f"not exist: fix its config or run {collect}")
    timeframes = sorted(set(on_exchange.loc[on_exchange["symbol"] == symbol, "timeframe"]))
    stored = f" (stored: {', '.join(timeframes)})" if timeframes else ""
    return (f"bot {c.name}: no stored candles for {c.exchange} {symbol} {c.timeframe}"
            f"{stored}; it trades once the collector stores some ({collect})")


@dataclass(frozen=True)
class StartOutcome:
    """How a start ended, as :func:`wait_for_start` saw it in the ``bots`` table.

    Attributes
    ----------
    state
        ``running`` (it reported running and wrote a heartbeat after its start),
        ``crashed`` / ``failed`` (``row["last_error"]`` says why), ``stopped``
        (stopped by someone else meanwhile), ``timeout`` (not running in time)
        or ``unconfirmed`` (running, but no heartbeat since its start in time).
    row
        The bot's last row seen (None if it vanished).
    message
        One line for the user.
    """

    state: str
    row: dict[str, Any] | None
    message: str

    @property
    def ok(self) -> bool:
        """True when the bot runs and beats."""
        return self.state == "running"


def wait_for_start(store: Store, bot_id: str, before: dict[str, Any] | None = None, *,
                   timeout: float = 30.0, heartbeat_wait: float = 15.0, poll: float = 0.2,
                   hint: str = "", monotonic: Callable[[], float] = time.monotonic,
                   sleep: Callable[[float], None] = time.sleep) -> StartOutcome:
    """Wait until a bot asked to start runs and beats, or report why it does not.

    A bot reports ``running`` and writes its first heartbeat before it
    processes any candle, so a bot that crashes on its first candles would
    look healthy; it counts as running only once it writes a heartbeat
    *after* that one (it did its catch-up, or at least one heartbeat interval
    of it, without crashing).

    Parameters
    ----------
    store
        Where the bot's row is.
    bot_id
        The bot.
    before
        Its row before the start was requested (None for a new bot). A crash is
        status ``crashed`` or ``failed``, or a restart count above ``before``'s
        (a crash the manager has already restarted).
    timeout
        Seconds to wait for status ``running``.
    heartbeat_wait
        Seconds, once it runs, to wait for its next heartbeat (0: do not wait).
    poll
        Seconds between reads of the row.
    hint
        Appended to the message when it does not run in time (e.g. "is the
        manager running?").
    monotonic, sleep
        The clock (tests inject one).

    Returns
    -------
    StartOutcome
    """
    before = before or {}
    restarts = before.get("restart_count") or 0
    old_beat = before.get("heartbeat")
    # an already running bot was confirmed by its last heartbeat: the next one suffices
    first_beat = old_beat if before.get("status") == "running" else None
    start = monotonic()
    beat_deadline = start + heartbeat_wait if first_beat is not None else None
    while True:
        row = store.get_bot(bot_id)
        now = monotonic()
        if row is None:
            return StartOutcome("stopped", None, f"bot {bot_id}: no longer in the store")
        status, beat = row["status"], row["heartbeat"]
        if status in ("crashed", "failed") or (row["restart_count"] or 0) > restarts:
            state = "failed" if status == "failed" else "crashed"
            return StartOutcome(state, row, f"bot {bot_id}: {state}: "
                                f"{row['last_error'] or 'no error recorded'}")
        if status in ("stopping", "stopped"):
            return StartOutcome("stopped", row, f"bot {bot_id}: {status} before it ran")
        if status == "running" and beat is not None and beat != old_beat:
            if first_beat is None:
                first_beat, beat_deadline = beat, now + heartbeat_wait
            if beat != first_beat or heartbeat_wait <= 0:
                return StartOutcome("running", row, f"bot {bot_id}: running")
        if beat_deadline is None and now - start >= timeout:
            return StartOutcome("timeout", row, f"bot {bot_id}: still {status} after "
                                f"{timeout:g} s{'; ' + hint if hint else ''}")
        if beat_deadline is not None and now >= beat_deadline:
            return StartOutcome("unconfirmed", row, (
                f"bot {bot_id}: running, but no heartbeat in the {heartbeat_wait:g} s after its "
                f"start (longer heartbeat interval, or a hang?); see "
                f"`tcp-lab bots status {bot_id}`"))
        sleep(poll)
