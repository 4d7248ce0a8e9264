"""Checked rows of a bot's records: what one candle of a bot writes, and the rules
every value follows (shared by the single-row writers and the per-candle records).

A record (:func:`bot_candle_record`, :func:`portfolio_candle_record`) is a dict
``{"signals": [row…], "trades": [row…], "performance": row, "bot": row}`` that
:meth:`~tcp_lab.store.Store.write_bot_candles` writes in one transaction.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from tcp_lab.errors import DataError
from tcp_lab.store._convert import (
    SIDES,
    check_name,
    dumps_json,
    py_time,
    utc,
    utc_or_none,
)

__all__ = ["JsonText", "bot_candle_record", "portfolio_candle_record"]


def _number(value: object, name: str, *, positive: bool = False, nonnegative: bool = False,
            optional: bool = False) -> float | None:
    if value is None and optional:
        return None
    try:
        x = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise DataError(f"{name} must be a number, got {value!r}") from None
    if math.isnan(x) and optional:
        return None
    if not math.isfinite(x) or (positive and x <= 0) or (nonnegative and x < 0):
        need = "positive" if positive else "non-negative" if nonnegative else "finite"
        raise DataError(f"{name} must be a {need} number, got {value!r}")
    return x


def _text(value: object, name: str, *, optional: bool = True) -> str | None:
    if value is None and optional:
        return None
    return check_name(value, name)


def _bot_field(key: str, value: object) -> object:
    """Convert one :meth:`update_bot` argument to its column value."""
    if key in ("heartbeat", "last_candle_ts"):
        return py_time(utc_or_none(value, key))
    if key == "restart_count":
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise DataError(f"restart_count must be a non-negative integer, got {value!r}")
        return value
    if key == "restart_times":
        times = [utc(t, "restart_times") for t in (value or [])]
        return dumps_json([t.isoformat() for t in times], key)
    if key == "state":
        if value is not None and not isinstance(value, Mapping):
            raise DataError(f"state must be a dict (or None), got {type(value).__name__}")
        return dumps_json(value, key)
    return _text(value, key, optional=key in ("name", "config_path", "last_error"))


#: The keys of each signal and each fill of a portfolio record.
_SIGNAL_KEYS = ("symbol", "action", "confidence", "price", "indicators")
_FILL_KEYS = ("symbol", "side", "price", "amount", "fee", "realized_pnl", "reason")


def bot_candle_record(bot_id: str, ts: object, *, action: str, confidence: float | None,
                      price: float | None, indicators: Mapping[str, Any] | None,
                      fills: Sequence[Mapping[str, Any]] = (), cash: float, position: float,
                      equity: float, state: Mapping[str, Any] | str,
                      symbol: str = "") -> dict[str, Any]:
    """What :meth:`~tcp_lab.store.Store.record_bot_candle` writes, checked, for
    :meth:`~tcp_lab.store.Store.write_bot_candles` (the arguments are the same).

    The signal is ``symbol``'s; a fill's symbol is ``fill.get("symbol", symbol)``.
    """
    signal = {"symbol": symbol, "action": action, "confidence": confidence, "price": price,
              "indicators": indicators}
    return _candle_record(bot_id, ts, [signal], fills, symbol=symbol, cash=cash,
                          position=position, equity=equity, state=state)


def portfolio_candle_record(bot_id: str, ts: object, *, signals: Sequence[Mapping[str, Any]],
                            fills: Sequence[Mapping[str, Any]], cash: float, position: float,
                            equity: float, state: Mapping[str, Any] | str) -> dict[str, Any]:
    """What a portfolio bot (several symbols, one account) did on the candle closing at
    ``ts``, checked, for :meth:`~tcp_lab.store.Store.write_bot_candles`.

    Parameters
    ----------
    bot_id, ts
        The bot and the close time (tz-aware).
    signals
        One mapping per symbol: ``symbol action confidence price indicators``; each
        symbol at most once.
    fills
        In the order they filled, across symbols: ``symbol side price amount fee
        realized_pnl reason``.
    cash, position, equity, state
        The account after the candle, as :func:`bot_candle_record`.

    Returns
    -------
    dict
        The record (``signals``, ``trades``, ``performance``, ``bot``).

    Raises
    ------
    DataError
        A bad value, a missing key, or a symbol with two signals.

    Examples
    --------
    >>> import pandas as pd
    >>> ts = pd.Timestamp("2024-03-01 00:05", tz="UTC")
    >>> record = portfolio_candle_record("pf", ts, signals=[
    ...     {"symbol": "BTC/USDT", "action": "buy", "confidence": 1.0, "price": 62000.0,
    ...      "indicators": {}}], fills=[], cash=1000.0, position=0.0, equity=1000.0,
    ...     state={})
    >>> [s["symbol"] for s in record["signals"]]
    ['BTC/USDT']
    """
    _require(bot_id, "signal", signals, _SIGNAL_KEYS)
    _require(bot_id, "fill", fills, _FILL_KEYS)
    return _candle_record(bot_id, ts, signals, fills, symbol=None, cash=cash,
                          position=position, equity=equity, state=state)


def _require(bot_id: object, what: str, items: Sequence[Mapping[str, Any]],
             keys: Sequence[str]) -> None:
    """Each of a portfolio record's ``items`` is a mapping with ``keys``, naming a symbol."""
    for i, item in enumerate(items):
        missing = [k for k in keys if k not in item] if isinstance(item, Mapping) else keys
        if missing:
            raise DataError(f"portfolio bot {bot_id!r}: {what} {i} lacks "
                            f"{', '.join(missing)}", hint=f"each {what} needs "
                            f"{', '.join(keys)}")
        check_name(item["symbol"], f"{what} {i}: symbol")


def _candle_record(bot_id: str, ts: object, signals: Sequence[Mapping[str, Any]],
                   fills: Sequence[Mapping[str, Any]], *, symbol: str | None, cash: float,
                   position: float, equity: float,
                   state: Mapping[str, Any] | str) -> dict[str, Any]:
    """The one builder of a candle's record: signals and fills (a fill without a symbol
    gets ``symbol``), performance and the bot's bookkeeping, every value checked."""
    bot_id, when = check_name(bot_id, "bot_id"), py_time(utc(ts, "ts"))
    signal_rows = [_signal_row(bot_id, when, s) for s in signals]
    seen: set[str] = set()
    for row in signal_rows:
        if row["symbol"] in seen:
            raise DataError(f"bot {bot_id!r} at {when}: two signals for symbol "
                            f"{row['symbol']!r}", hint="give one signal per symbol")
        seen.add(row["symbol"])
    return {
        "signals": signal_rows,
        "performance": _performance_row(bot_id, when, cash, position, equity),
        "bot": {"id": bot_id, "last_candle_ts": when,
                "state": _state_json(state),
                "updated_at": dt.datetime.now(dt.UTC)},
        "trades": [_fill_row(bot_id, when, seq, f if symbol is None or "symbol" in f
                             else {**f, "symbol": symbol})
                   for seq, f in enumerate(fills)],
    }


def _symbol(value: object) -> str:
    """A record's symbol: any string, ``""`` for a single-symbol bot that gives none."""
    if not isinstance(value, str):
        raise DataError(f"symbol must be a string, got {value!r}",
                        hint='e.g. "BTC/USDT", or "" for a single-symbol bot')
    return value


def _signal_row(bot_id: str, when: Any, signal: Mapping[str, Any]) -> dict[str, Any]:
    """A row of the signals table, checked."""
    return {"bot_id": bot_id, "ts": when, "symbol": _symbol(signal["symbol"]),
            "action": check_name(signal["action"], "action"),
            "confidence": _number(signal.get("confidence"), "confidence", optional=True),
            "price": _number(signal.get("price"), "price", optional=True),
            "indicators": dumps_json(signal.get("indicators"), "indicators")}


def _performance_row(bot_id: str, when: Any, cash: object, position: object,
                     equity: object) -> dict[str, Any]:
    """A row of the equity curve (``bot_performance``), checked."""
    return {"bot_id": bot_id, "ts": when, "cash": _number(cash, "cash"),
            "position": _number(position, "position"), "equity": _number(equity, "equity")}


def _fill_row(bot_id: str, when: Any, seq: int, fill: Mapping[str, Any]) -> dict[str, Any]:
    """A row of the fills table (``trades``), checked."""
    if fill["side"] not in SIDES:
        raise DataError(f"side must be 'buy' or 'sell', got {fill['side']!r}")
    return {"bot_id": bot_id, "ts": when, "symbol": _symbol(fill.get("symbol", "")),
            "seq": int(seq), "side": fill["side"],
            "price": _number(fill["price"], "price", positive=True),
            "amount": _number(fill["amount"], "amount", nonnegative=True),
            "fee": _number(fill.get("fee", 0.0), "fee"),
            "realized_pnl": _number(fill.get("realized_pnl"), "realized_pnl", optional=True),
            "reason": _text(fill.get("reason"), "reason")}


class JsonText(str):
    """JSON text made by a serializer that can only produce a valid object (the bot's
    state document): written as is, without parsing it again."""


def _state_json(state: Mapping[str, Any] | str) -> str | None:
    if isinstance(state, JsonText):
        return state
    if isinstance(state, str):
        try:
            parsed = json.loads(state)
        except ValueError as e:
            raise DataError(f"state is not valid JSON ({e})") from None
        if not isinstance(parsed, dict):
            raise DataError(f"state must be a JSON object, got {type(parsed).__name__}")
        return state
    return _bot_field("state", state)  # type: ignore[return-value]
