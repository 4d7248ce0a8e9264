"""Websocket market streams in Binance's format: ``<symbol>@trade`` and ``<symbol>@aggTrade``.

Paths: ``/ws`` and ``/ws/<anything>`` (raw streams; ccxt.pro connects to ``/ws/0``, a
path naming streams such as ``/ws/btcusdt@trade`` subscribes to them) and
``/stream?streams=a/b`` (combined streams, events wrapped as
``{"stream": name, "data": event}``). Control messages:
``{"method": "SUBSCRIBE" | "UNSUBSCRIBE" | "LIST_SUBSCRIPTIONS", "params": [...], "id": n}``,
answered ``{"result": null | [...], "id": n}``.

A pump wakes every ``interval`` seconds and publishes the trades of each subscribed
symbol whose time lies between the previous wake-up and the emulator's "now"; so
trades arrive in real time, in id order, as the emulator clock advances. Faults
``drop_ws`` and ``trade_gap`` are applied here.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from tcp_lab.data.emulator import wire
from tcp_lab.data.emulator.clock import EmulatorClock
from tcp_lab.data.emulator.faults import FaultBoard
from tcp_lab.data.emulator.market import MarketModel, Trades

__all__ = ["WsHub"]

log = logging.getLogger(__name__)
_EVENTS = {"trade": wire.trade_event, "aggTrade": wire.agg_trade_event}


@dataclass(eq=False)
class _Conn:
    ws: web.WebSocketResponse
    combined: bool
    streams: set[str] = field(default_factory=set)


class WsHub:
    """All websocket connections of one emulator, and the pump that feeds them."""

    def __init__(self, market: MarketModel, clock: EmulatorClock, faults: FaultBoard,
                 interval: float = 0.1) -> None:
        self.market, self.clock, self.faults, self.interval = market, clock, faults, interval
        self._conns: list[_Conn] = []
        self._cursor: dict[str, int] = {}  # market id -> first ms not yet published
        self._gap_left: dict[str, int] = {}
        self.counts: Counter[str] = Counter()

    # ------------------------------------------------------------------ connections
    def stats(self) -> dict[str, Any]:
        counts = {f"ws_{k}": v for k, v in self.counts.items()}
        return {"ws_connections": len(self._conns), **counts}

    @staticmethod
    def _valid(name: str) -> bool:
        return isinstance(name, str) and "@" in name

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        """aiohttp handler of ``/ws``, ``/ws/...`` and ``/stream``."""
        ws = web.WebSocketResponse(heartbeat=20.0)  # Binance pings every 20 s too
        await ws.prepare(request)
        conn = _Conn(ws, combined=request.path.startswith("/stream"))
        names = request.query.get("streams", "").split("/") if conn.combined else \
            request.match_info.get("tail", "").split("/")
        conn.streams.update(n for n in names if self._valid(n))
        self._conns.append(conn)
        self.counts["connections_total"] += 1
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    await self._control(conn, msg.data)
        finally:
            with contextlib.suppress(ValueError):
                self._conns.remove(conn)
        return ws

    async def _control(self, conn: _Conn, text: str) -> None:
        try:
            req = json.loads(text)
            method, rid = req["method"], req.get("id")
            params = req.get("params", [])
            if not isinstance(params, list) or not all(self._valid(p) for p in params):
                raise ValueError(params)
        except (ValueError, KeyError, TypeError):
            await conn.ws.send_str(json.dumps({"error": {"code": 2, "msg": "Invalid request"},
                                               "id": None}))
            return
        result: Any = None
        if method == "SUBSCRIBE":
            conn.streams.update(params)
            self.counts["subscribe"] += 1
        elif method == "UNSUBSCRIBE":
            conn.streams.difference_update(params)
        elif method == "LIST_SUBSCRIPTIONS":
            result = sorted(conn.streams)
        else:
            await conn.ws.send_str(json.dumps({"error": {"code": 2, "msg": f"Unknown method "
                                                                            f"{method!r}"},
                                               "id": rid}))
            return
        await conn.ws.send_str(json.dumps({"result": result, "id": rid}))

    async def close_all(self, code: int = 1001, message: bytes = b"emulator shutting down") -> None:
        for conn in list(self._conns):
            with contextlib.suppress(Exception):
                await conn.ws.close(code=code, message=message)
        self._conns.clear()

    # ------------------------------------------------------------------ the pump
    async def run(self) -> None:
        """Publish new trades forever (cancel to stop)."""
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self._drop_connections()
                await self._publish(self.clock.now_ms())
            except asyncio.CancelledError:
                raise
            except Exception:  # keep streaming whatever one tick did
                log.exception("emulator: websocket pump failed")

    async def _drop_connections(self) -> None:
        while self._conns and self.faults.has("drop_ws"):
            fault = self.faults.take(("drop_ws",))
            conn = self._conns.pop(0)
            self.counts["dropped"] += 1
            with contextlib.suppress(Exception):
                await conn.ws.close(code=int(fault.params["code"]), message=b"emulator: drop_ws")

    async def _publish(self, now: int) -> None:
        wanted: dict[str, set[str]] = {}
        for conn in self._conns:
            for name in conn.streams:
                mid, _, kind = name.partition("@")
                wanted.setdefault(mid.upper(), set()).add(kind)
        for mid in list(self._cursor):
            if mid not in wanted:
                del self._cursor[mid]
        for mid in wanted:
            spec = self.market.spec_by_id(mid)
            if spec is None:
                continue
            start = self._cursor.get(mid)
            self._cursor[mid] = now + 1
            if start is None or start > now:
                continue  # first tick after a subscription: publish from now on
            t = await asyncio.to_thread(self.market.trades, spec.symbol, start, now + 1)
            t = self._apply_gap(spec.symbol, mid, t)
            if len(t):
                await self._send(mid, t, now)

    def _apply_gap(self, symbol: str, mid: str, t: Trades) -> Trades:
        left = self._gap_left.get(mid, 0)
        if not left and len(t) and self.faults.has("trade_gap"):
            fault = self.faults.take(("trade_gap",), symbol=symbol)
            left = int(fault.params["size"]) if fault else 0
        if left and len(t):  # leave out the next `left` trades of this symbol's stream
            n = min(left, len(t))
            self.counts["trades_skipped"] += n
            left -= n
            t = t.select(slice(n, None))
        self._gap_left[mid] = left
        return t

    async def _send(self, mid: str, t: Trades, now: int) -> None:
        lower = mid.lower()
        for conn in list(self._conns):
            for kind, make in _EVENTS.items():
                name = f"{lower}@{kind}"
                if name not in conn.streams:
                    continue
                for i in range(len(t)):
                    event = make(mid, t, i, now)
                    payload = {"stream": name, "data": event} if conn.combined else event
                    try:
                        await conn.ws.send_str(json.dumps(payload, separators=(",", ":")))
                    except (ConnectionError, RuntimeError):
                        break
                    self.counts["messages"] += 1
