"""Rows of the bot panel: one ``bots`` row (+ its latest equity) in, a table row out.

Pure functions over plain dicts, so the panel stays a thin view and these are easy to test.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import pandas as pd

from tcp_lab.bots.config import market_label
from tcp_lab.bots.portfolio_broker import stored_positions

if TYPE_CHECKING:  # pragma: no cover
    from tcp_lab.store import Store

__all__ = ["COLUMNS", "bot_row", "bots_table_html", "newest"]

#: Columns of :meth:`BotPanel.frame` (and of the table, in this order).
COLUMNS = ("status", "strategy", "market", "heartbeat", "last_candle", "position", "equity",
           "pnl", "pnl_pct", "last_signal", "restarts", "last_error")


def _ts(value: Any) -> pd.Timestamp | None:
    return None if value is None or pd.isna(value) else pd.Timestamp(value)


def newest(a: pd.Timestamp | None, b: pd.Timestamp | None) -> pd.Timestamp | None:
    """The later of two times (a message may be newer than the row read from the store)."""
    if a is None or b is None:
        return a if b is None else b
    return max(a, b)


def _age(ts: pd.Timestamp | None, now: pd.Timestamp) -> str:
    if ts is None:
        return "-"
    seconds = max(0.0, (now - ts).total_seconds())
    if seconds < 120:
        return f"{seconds:.0f} s ago"
    return f"{seconds / 60:.0f} min ago" if seconds < 7200 else f"{seconds / 3600:.1f} h ago"


def _num(value: Any, fmt: str = ".6g") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if isinstance(value, str):  # a portfolio bot's positions, by symbol
        return value
    return format(value, fmt)


def _positions_text(state: Mapping[str, Any]) -> str:
    """A portfolio bot's open positions, e.g. ``BTC/USDT 0.12, ETH/USDT -1.5`` (or ``flat``)."""
    _, positions = stored_positions(state)
    held = [f"{s} {p:.6g}" for s, p in positions.items() if p != 0.0]
    return ", ".join(held) or "flat"



def bot_row(bot: Mapping[str, Any], store: Store | None,
            old: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The displayed row of a ``bots`` row, with its latest performance snapshot.

    ``old`` is the row shown so far: its last signal is kept, and its heartbeat
    and last candle when a bus message made them newer than the store's.
    """
    old = old or {}
    state = bot.get("state") or {}
    cfg = state.get("config") or {}
    account = state.get("account") or {}
    last = _ts(bot.get("last_candle_ts"))
    position = account.get("position")
    equity = None
    if last is not None and store is not None:
        perf = store.load_performance(bot["id"], start=last)
        if len(perf):
            equity = float(perf["equity"].iat[-1])
            position = float(perf["position"].iat[-1])
    if cfg.get("symbols"):  # a portfolio bot: its position column is each symbol's
        position = _positions_text(state)
    initial = cfg.get("init_cash", cfg.get("initial_balance"))
    if equity is None and position in (None, 0, 0.0, "flat") and "cash" in account:
        equity = float(account["cash"])  # flat: equity is the cash
    pnl = None if equity is None or initial is None else equity - float(initial)
    return {
        "status": bot.get("status"),
        "strategy": bot.get("strategy"),
        "market": market_label(cfg),
        "heartbeat": newest(_ts(bot.get("heartbeat")), old.get("heartbeat")),
        "last_candle": newest(last, old.get("last_candle")),
        "position": position,
        "equity": equity,
        "pnl": pnl,
        "pnl_pct": None if pnl is None or not initial else 100.0 * pnl / float(initial),
        "last_signal": old.get("last_signal"),
        "restarts": int(bot.get("restart_count") or 0),
        "last_error": bot.get("last_error"),
    }


_HEAD = ("bot", "status", "strategy", "market", "heartbeat", "last candle", "position",
         "equity", "P&L", "last signal", "restarts", "last error")


def bots_table_html(rows: Mapping[str, Mapping[str, Any]], now: pd.Timestamp) -> str:
    """The rows as an HTML table (heartbeat ages relative to ``now``), by bot id."""
    cells = []
    for bot_id, r in sorted(rows.items()):
        last = r["last_candle"]
        pnl = r["pnl"]
        color = "" if pnl is None or pnl == 0 else (
            "color:#1b7f3b" if pnl > 0 else "color:#b00020")
        pnl_text = "-" if pnl is None else f"{pnl:+.2f} ({r['pnl_pct']:+.2f} %)"
        values = [
            bot_id, r["status"] or "-", r["strategy"] or "-", r["market"] or "-",
            _age(r["heartbeat"], now),
            "-" if last is None else f"{last:%Y-%m-%d %H:%M}",
            _num(r["position"]), _num(r["equity"], ".2f"), pnl_text,
            r["last_signal"] or "-", str(r["restarts"] or 0), (r["last_error"] or "")[:80],
        ]
        tds = "".join(
            f"<td style='padding:0 .6em;{color if i == 8 else ''}'>{html.escape(str(v))}</td>"
            for i, v in enumerate(values))
        cells.append(f"<tr>{tds}</tr>")
    ths = "".join(f"<th style='text-align:left;padding:0 .6em'>{h}</th>" for h in _HEAD)
    return f"<table class='tcp-lab-bots'><tr>{ths}</tr>{''.join(cells)}</table>"
