"""``tcp-lab bots list|status|start|stop|logs|serve``: paper-trading bots.

On PostgreSQL + Redis, ``tcp-lab bots serve`` is the manager (a service) and
the other commands talk to it through the ``bots`` table and the bus. On the
embedded default (a DuckDB file and the in-process bus) only one process can
use the store, so ``start`` runs the manager in the foreground until Ctrl-C.

``start`` reports ``running`` only once the bot has written a heartbeat after
the one of its start (so it survived its first candles), and a crash meanwhile
with the bot's error and exit status 2; a series without stored candles gets a
one-line warning.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any


def _open() -> tuple[Any, Any, Any]:
    from tcp_lab.bus import open_bus
    from tcp_lab.settings import load_settings
    from tcp_lab.store import open_store

    settings = load_settings()
    store = open_store(settings.database_url)
    try:
        bus = open_bus(settings.redis_url)
    except BaseException:
        store.close()
        raise
    return settings, store, bus


def _age(ts: Any) -> str:
    import pandas as pd

    if ts is None or pd.isna(ts):
        return "-"
    seconds = (pd.Timestamp.now("UTC") - ts).total_seconds()
    return f"{seconds:.0f}s ago" if seconds < 120 else f"{seconds / 60:.0f}m ago"


def _list(args: argparse.Namespace) -> int:
    from tcp_lab.bots.config import market_label
    from tcp_lab.bots.control import bot_rows

    _, store, bus = _open()
    with store, bus:
        rows = bot_rows(store)  # None, not NaN, where one bot has a value and another none
        if not rows:
            print("no bots; start one with `tcp-lab bots start NAME` (config/bots/NAME.json)")
            return 0
        print(f"{'bot':<20} {'status':<9} {'strategy':<20} {'market':<26} {'last candle':<20} "
              f"{'heartbeat':<10} {'restarts':>8}  last error")
        for row in rows:
            cfg = (row["state"] or {}).get("config") or {}
            market = market_label(cfg)
            last = "-" if row["last_candle_ts"] is None \
                else row["last_candle_ts"].strftime("%Y-%m-%d %H:%M")
            err = (row["last_error"] or "").partition("\n")[0][:60]
            print(f"{row['id']:<20} {row['status']:<9} {row['strategy']:<20} {market:<26} "
                  f"{last:<20} {_age(row['heartbeat']):<10} {row['restart_count']:>8}  {err}")
    return 0


def _status(args: argparse.Namespace) -> int:
    from tcp_lab.bots.config import market_label
    from tcp_lab.bots.portfolio_broker import stored_positions
    from tcp_lab.errors import DataError

    _, store, bus = _open()
    with store, bus:
        row = store.get_bot(args.name)
        if row is None:
            raise DataError(f"no bot {args.name!r} in the store", hint="see `tcp-lab bots list`")
        state = row["state"] or {}
        cfg = state.get("config") or {}
        print(f"bot {row['id']}: {row['status']}")
        print(f"  strategy     {cfg.get('strategy')} {cfg.get('parameters')}")
        print(f"  market       {market_label(cfg)}")
        print(f"  last candle  {row['last_candle_ts']}")
        print(f"  heartbeat    {row['heartbeat']} ({_age(row['heartbeat'])})")
        print(f"  restarts     {row['restart_count']} (recent: "
              f"{', '.join(str(t) for t in row['restart_times']) or 'none'})")
        if row["last_error"]:
            print(f"  last error   {row['last_error']}")
        cash, positions = stored_positions(state)
        if cash is not None:
            print(f"  cash         {cash:.8g}")
            for symbol, position in positions.items():  # a portfolio bot: one per symbol
                where = "" if len(positions) == 1 else f"{symbol} "
                print(f"  position     {where}{position:.8g}")
        perf = store.load_performance(args.name, start=row["last_candle_ts"])
        if not perf.empty:
            print(f"  equity       {perf['equity'].iat[-1]:.8g} at {perf.index[-1]}")
        trades = store.load_bot_trades(args.name)
        print(f"  fills        {len(trades)}")
    return 0


def _embedded(settings: Any) -> bool:
    return settings.is_embedded


def _warn(store: Any, config: Any) -> None:
    from tcp_lab.bots.control import start_warnings

    for line in start_warnings(store, config):
        print(f"tcp-lab: warning: {line}", file=sys.stderr)


def _report_start(outcome: Any) -> int:
    """Print how a start went; its exit status: 0 running, 2 crashed, 1 otherwise."""
    if outcome.ok:
        print(outcome.message)
        return 0
    print(outcome.message, file=sys.stderr)
    return 2 if outcome.state in ("crashed", "failed") else 1


def _start(args: argparse.Namespace) -> int:
    from tcp_lab.bots.control import request_start, resolve_config, wait_for_start

    settings, store, bus = _open()
    if _embedded(settings):
        return _foreground(store, bus, args)
    with store, bus:
        name = resolve_config(args.name, args.config_dir)[0].name
        before = store.get_bot(name)
        config = request_start(store, bus, args.name, args.config_dir)
        print(f"requested start of bot {config.name} ({config.strategy} on {config.market})")
        _warn(store, config)
        if args.no_wait:
            return 0
        outcome = wait_for_start(store, config.name, before, timeout=args.timeout,
                                 heartbeat_wait=args.heartbeat_wait,
                                 hint="is `tcp-lab bots serve` running?")
        code = _report_start(outcome)
        if outcome.state == "crashed":
            print(f"  see `tcp-lab bots logs {config.name}`; the manager restarts it within "
                  f"its restart budget unless you run `tcp-lab bots stop {config.name}`",
                  file=sys.stderr)
        elif outcome.state == "failed":
            print(f"  see `tcp-lab bots logs {config.name}`; fix it, then start it again",
                  file=sys.stderr)
        return code


def _foreground(store: Any, bus: Any, args: argparse.Namespace) -> int:
    from tcp_lab.bots.control import resolve_config, wait_for_start
    from tcp_lab.bots.manager import BotManager

    manager = BotManager(store, bus, runner="thread", config_dir=args.config_dir)
    try:
        manager.acquire_lease()  # a second manager fails here, before it prints anything
        config = resolve_config(args.name, args.config_dir)[0]
        before = store.get_bot(config.name)
        print("embedded default (DuckDB / memory bus): running the bot manager in this "
              "process; Ctrl-C stops it. To run bots in the background, `tcp-lab services up` "
              "(PostgreSQL + Redis), export its URLs, then `tcp-lab bots serve`.",
              file=sys.stderr)
        _warn(store, config)
        manager.start()
        bot_id = manager.start_bot(args.name)
        if args.no_wait:
            print(f"bot {bot_id}: starting")
        else:
            outcome = wait_for_start(store, bot_id, before, timeout=args.timeout,
                                     heartbeat_wait=args.heartbeat_wait)
            code = _report_start(outcome)
            if outcome.state in ("crashed", "failed"):
                # a bot that cannot even start is not left to the restart policy
                manager.stop_bot(bot_id, reason=outcome.row["last_error"])
                return code
        manager.serve()  # an unconfirmed start stays under the manager's hang checks
    finally:
        manager.stop()
        bus.close()
        store.close()
    return 0


def _wait_for(store: Any, bot_id: str, statuses: tuple[str, ...], timeout: float,
              hint: str) -> int:
    deadline = time.monotonic() + timeout
    row = store.get_bot(bot_id)
    while time.monotonic() < deadline:
        row = store.get_bot(bot_id)
        if row["status"] in statuses:
            print(f"bot {bot_id}: {row['status']}")
            return 0
        if row["status"] == "failed":
            print(f"bot {bot_id}: failed: {row['last_error']}", file=sys.stderr)
            return 2
        time.sleep(0.2)
    print(f"bot {bot_id}: still {row['status']} after {timeout:g} s; {hint}", file=sys.stderr)
    return 1


def _stop(args: argparse.Namespace) -> int:
    from tcp_lab.bots.control import request_stop

    _, store, bus = _open()
    with store, bus:
        row = request_stop(store, bus, args.name)
        if row["status"] == "stopped" or args.no_wait:
            print(f"bot {args.name}: {row['status']}")
            return 0
        return _wait_for(store, args.name, ("stopped",), args.timeout,
                         hint="is `tcp-lab bots serve` running?")


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _bot_log_lines(folder: Path, bot: str) -> list[str]:
    """The lines of the host logs that name ``bot`` (hosts log many bots), oldest first."""
    import re

    word = re.compile(rf"(?<![\w.-]){re.escape(bot)}(?![\w.-])")
    found: list[str] = []
    for path in folder.glob("host-*.log"):
        text = path.read_text(encoding="utf-8", errors="replace")
        found.extend(line for line in text.splitlines() if word.search(line))
    return sorted(found)  # each line starts with its time


def _logs(args: argparse.Namespace) -> int:
    import pandas as pd

    from tcp_lab.errors import DataError

    settings, store, bus = _open()
    with store, bus:
        row = store.get_bot(args.name)
        if row is None:
            raise DataError(f"no bot {args.name!r} in the store", hint="see `tcp-lab bots list`")
        folder = settings.home / "logs" / "bots"
        lines = _bot_log_lines(folder, args.name)
        if lines:
            print(f"== {folder}/host-*.log: the last {min(args.n, len(lines))} lines about "
                  f"{args.name}")
            print("\n".join(lines[-args.n:]))
        if row["last_error"]:
            print(f"== last error: {row['last_error']}")
        signals = store.load_signals(args.name).tail(args.n)
        trades = store.load_bot_trades(args.name)
        # a portfolio bot has one signal per symbol and close time: name the symbol
        portfolio = bool(((row["state"] or {}).get("config") or {}).get("symbols"))
        print(f"== last {len(signals)} signals")
        for ts, s in signals.iterrows():
            fill = trades.loc[[ts]] if ts in trades.index else pd.DataFrame()
            if portfolio and len(fill):
                fill = fill[fill["symbol"] == s["symbol"]]
            extra = "".join(f"  {f.side} {f.amount:.8g} @ {f.price:.8g} fee {f.fee:.4g}"
                            for f in fill.itertuples())
            symbol = f" {s['symbol']}" if portfolio else ""
            print(f"{ts}{symbol}  {s['action']:<4} {s['price']:.8g}{extra}")
        if args.follow:
            return _follow(bus, args.name)
    return 0


def _follow(bus: Any, bot_id: str) -> int:
    from tcp_lab.bus import signals_channel, status_channel

    print(f"== following {signals_channel(bot_id)} and {status_channel(bot_id)} (Ctrl-C stops)")
    with bus.subscribe(signals_channel(bot_id), status_channel(bot_id)) as sub:
        while True:
            msg = sub.get(timeout=1.0)
            if msg is None:
                continue
            if msg.type == "signal":
                print(f"{msg.ts}  {msg.action:<4} {msg.price:.8g} {msg.indicators}")
            else:
                print(f"{msg.ts}  status {msg.status} {msg.detail}")


def _serve(args: argparse.Namespace) -> int:
    import signal

    from tcp_lab.bots.manager import BotManager
    from tcp_lab.bots.policy import RestartPolicy

    policy = RestartPolicy(heartbeat_interval=args.heartbeat_interval,
                           hang_timeout=args.hang_timeout, max_lag=args.max_lag)
    manager = BotManager(runner=args.runner, hosts=args.hosts, policy=policy,
                         poll_interval=args.poll_interval, config_dir=args.config_dir)
    try:
        manager.acquire_lease()  # a second manager fails here, before it prints its banner
    except BaseException:
        manager.stop()
        raise
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # SIGTERM stops like Ctrl-C
    hosts = getattr(manager.runner, "hosts", 1)
    where = "host threads" if manager.runner.kind == "thread" else "host processes"
    print(f"bots manager: bots in up to {hosts} shared {where} on {manager.store.url} and "
          f"{manager.bus.url} (Ctrl-C stops)", file=sys.stderr)
    manager.serve()
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bots", help="paper-trading bots: list, start, stop, serve")
    cmds = p.add_subparsers(dest="bots_command", metavar="ACTION")
    cmds.required = True

    ls = cmds.add_parser("list", help="every bot with its status")
    ls.set_defaults(handler=_list)

    st = cmds.add_parser("status", help="one bot in detail")
    st.add_argument("name")
    st.set_defaults(handler=_status)

    start = cmds.add_parser("start", help="start a bot defined in config/bots/NAME.json",
                            description="Store the bot's definition and ask the manager to "
                            "start it (embedded default: run it here until Ctrl-C).")
    start.add_argument("name", help="bot name (config/bots/NAME.json) or a .json path")
    start.add_argument("--config-dir", default=None, help="where NAME.json lives "
                       "(default config/bots)")
    start.add_argument("--no-wait", action="store_true", help="do not wait until it runs")
    start.add_argument("--timeout", type=float, default=30.0,
                       help="seconds to wait until it reports running (default 30)")
    start.add_argument("--heartbeat-wait", type=float, default=15.0, metavar="SECONDS",
                       help="then wait this long for a heartbeat showing that it survived its "
                            "start; a crash meanwhile exits with status 2 (default 15, 0: "
                            "do not wait)")
    start.set_defaults(handler=_start)

    stop = cmds.add_parser("stop", help="stop a bot")
    stop.add_argument("name")
    stop.add_argument("--no-wait", action="store_true", help="do not wait until it stops")
    stop.add_argument("--timeout", type=float, default=30.0, help="seconds to wait")
    stop.set_defaults(handler=_stop)

    lg = cmds.add_parser("logs", help="a bot's log, last error, recent signals and fills")
    lg.add_argument("name")
    lg.add_argument("-n", type=int, default=20, help="lines and signals to show (default 20)")
    lg.add_argument("--follow", "-f", action="store_true",
                    help="then print its signals and status messages as they come")
    lg.set_defaults(handler=_logs)

    sv = cmds.add_parser("serve", help="run the bot manager (a service; Ctrl-C stops it)")
    sv.add_argument("--runner", choices=("auto", "thread", "process"), default="auto",
                    help="bot hosts as threads of this process or as processes (auto: "
                         "processes on PostgreSQL+Redis)")
    sv.add_argument("--hosts", type=_positive_int, default=None, metavar="N",
                    help="shared bot hosts at most; bots of a symbol share one (default: the "
                         "core count for processes, 1 thread)")
    sv.add_argument("--config-dir", default=None, help="where bot configs live")
    sv.add_argument("--poll-interval", type=float, default=0.5, help="seconds between checks")
    sv.add_argument("--heartbeat-interval", type=float, default=5.0,
                    help="seconds between bot heartbeats")
    sv.add_argument("--hang-timeout", type=float, default=30.0,
                    help="seconds without a heartbeat before a bot counts as hung")
    sv.add_argument("--max-lag", type=int, default=3,
                    help="candles behind the newest before a bot that makes no progress is stuck")
    sv.set_defaults(handler=_serve)
