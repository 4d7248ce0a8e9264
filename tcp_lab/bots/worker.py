"""One bot in its own OS process: ``python -m tcp_lab.bots.worker BOT_ID``.

Started by :class:`~tcp_lab.bots.runners.ProcessRunner`. It reads the bot's
definition from the ``bots`` table, opens the store and the bus from
``TCP_LAB_DATABASE_URL`` / ``TCP_LAB_REDIS_URL`` and runs the bot until
SIGTERM (exit 0). If the bot fails, the error (with the candle) is recorded
and the process exits with status 1; the manager then applies its restart
policy. If the manager dies, the worker notices that it was orphaned and
exits (status 3), so a restarted manager never finds two copies of a bot.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence

__all__ = ["main"]

log = logging.getLogger("tcp_lab.bots")
EXIT_CRASHED = 1
EXIT_ORPHANED = 3
_PARENT_POLL = 0.25  # seconds between checks that the manager is still alive


def _watch_parent(parent: int, on_orphaned: threading.Event, stop) -> None:
    while not on_orphaned.wait(_PARENT_POLL):
        if os.getppid() != parent:
            log.warning("worker %d: the manager (pid %d) is gone; stopping", os.getpid(), parent)
            on_orphaned.set()
            stop()
            return


def main(argv: Sequence[str] | None = None) -> int:
    """Run one bot until SIGTERM; the exit status tells the manager how it ended."""
    parser = argparse.ArgumentParser(prog="python -m tcp_lab.bots.worker")
    parser.add_argument("bot_id")
    parser.add_argument("--heartbeat-interval", type=float, default=5.0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format=f"%(asctime)s %(levelname)s bot[{args.bot_id}] %(name)s: "
                               "%(message)s")
    parent = os.getppid()

    from tcp_lab.bots.bot import Bot
    from tcp_lab.bots.control import stored_config
    from tcp_lab.bots.runners import record_crash
    from tcp_lab.bus import open_bus
    from tcp_lab.errors import DataError
    from tcp_lab.store import open_store

    store = open_store()
    bus = None
    orphaned = threading.Event()
    try:
        bus = open_bus()
        row = store.get_bot(args.bot_id)
        if row is None:
            raise DataError(f"no bot {args.bot_id!r} in the store")
        bot = Bot(stored_config(row), store, bus)
        signal.signal(signal.SIGTERM, lambda *_: bot.stop())
        threading.Thread(target=_watch_parent, args=(parent, orphaned, bot.stop),
                         name="tcp_lab.bots.parent-watch", daemon=True).start()
        log.info("worker %d running bot %s", os.getpid(), args.bot_id)
        bot.run(heartbeat_interval=args.heartbeat_interval)
    except Exception as e:
        log.exception("bot %s crashed", args.bot_id)
        record_crash(store, args.bot_id, f"{type(e).__name__}: {e}", bus)
        return EXIT_CRASHED
    finally:
        orphaned_now = orphaned.is_set()
        orphaned.set()  # ends the watcher
        if bus is not None:
            bus.close()
        store.close()
    return EXIT_ORPHANED if orphaned_now else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
