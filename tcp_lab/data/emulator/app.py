"""The aiohttp application: Binance spot REST endpoints, faults, weights and the control API.

Served paths (all ``GET`` unless noted):

- ``/api/v3/ping``, ``/api/v3/time``, ``/api/v3/exchangeInfo`` (``symbol``/``symbols``)
- ``/api/v3/klines`` (``symbol interval startTime endTime limit``)
- ``/api/v3/aggTrades`` (``symbol fromId startTime endTime limit``)
- ``/api/v3/trades``, ``/api/v3/historicalTrades`` (``fromId``), ``/api/v3/ticker/price``
- ``/_emulator/stats``; ``/_emulator/faults`` (``GET`` pending, ``POST`` inject JSON
  ``{"kind": …, "count": …, …params}``, ``DELETE`` clear)

Parameter rules follow Binance: ``limit`` defaults to 500 and is capped at 1000; klines
are matched on open time (``startTime`` only: the first ``limit`` from it; ``endTime``
only or neither: the last ``limit`` up to it / now; both: the first ``limit`` in the
range); aggTrades: ``fromId`` with a time bound is -1128, a ``startTime``-``endTime``
span over one hour is -1127, and a time window returns its first ``limit`` trades.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from aiohttp import web

from tcp_lab.data.emulator import wire
from tcp_lab.data.emulator.clock import EmulatorClock
from tcp_lab.data.emulator.faults import FaultBoard
from tcp_lab.data.emulator.market import INTERVALS, MarketModel
from tcp_lab.errors import TcpLabError

__all__ = ["EmulatorState", "STATE", "build_app", "stats_snapshot"]

log = logging.getLogger(__name__)

_HOUR = 3_600_000
_WEIGHTS = {"/api/v3/exchangeInfo": 20, "/api/v3/klines": 2, "/api/v3/aggTrades": 2,
            "/api/v3/trades": 25, "/api/v3/historicalTrades": 25, "/api/v3/ticker/price": 2}
_REST_FAULTS = ("rate_limit", "server_error", "timeout", "malformed")
_HTML_5XX = ("<html>\r\n<head><title>{s} Service Error</title></head>\r\n<body>\r\n"
             "<center><h1>{s} Service Error</h1></center>\r\n</body>\r\n</html>\r\n")


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))


def _json(obj: Any, status: int = 200) -> web.Response:
    return web.json_response(obj, status=status, dumps=_dumps)


@dataclass
class EmulatorState:
    """Everything the handlers share (one per server)."""

    market: MarketModel
    clock: EmulatorClock
    faults: FaultBoard
    weight_limit: int | None = 6000
    closing: asyncio.Event = field(default_factory=asyncio.Event)
    requests: Counter = field(default_factory=Counter)
    responses: Counter = field(default_factory=Counter)
    _weight_minute: int = -1
    _weight_used: int = 0
    extra_stats: Callable[[], dict[str, Any]] = dict  # e.g. the websocket hub's counters

    def use_weight(self, weight: int) -> int:
        minute = int(time.time() // 60)
        if minute != self._weight_minute:
            self._weight_minute, self._weight_used = minute, 0
        self._weight_used += weight
        return self._weight_used


STATE: web.AppKey[EmulatorState] = web.AppKey("tcp_lab_emulator_state", EmulatorState)


def _limit(q: Any) -> int:
    limit = wire.int_param(q, "limit")
    if limit is None:
        return 500
    if limit < 1:
        raise wire.BinanceError(-1100, "Illegal characters found in parameter 'limit'; legal "
                                       "range is '^[0-9]{1,20}$'.")
    return min(limit, 1000)


async def _fault_response(state: EmulatorState, fault_kind: str, params: dict[str, Any]
                          ) -> web.Response | None:
    if fault_kind == "rate_limit":
        body = {"code": -1003, "msg": "Too much request weight used; current limit is 6000 "
                "request weight per 1 MINUTE. Please use WebSocket Streams for live updates to "
                "avoid polling the API."}
        resp = _json(body, status=params["status"])
        resp.headers["Retry-After"] = str(int(params["retry_after"]))
        return resp
    if fault_kind == "server_error":
        if params["body"] == "json":
            return _json({"code": -1001, "msg": "Internal error; unable to process your "
                          "request. Please try again."}, status=params["status"])
        return web.Response(text=_HTML_5XX.format(s=params["status"]), status=params["status"],
                            content_type="text/html")
    if fault_kind == "timeout":
        try:
            await asyncio.wait_for(state.closing.wait(), timeout=params["seconds"])
            return web.Response(status=503, text="emulator shutting down")
        except TimeoutError:
            return None
    return None


@web.middleware
async def _binance_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    state = request.app[STATE]
    path = request.path
    if not path.startswith("/api/"):
        return await handler(request)
    state.requests[path] += 1
    used = state.use_weight(_WEIGHTS.get(path, 1))
    fault = state.faults.take(_REST_FAULTS, path=path)
    resp: web.StreamResponse | None = None
    if state.weight_limit is not None and used > state.weight_limit:
        resp = await _fault_response(state, "rate_limit", {"status": 429,
                                                           "retry_after": 60 - time.time() % 60})
    elif fault is not None and fault.kind != "malformed":
        resp = await _fault_response(state, fault.kind, fault.params)
    if resp is None:
        try:
            resp = await handler(request)
        except wire.BinanceError as e:
            resp = _json(e.body(), status=e.status)
        except web.HTTPException:
            raise
        except Exception:  # a bug in the emulator: answer like Binance, keep serving
            log.exception("emulator: %s failed", request.path_qs)
            resp = _json({"code": -1000, "msg": "An unknown error occurred while processing "
                          "the request."}, status=500)
    if fault is not None and fault.kind == "malformed" and isinstance(resp, web.Response):
        if fault.params["mode"] == "html":
            resp = web.Response(text="<html><body>upstream hiccup</body></html>", status=200,
                                content_type="text/html")
        else:
            body = resp.body if isinstance(resp.body, bytes) else b"{}"
            resp = web.Response(body=body[: max(1, len(body) // 2)], status=200,
                                content_type="application/json")
    resp.headers["X-MBX-USED-WEIGHT-1M"] = str(used)
    state.responses[resp.status] += 1
    return resp


# --------------------------------------------------------------------------- REST
async def _ping(request: web.Request) -> web.Response:
    return _json({})


async def _time(request: web.Request) -> web.Response:
    return _json({"serverTime": request.app[STATE].clock.now_ms()})


async def _exchange_info(request: web.Request) -> web.Response:
    state = request.app[STATE]
    q = request.query
    only = None
    if q.get("symbol"):
        only = [wire.symbol_param(q, state.market)]
    elif q.get("symbols"):
        try:
            ids = json.loads(q["symbols"])
            assert isinstance(ids, list)
        except (ValueError, AssertionError):
            raise wire.BinanceError(-1100, "Illegal characters found in parameter 'symbols'; "
                                           "expected a JSON array of symbols.") from None
        only = [wire.symbol_param({"symbol": str(s)}, state.market) for s in ids]
    return _json(wire.exchange_info(state.market, state.clock.now_ms(), only))


async def _klines(request: web.Request) -> web.Response:
    state, q = request.app[STATE], request.query
    spec = wire.symbol_param(q, state.market)
    interval = q.get("interval")
    if not interval:
        raise wire.BinanceError(-1102, "Mandatory parameter 'interval' was not sent, was "
                                       "empty/null, or malformed.")
    if interval not in INTERVALS:
        raise wire.BinanceError(-1120, "Invalid interval.")
    start, end = wire.int_param(q, "startTime"), wire.int_param(q, "endTime")
    limit, now = _limit(q), state.clock.now_ms()
    if start is not None and end is not None and start > end:
        raise wire.BinanceError(-1023, "Start time is greater than end time.")
    tf, off = INTERVALS[interval]
    if start is not None:
        g = state.market.genesis_ms
        first = max(start, g - (g - off) % tf)
        first += (-(first - off)) % tf
        hi = first + limit * tf
        lo, hi = start, (hi if end is None else min(hi, end + 1))
    else:
        top = min(end, now) if end is not None else now
        last_open = top - (top - off) % tf
        lo, hi = last_open - (limit - 1) * tf, last_open + 1
    k = await asyncio.to_thread(partial(state.market.klines, spec.symbol, interval, lo, hi,
                                        until_ms=now))
    return _json(wire.kline_rows(k))


async def _agg_trades(request: web.Request) -> web.Response:
    state, q = request.app[STATE], request.query
    spec = wire.symbol_param(q, state.market)
    from_id = wire.int_param(q, "fromId", minimum=0)
    start, end = wire.int_param(q, "startTime"), wire.int_param(q, "endTime")
    limit, now, m = _limit(q), state.clock.now_ms(), state.market
    if from_id is not None and (start is not None or end is not None):
        raise wire.BinanceError(-1128, "Combination of optional parameters invalid.")
    if start is not None and end is not None:
        if start > end:
            raise wire.BinanceError(-1023, "Start time is greater than end time.")
        if end - start > _HOUR:
            raise wire.BinanceError(-1127, "More than 1 hours between startTime and endTime.")
    if from_id is not None:
        call = partial(m.trades_from_id, spec.symbol, from_id, limit, until_ms=now)
    elif start is not None:
        until = min(end, now) if end is not None else now
        call = partial(_trades_from_time, m, spec.symbol, start, limit, until)
    elif end is not None:
        call = partial(_trades_before, m, spec.symbol, min(end, now), limit, end - _HOUR)
    else:
        call = partial(m.last_trades, spec.symbol, now, limit)
    return _json(wire.agg_trade_rows(await asyncio.to_thread(call)))


def _trades_from_time(m: MarketModel, symbol: str, start: int, limit: int, until: int):
    return m.trades_from_id(symbol, m.first_id_at(symbol, start), limit, until_ms=until)


def _trades_before(m: MarketModel, symbol: str, until: int, limit: int, not_before: int):
    t = m.last_trades(symbol, until, limit)
    return t.select(t.time >= not_before)


async def _recent_trades(request: web.Request) -> web.Response:
    state, q = request.app[STATE], request.query
    spec = wire.symbol_param(q, state.market)
    limit, now = _limit(q), state.clock.now_ms()
    historical = request.path.endswith("historicalTrades")
    from_id = wire.int_param(q, "fromId", minimum=0) if historical else None
    if from_id is None:
        call = partial(state.market.last_trades, spec.symbol, now, limit)
    else:
        call = partial(state.market.trades_from_id, spec.symbol, from_id, limit, until_ms=now)
    return _json(wire.trade_rows(await asyncio.to_thread(call)))


async def _ticker_price(request: web.Request) -> web.Response:
    state, q = request.app[STATE], request.query
    now = state.clock.now_ms()
    specs = ([wire.symbol_param(q, state.market)] if q.get("symbol")
             else [state.market.spec(s) for s in state.market.symbols])
    rows = [{"symbol": s.market_id,
             "price": f"{await asyncio.to_thread(state.market.last_price, s.symbol, now):.8f}"}
            for s in specs]
    return _json(rows[0] if q.get("symbol") else rows)


# --------------------------------------------------------------------------- control
def stats_snapshot(state: EmulatorState) -> dict[str, Any]:
    """Request counts, responses by status, faults applied/pending, websocket counters."""
    return {
        "now_ms": state.clock.now_ms(), "seed": state.market.seed,
        "genesis_ms": state.market.genesis_ms, "symbols": list(state.market.symbols),
        "requests": dict(state.requests), "total_requests": sum(state.requests.values()),
        "responses": {str(k): v for k, v in state.responses.items()},
        "faults_applied": dict(state.faults.applied), "faults_pending": state.faults.pending(),
        **state.extra_stats(),
    }


async def _stats(request: web.Request) -> web.Response:
    return _json(stats_snapshot(request.app[STATE]))


async def _faults(request: web.Request) -> web.Response:
    state = request.app[STATE]
    if request.method == "DELETE":
        state.faults.clear()
    elif request.method == "POST":
        try:
            spec = await request.json()
            if not isinstance(spec, dict) or "kind" not in spec:
                raise ValueError("expected a JSON object with a 'kind'")
            spec = dict(spec)
            state.faults.inject(spec.pop("kind"), spec.pop("count", 1), **spec)
        except (ValueError, TypeError, TcpLabError) as e:
            return _json({"error": str(e)}, status=400)
    return _json({"pending": state.faults.pending()})


def build_app(state: EmulatorState) -> web.Application:
    """The aiohttp application serving ``state`` (websocket routes are added by the server)."""
    app = web.Application(middlewares=[_binance_middleware])
    app[STATE] = state
    for path, handler in [("ping", _ping), ("time", _time), ("exchangeInfo", _exchange_info),
                          ("klines", _klines), ("aggTrades", _agg_trades),
                          ("trades", _recent_trades), ("historicalTrades", _recent_trades),
                          ("ticker/price", _ticker_price)]:
        app.router.add_get(f"/api/v3/{path}", handler)
    app.router.add_get("/_emulator/stats", _stats)
    app.router.add_route("*", "/_emulator/faults", _faults)
    return app
