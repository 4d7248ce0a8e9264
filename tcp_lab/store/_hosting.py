"""What bot hosts need from the store: fencing tokens, batched heartbeats, corrections.

A host runs many bots and writes their records together
(:meth:`~tcp_lab.store._bots.BotsMixin.write_bot_candles`). Exactly one host
may write a bot's records: each launch of a bot :meth:`claims <HostingMixin.claim_bot>`
it, which raises its token in ``bot_owners``, and every records transaction
checks the tokens it was given. On PostgreSQL the check locks the bots'
``bot_owners`` rows, so a claim waits for a records transaction in flight and
every later one of the old host fails: an orphan of a killed manager, or a
hung host whose bots were moved, can never write after the new host took the
bot. The rule is the database's, not a matter of timing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from tcp_lab.errors import TcpLabError
from tcp_lab.store import schema as S
from tcp_lab.store._backend import RowsWrite
from tcp_lab.store._convert import (
    check_name,
    from_db_time,
    py_time,
    time_range,
    utc,
)
from tcp_lab.timeframes import TS_DTYPE

if TYPE_CHECKING:
    from tcp_lab.store._backend import Backend

__all__ = ["HostingMixin"]

T = TypeVar("T")


def _now() -> pd.Timestamp:
    return pd.Timestamp.now("UTC").as_unit("us")


class HostingMixin:
    """The bot-host part of :class:`~tcp_lab.store.Store` (needs ``self._backend``)."""

    _backend: Backend

    def claim_bot(self, bot_id: str, host: str | None = None) -> int:
        """Make the caller the only writer of ``bot_id``'s records; return its token.

        Every claim returns a larger token than the one before, and makes every
        earlier token stale (see :meth:`write_bot_candles`). ``host`` is kept
        for the operator (e.g. ``"host-2 pid 4242"``).
        """
        table = S.bot_owners
        stmt = pg.insert(table).values(bot_id=check_name(bot_id, "bot_id"), token=1, host=host,
                                       claimed_at=py_time(_now()))
        stmt = stmt.on_conflict_do_update(
            index_elements=["bot_id"],
            set_={"token": table.c.token + 1, "host": stmt.excluded.host,
                  "claimed_at": stmt.excluded.claimed_at},
        ).returning(table.c.token)
        return int(self._backend.run(lambda tx: tx.fetch(stmt)[0][0], write=True,
                                     what=f"claim bot {bot_id}"))

    def bot_tokens(self, bot_ids: list[str] | None = None) -> dict[str, int]:
        """The current fencing token of each bot (all claimed bots by default)."""
        table = S.bot_owners  # one small row per bot: read them all
        stmt = sa.select(table.c.bot_id, table.c.token)
        rows = self._backend.run(lambda tx: tx.fetch(stmt), write=False,
                                 what="read bot owners")
        wanted = None if bot_ids is None else set(bot_ids)
        return {r[0]: int(r[1]) for r in rows if wanted is None or r[0] in wanted}

    def _fenced_write(self, by_bot: Mapping[str, T], tokens: Mapping[str, int] | None,
                      write: Callable[[Mapping[str, T], Mapping[str, int] | None], None],
                      ) -> set[str]:
        """``write(rows by bot, fence)`` in one transaction, fenced by ``tokens``; the bots
        whose token is stale are left out (and returned), the others written."""
        lost: set[str] = set()
        rows = dict(by_bot)
        while rows:
            fence = None if tokens is None else {b: tokens[b] for b in rows}
            try:
                write(rows, fence)
                break
            except TcpLabError:
                current = self.bot_tokens(list(fence)) if fence else {}
                stale = {b for b, t in (fence or {}).items() if current.get(b) != t}
                if not stale:
                    raise
                lost |= stale
                rows = {b: r for b, r in rows.items() if b not in stale}
        return lost

    def heartbeat_bots(self, bot_ids: Iterable[str], now: pd.Timestamp | None = None,
                       tokens: Mapping[str, int] | None = None) -> set[str]:
        """Write the heartbeat ``now`` of many bots in one statement.

        With ``tokens``, as :meth:`write_bot_candles`: the bots whose token is
        stale are left out and returned. (A bot's last processed candle is
        written with its records, in their transaction.)
        """
        when = py_time(utc(now if now is not None else _now(), "now"))
        rows = {b: {"id": check_name(b, "bot_id"), "heartbeat": when} for b in bot_ids}

        def write(by_bot: Mapping[str, dict[str, Any]], fence: Mapping[str, int] | None) -> None:
            self._backend.write_rows([RowsWrite(S.bots, list(by_bot.values()), update_only=True)],
                                     what="write heartbeats", fence=fence)

        return self._fenced_write(rows, tokens, write)

    # -- corrections ------------------------------------------------------------------
    def record_correction(self, bot_id: str, ts: object, *, action: str | None,
                          corrected_action: str, close: float | None, corrected_close: float,
                          detail: str = "") -> None:
        """Record that the candle ``ts``, which ``bot_id`` had processed, was corrected.

        ``action`` is what the bot decided on the candle it processed,
        ``corrected_action`` what it would have decided on the corrected one. The
        bot's fills and equity stay as they were (it traded on what it saw).
        """
        values = {"bot_id": check_name(bot_id, "bot_id"), "ts": py_time(utc(ts, "ts")),
                  "seen_at": py_time(_now()), "action": action,
                  "corrected_action": check_name(corrected_action, "corrected_action"),
                  "close": None if close is None else float(close),
                  "corrected_close": float(corrected_close), "detail": detail[:2000]}
        self._backend.write_rows([RowsWrite(S.bot_corrections, [values])],
                                 what="write a correction")

    def load_corrections(self, bot_id: str, start: object = None,
                         end: object = None) -> pd.DataFrame:
        """A bot's correction events: index ``ts`` (the candle); seen_at, action,
        corrected_action, close, corrected_close, detail."""
        table = S.bot_corrections
        cols = [c for c in table.columns if c.name not in ("bot_id", "ts")]
        stmt = (sa.select(table.c.ts, *cols)
                .where(table.c.bot_id == check_name(bot_id, "bot_id"),
                       *time_range(table.c.ts, start, end))
                .order_by(table.c.ts))
        rows = self._backend.run(lambda tx: tx.fetch(stmt), write=False,
                                 what="read corrections")
        return _frame(rows, cols)


def _frame(rows: list[tuple[Any, ...]], cols: list[sa.Column]) -> pd.DataFrame:
    index = pd.DatetimeIndex([from_db_time(r[0]) for r in rows], dtype=TS_DTYPE, name="ts")
    data = {c.name: [r[i] for r in rows] for i, c in enumerate(cols, 1)}
    frame = pd.DataFrame(data, index=index)
    for name in ("close", "corrected_close"):
        frame[name] = frame[name].astype("float64")
    if "seen_at" in frame:
        frame["seen_at"] = pd.DatetimeIndex([from_db_time(v) for v in frame["seen_at"]],
                                            dtype=TS_DTYPE)
    return frame
