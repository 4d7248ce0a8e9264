"""The emulator as a handle: an aiohttp server on 127.0.0.1 in a background thread.

The server runs its own event loop in its own thread, so it can be started from a
script, a test, or a Jupyter kernel (whose loop is already running) alike; the caller's
thread never runs ``asyncio.run``.

>>> from tcp_lab.data.emulator import EmulatorServer
>>> with EmulatorServer(symbols=("BTC/USDT",), seed=1) as emu:   # doctest: +SKIP
...     ex = make_exchange("binance", exchange_url=emu.base_url)
...     ex.fetch_ohlcv("BTC/USDT", "1m", limit=5)
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Callable, Iterable
from typing import Any

from aiohttp import web

from tcp_lab.data.emulator.app import EmulatorState, build_app, stats_snapshot
from tcp_lab.data.emulator.clock import EmulatorClock
from tcp_lab.data.emulator.faults import FaultBoard
from tcp_lab.data.emulator.market import DEFAULT_GENESIS, MarketModel
from tcp_lab.data.emulator.stream import WsHub
from tcp_lab.errors import ServiceError

__all__ = ["EmulatorServer"]


class EmulatorServer:
    """An exchange emulator speaking Binance spot's REST and websocket wire format.

    Parameters
    ----------
    symbols
        ccxt unified spot symbols to list.
    seed
        Seed of the market model: same seed, same trades.
    host, port
        Where to listen; ``port=0`` picks a free port (see :attr:`port`).
    genesis
        First instant of the market (no trades before it).
    start_at
        Emulated time when the server is created (default: the wall clock).
    speed
        Emulated seconds per wall second (``60`` for a fast rehearsal).
    trade_rate
        Multiplier of every symbol's trade count.
    weight_limit
        Request weight per minute before real (unrequested) 429s; ``None`` disables.
    ws_interval
        Seconds between websocket publications.
    warm_days
        Precompute, in a background thread, the day summaries of this many recent days
        per symbol, so a first ``fetch_ohlcv(symbol, "1d")`` answers quickly (generating
        a day costs ~10 ms per symbol). 0 (default): compute on demand.

    Attributes
    ----------
    market : MarketModel
        The model the server serves (query it directly to know the truth).
    clock : EmulatorClock
        The emulated "now".

    Examples
    --------
    >>> emu = EmulatorServer(seed=3).start()   # doctest: +SKIP
    >>> emu.inject("rate_limit", count=2, retry_after=1)   # doctest: +SKIP
    >>> emu.stop()   # doctest: +SKIP
    """

    def __init__(self, symbols: Iterable[str] = ("BTC/USDT", "ETH/USDT"), seed: int = 0,
                 host: str = "127.0.0.1", port: int = 0, genesis: object = DEFAULT_GENESIS, *,
                 start_at: object = None, speed: float = 1.0, trade_rate: float = 1.0,
                 weight_limit: int | None = 6000, ws_interval: float = 0.1,
                 warm_days: int = 0) -> None:
        self.market = MarketModel(tuple(symbols), seed, genesis, trade_rate=trade_rate)
        self.clock = EmulatorClock(start_at, speed)
        self.faults = FaultBoard()
        self.host = host
        self._requested_port = int(port)
        self._state = EmulatorState(self.market, self.clock, self.faults, weight_limit)
        self._hub = WsHub(self.market, self.clock, self.faults, interval=ws_interval)
        self._state.extra_stats = self._hub.stats
        self._port: int | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._warm_days = int(warm_days)
        self._warm_stop = threading.Event()
        self._warm_thread: threading.Thread | None = None

    # ------------------------------------------------------------------ addresses
    @property
    def running(self) -> bool:
        """Whether the server thread is serving."""
        return self._thread is not None and self._thread.is_alive() and self._port is not None

    @property
    def port(self) -> int:
        """The TCP port actually bound."""
        if self._port is None:
            raise ServiceError("the emulator is not running", hint="call start() or use `with`")
        return self._port

    @property
    def base_url(self) -> str:
        """REST base, e.g. ``http://127.0.0.1:54321`` (give it to ``make_exchange``)."""
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        """Websocket base of the raw streams, e.g. ``ws://127.0.0.1:54321/ws``."""
        return f"ws://{self.host}:{self.port}/ws"

    def now_ms(self) -> int:
        """The emulated time, epoch ms."""
        return self.clock.now_ms()

    # ------------------------------------------------------------------ control
    def inject(self, kind: str, count: int = 1, **params: Any) -> None:
        """Make the next ``count`` matching requests fail in the way ``kind`` says.

        Kinds: ``rate_limit`` (``retry_after``, ``status``), ``server_error``
        (``status``, ``body``), ``timeout`` (``seconds``), ``malformed`` (``mode``), all
        with an optional ``path`` prefix; ``drop_ws`` (``code``); ``trade_gap`` (``size``,
        ``symbol``). See :mod:`tcp_lab.data.emulator.faults`.

        Raises
        ------
        ConfigError
            Unknown kind or parameter.
        """
        self.faults.inject(kind, count, **params)

    def clear_faults(self) -> None:
        """Forget every pending fault."""
        self.faults.clear()

    def stats(self) -> dict[str, Any]:
        """Request counts by path, responses by status, faults, websocket counters."""
        return stats_snapshot(self._state)

    # ------------------------------------------------------------------ lifecycle
    def start(self, timeout: float = 10.0) -> EmulatorServer:
        """Start serving in a background thread; returns ``self`` once the port is bound.

        Raises
        ------
        ServiceError
            If the server could not bind or start within ``timeout`` seconds.
        """
        if self.running:
            return self
        self._ready.clear()
        self._error = None
        self._thread = threading.Thread(target=self._thread_main, name="tcp-lab-emulator",
                                        daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout) or self._error is not None:
            err = self._error
            self.stop()
            raise ServiceError(
                f"exchange emulator could not start on {self.host}:{self._requested_port}: "
                f"{err or 'timed out'}",
                hint="is the port free? port=0 picks any free port",
            ) from err
        if self._warm_days > 0:
            self._warm_stop.clear()
            self._warm_thread = threading.Thread(target=self._warm, name="tcp-lab-emulator-warm",
                                                 daemon=True)
            self._warm_thread.start()
        return self

    def _warm(self) -> None:
        now = self.clock.now_ms()
        for symbol in self.market.symbols:
            self.market.warm_daily(symbol, now - self._warm_days * 86_400_000, now,
                                   should_stop=self._warm_stop.is_set)

    def stop(self, timeout: float = 10.0) -> None:
        """Close websockets, stop serving and join the thread (idempotent)."""
        self._warm_stop.set()
        if self._warm_thread is not None:
            self._warm_thread.join(timeout)
            self._warm_thread = None
        loop, stop, thread = self._loop, self._stop, self._thread
        if loop is not None and stop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(stop.set)
            except RuntimeError:  # loop already closed
                pass
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        self._thread, self._port = None, None

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def run_forever(self, on_ready: Callable[[], None] | None = None) -> None:
        """Serve until Ctrl-C or SIGTERM, then shut down cleanly (for the CLI).

        SIGTERM is handled before the server starts and ``on_ready`` (e.g. printing the
        address) runs, so a client that stops it as soon as it sees the address never
        finds it without a handler.
        """
        done = threading.Event()
        previous = None
        if threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGTERM, lambda *_: done.set())
        try:
            self.start()
            if on_ready is not None:
                on_ready()
            while not done.wait(0.25):
                if self._thread is None or not self._thread.is_alive():
                    break
        except KeyboardInterrupt:
            pass
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
            self.stop()

    def __repr__(self) -> str:
        where = self.base_url if self.running else "stopped"
        return f"EmulatorServer({list(self.market.symbols)}, seed={self.market.seed}, {where})"

    # ------------------------------------------------------------------ the thread
    def _thread_main(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        except BaseException as e:  # reported to start() through _error
            self._error = e
            self._ready.set()
        finally:
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.run_until_complete(loop.shutdown_default_executor())
            finally:
                loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        self._state.closing = asyncio.Event()
        app = build_app(self._state)
        for path in ("/ws", "/ws/{tail:.*}", "/stream"):
            app.router.add_get(path, self._hub.handle)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self._requested_port)
            await site.start()
            self._port = int(runner.addresses[0][1])
            pump = asyncio.create_task(self._hub.run(), name="tcp-lab-emulator-pump")
            self._ready.set()
            try:
                await self._stop.wait()
            finally:
                self._state.closing.set()
                pump.cancel()
                await self._hub.close_all()
        finally:
            await runner.cleanup()
