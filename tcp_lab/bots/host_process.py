"""A bot host process: ``python -m tcp_lab.bots.host_process --name host-1``.

Started by the manager's process runner (:mod:`tcp_lab.bots.runners`). It
opens the store and the bus from ``TCP_LAB_DATABASE_URL`` /
``TCP_LAB_REDIS_URL`` and runs a :class:`~tcp_lab.bots.host.BotHost`. The
manager talks to it over its standard streams, one JSON object per line:

- stdin, from the manager: ``{"op": "add", "bot": ID, "token": N}`` (the
  definition is read from the ``bots`` table; ``token`` is the claim the
  manager made), ``{"op": "remove", "bot": ID}``, ``{"op": "stop"}``;
- stdout, to the manager: ``{"event": "ready", "pid": PID}`` once it can take
  bots, then ``{"event": KIND, "bot": ID, "detail": TEXT}`` for each bot event
  (``running``, ``crashed``, ``stopped``, ``fenced``, ``failed`` for a bot
  that cannot be built). Logs go to stderr.

The end of stdin means the manager is gone (the kernel closes the pipe when
it dies, even by ``kill -9``): the host stops its bots and exits with status
3, so a restarted manager never finds two copies of a bot, and no thread polls
to notice. SIGTERM stops it too (status 0). The bus may be down when it
starts: the bots run from the store and subscribe when it returns.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any, TextIO

__all__ = ["main", "EXIT_ORPHANED"]

log = logging.getLogger("tcp_lab.bots")
EXIT_ORPHANED = 3


class _Events:
    """JSON lines to the manager (the process's real stdout; print() goes to stderr)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def send(self, **fields: Any) -> None:
        line = json.dumps(fields, default=str)
        with self._lock:
            try:
                self._stream.write(line + "\n")
                self._stream.flush()
            except (BrokenPipeError, ValueError):  # the manager is gone: stdin ends too
                pass


def _read_commands(host: Any, store: Any, orphaned: threading.Event) -> None:
    from tcp_lab.bots.control import stored_config
    from tcp_lab.errors import TcpLabError

    for line in sys.stdin:
        try:
            cmd = json.loads(line)
            op = cmd["op"]
        except (ValueError, KeyError, TypeError):
            log.error("host: ignoring a malformed command %r", line[:200])
            continue
        if op == "stop":
            host.stop()
            return
        if op == "remove":
            host.remove(str(cmd["bot"]))
        elif op == "add":
            bot_id = str(cmd["bot"])
            try:
                row = store.get_bot(bot_id)
                if row is None:
                    raise TcpLabError(f"no bot {bot_id!r} in the store")
                host.add(stored_config(row), cmd.get("token"))
            except Exception as e:  # a bad definition fails that bot, not the host
                log.error("host: bot %s cannot start: %s", bot_id, e)
                host.on_event("failed", bot_id, f"{type(e).__name__}: {e}")
    log.warning("host %d: the manager is gone (its pipe closed); stopping", os.getpid())
    orphaned.set()
    host.stop()


def main(argv: Sequence[str] | None = None) -> int:
    """Run a bot host until told to stop; the exit status tells the manager how it ended."""
    parser = argparse.ArgumentParser(prog="python -m tcp_lab.bots.host_process")
    parser.add_argument("--name", default="host")
    parser.add_argument("--heartbeat-interval", type=float, default=5.0)
    args = parser.parse_args(argv)
    events = _Events(os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8"))
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # stray prints must not break the protocol
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format=f"%(asctime)s %(levelname)s {args.name}[{os.getpid()}] "
                               "%(name)s: %(message)s")

    from tcp_lab.bots.host import BotHost
    from tcp_lab.bus import open_bus
    from tcp_lab.store import open_store

    store = open_store()
    bus = open_bus(check=False)  # Redis may be down now: the host copes
    orphaned = threading.Event()
    host = BotHost(store, bus, heartbeat_interval=args.heartbeat_interval, name=args.name,
                   on_event=lambda kind, bot, detail: events.send(event=kind, bot=bot,
                                                                  detail=detail))
    signal.signal(signal.SIGTERM, lambda *_: host.stop())
    threading.Thread(target=_read_commands, args=(host, store, orphaned),
                     name="tcp_lab.host.commands", daemon=True).start()
    # The imports (pandas, numba, SQLAlchemy, …) leave ~10^5 long-lived objects that every
    # full collection would walk again, a pause of milliseconds in the middle of a candle:
    # keep them out of the collector (the documented use of gc.freeze)
    gc.collect()
    gc.freeze()
    events.send(event="ready", pid=os.getpid())
    try:
        host.run()
    finally:
        bus.close()
        store.close()
    return EXIT_ORPHANED if orphaned.is_set() else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
