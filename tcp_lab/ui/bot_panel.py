"""The bot panel: every bot with its status, heartbeat, position, equity and P&L; start/stop.

A thin view over the ``bots`` table and the bus:

- the rows come from the store (:meth:`~tcp_lab.store.Store.list_bots` and each
  bot's latest performance snapshot), read once at the start and again only
  for a bot the bus says changed;
- ``status:*`` and ``signals:*`` messages update the affected row in place
  (status, heartbeat, last signal) at once; the store is re-read for that bot
  (position, equity) at most every ``min_reload`` seconds, however many
  messages arrive — no polling loop on the database;
- the start and stop buttons call the in-process
  :class:`~tcp_lab.bots.BotManager` when one is given (the embedded default),
  otherwise they write the request the way ``tcp-lab bots start/stop`` does
  (:func:`tcp_lab.bots.control.request_start` / :func:`~tcp_lab.bots.control.request_stop`)
  for a manager running as a service (``tcp-lab bots serve`` on PostgreSQL + Redis).

Errors (an unknown bot, an unreachable store) are shown in the panel, never
as a traceback.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets
import pandas as pd

from tcp_lab.ui._bot_rows import COLUMNS, bot_row, bots_table_html
from tcp_lab.ui._html import error_html, note_html
from tcp_lab.ui._layout import full_width

if TYPE_CHECKING:  # pragma: no cover
    from tcp_lab.bots import BotManager
    from tcp_lab.bus import Bus, Subscription
    from tcp_lab.store import Store

__all__ = ["BotPanel", "COLUMNS"]

class BotPanel(widgets.VBox):
    """Bots with status, heartbeat age, position, equity and P&L; start and stop them.

    Parameters
    ----------
    manager
        An in-process :class:`~tcp_lab.bots.BotManager` (the embedded default):
        the buttons call it and the panel uses its store and bus. ``None``:
        the buttons write requests to the ``bots`` table for a manager running
        elsewhere (``tcp-lab bots serve``).
    store, bus
        Without a manager: open objects (left open) or URLs (default: the
        ``database_url`` and ``redis_url`` settings; opened here and closed by
        :meth:`close`).
    config_dir
        Where bot configs (``<name>.json``) are listed from (default: the
        manager's, else ``config/bots``).
    live
        Follow ``status:*`` and ``signals:*`` on the bus.
    min_reload
        Seconds between two store reads for the same burst of messages.
    age_refresh
        Seconds between redraws that keep the heartbeat ages current (no
        database access); ``None``: redraw only on messages.

    Attributes
    ----------
    bot_picker
        The bot the buttons act on: stored bots and configs in ``config_dir``.
    start_button, stop_button, refresh_button
        Start or stop the selected bot; re-read every row from the store.
    table, status, error
        HTML widgets: the bots; what was done last; the last error (empty when none).
        Each action clears the previous outcome, so a note never stands above a newer error.
    message
        The last action's outcome as plain text (what ``status`` or ``error`` shows), to
        ``print`` in a notebook.
    rows
        Bot id -> the row shown (see :data:`COLUMNS`; times as timestamps).
    n_messages
        Bus messages received so far.

    Examples
    --------
    >>> from tcp_lab.bots import BotManager        # doctest: +SKIP
    >>> manager = BotManager().start()             # doctest: +SKIP
    >>> panel = BotPanel(manager)                  # doctest: +SKIP
    >>> panel.bot_picker.value = "sma-btc"         # doctest: +SKIP
    >>> panel.start_button.click()                 # doctest: +SKIP
    >>> panel.close(); manager.stop()              # doctest: +SKIP
    """

    def __init__(
        self,
        manager: BotManager | None = None,
        *,
        store: Store | str | None = None,
        bus: Bus | str | None = None,
        config_dir: str | Path | None = None,
        live: bool = True,
        min_reload: float = 0.5,
        age_refresh: float | None = 5.0,
    ) -> None:
        self.manager = manager
        self._owned: list[Any] = []
        self._subscription: Subscription | None = None
        self._lock = threading.RLock()
        self._dirty: set[str] = set()
        self._kick = threading.Event()
        self._closed = threading.Event()
        self._worker: threading.Thread | None = None
        self.min_reload = float(min_reload)
        self.age_refresh = age_refresh
        self.rows: dict[str, dict[str, Any]] = {}
        self.n_messages = 0
        self.message = ""
        self.store: Store | None = None
        self.bus: Bus | None = None
        if config_dir is None and manager is not None:
            config_dir = manager.config_dir
        self.config_dir = Path(config_dir) if config_dir is not None else None

        self.bot_picker = widgets.Combobox(description="bot", placeholder="bot or config name",
                                           ensure_option=False)
        self.start_button = widgets.Button(description="Start", icon="play",
                                           button_style="success")
        self.stop_button = widgets.Button(description="Stop", icon="stop", button_style="danger")
        self.refresh_button = widgets.Button(description="Refresh", icon="refresh")
        self.table = widgets.HTML()
        self.status = widgets.HTML()
        self.error = widgets.HTML()
        super().__init__(children=[
            widgets.HBox([self.bot_picker, self.start_button, self.stop_button,
                          self.refresh_button]),
            self.status, self.error, self.table,
        ], layout=full_width())
        self.start_button.on_click(lambda _: self.start())
        self.stop_button.on_click(lambda _: self.stop())
        self.refresh_button.on_click(lambda _: self.refresh())
        try:
            self._connect(store, bus)
        except Exception as e:  # noqa: BLE001 - shown in the panel
            self.error.value = error_html(e)
            self._render()
            return
        self.refresh()
        if live:
            self.start_live()

    # -- wiring ----------------------------------------------------------------------
    def _connect(self, store: Store | str | None, bus: Bus | str | None) -> None:
        if self.manager is not None:
            self.store, self.bus = self.manager.store, self.manager.bus
            return
        from tcp_lab.bus import open_bus
        from tcp_lab.store import open_store

        if store is None or isinstance(store, str):
            store = open_store(store)
            self._owned.append(store)
        self.store = store
        if bus is None or isinstance(bus, str):
            bus = open_bus(bus)
            self._owned.append(bus)
        self.bus = bus

    def start_live(self) -> None:
        """Follow ``status:*`` and ``signals:*`` (see :meth:`on_message`)."""
        from tcp_lab.bus import signals_pattern, status_pattern

        if self._subscription is not None or self.bus is None:
            return
        try:
            self._subscription = self.bus.subscribe(
                patterns=(status_pattern(), signals_pattern()), handler=self.on_message,
                on_reconnect=self._reload_all_later)
        except Exception as e:  # noqa: BLE001 - shown in the panel
            self.error.value = error_html(e)
            return
        self._closed.clear()
        self._worker = threading.Thread(target=self._work, name="tcp_lab.ui.bot_panel",
                                        daemon=True)
        self._worker.start()

    def stop_live(self) -> None:
        """Stop following the bus and the redraw thread."""
        sub, self._subscription = self._subscription, None
        if sub is not None:
            sub.close()
        self._closed.set()
        self._kick.set()
        worker, self._worker = self._worker, None
        if worker is not None and worker is not threading.current_thread():
            worker.join(5.0)

    def close(self) -> None:
        """Stop following the bus, close what the panel opened, and close the widgets.

        The manager (if any) is left running: stop it yourself.
        """
        self.stop_live()
        for thing in reversed(getattr(self, "_owned", [])):
            thing.close()
        self._owned = []
        super().close()

    # -- rows --------------------------------------------------------------------------
    def refresh(self) -> None:
        """Re-read every bot from the store and redraw."""
        if self.store is None:
            return
        try:
            from tcp_lab.bots.control import bot_rows

            bots = bot_rows(self.store)
            rows = {b["id"]: bot_row(b, self.store, self.rows.get(b["id"])) for b in bots}
        except Exception as e:  # noqa: BLE001 - shown in the panel
            self.error.value = error_html(e)
            return
        with self._lock:
            self.rows = rows
        self._update_options()
        self._render()

    def reload_bot(self, bot_id: str) -> None:
        """Re-read one bot from the store (dropped from the table if it is gone)."""
        if self.store is None:
            return
        bot = self.store.get_bot(bot_id)
        # the store is read outside the lock, so messages keep flowing meanwhile
        row = None if bot is None else bot_row(bot, self.store, self.rows.get(bot_id))
        with self._lock:
            if row is None:
                self.rows.pop(bot_id, None)
            else:
                self.rows[bot_id] = row
        self._update_options()

    def frame(self) -> pd.DataFrame:
        """The rows as a DataFrame indexed by bot id (columns :data:`COLUMNS`)."""
        with self._lock:
            rows = {k: dict(v) for k, v in self.rows.items()}
        df = pd.DataFrame.from_dict(rows, orient="index", columns=list(COLUMNS))
        df.index.name = "bot"
        return df

    def _configs(self) -> list[str]:
        folder = self.config_dir
        if folder is None:
            from tcp_lab.bots.config import default_config_dir

            folder = default_config_dir()
        return sorted(p.stem for p in folder.glob("*.json")) if folder.is_dir() else []

    def _update_options(self) -> None:
        with self._lock:
            names = sorted(set(self.rows) | set(self._configs()))
        if tuple(names) != tuple(self.bot_picker.options):
            self.bot_picker.options = names
        if not self.bot_picker.value and names:
            self.bot_picker.value = next((n for n in names if n in self.rows), names[0])

    # -- live updates ------------------------------------------------------------------
    def on_message(self, message: Any) -> bool:
        """Update the row of the bot a status or signal message is about.

        The message's fields show at once; the bot's position and equity are
        re-read from the store shortly after (once per burst). The bus
        subscription calls this in its thread.

        Returns
        -------
        bool
            Whether the message was about a bot (status or signal).
        """
        kind = getattr(message, "type", None)
        if kind not in ("status", "signal"):
            return False
        bot_id = message.bot_id
        with self._lock:
            self.n_messages += 1
            row = self.rows.setdefault(bot_id, {c: None for c in COLUMNS})
            if kind == "status":
                row["status"] = message.status
                if message.heartbeat is not None:
                    row["heartbeat"] = message.heartbeat
                if message.last_candle_ts is not None:
                    row["last_candle"] = message.last_candle_ts
                if message.status in ("crashed", "failed") and message.detail:
                    row["last_error"] = message.detail
            else:
                symbol = f"{message.symbol} " if message.symbol else ""  # a portfolio bot's
                row["last_signal"] = f"{symbol}{message.action} @ {message.price:.6g}"
                row["last_candle"] = message.ts
            self._dirty.add(bot_id)
        self._render()
        self._kick.set()
        return True

    def _reload_all_later(self) -> None:
        with self._lock:
            self._dirty.update(self.rows)
        self._kick.set()

    def _work(self) -> None:
        """Re-read dirty bots (coalescing bursts) and keep the heartbeat ages current."""
        while not self._closed.is_set():
            kicked = self._kick.wait(self.age_refresh)
            if self._closed.is_set():
                break
            self._kick.clear()
            with self._lock:
                dirty, self._dirty = self._dirty, set()
            try:
                for bot_id in sorted(dirty):
                    self.reload_bot(bot_id)
            except Exception as e:  # noqa: BLE001 - shown; the next message retries
                self.error.value = error_html(e)
            self._render()
            if kicked:
                self._closed.wait(self.min_reload)  # at most one store read per burst

    # -- actions -----------------------------------------------------------------------
    def _selected(self, bot: str | None) -> str:
        from tcp_lab.errors import ConfigError

        if self.store is None:
            from tcp_lab.errors import ServiceError

            raise ServiceError("the panel has no store to act on (it failed to open)",
                               hint="fix the database URL and create the panel again")
        name = (bot if bot is not None else self.bot_picker.value or "").strip()
        if not name:
            raise ConfigError("no bot selected", hint="type or pick a bot name, e.g. 'sma-btc'")
        return name

    def _config_for(self, name: str) -> Any:
        """What to start: the config file, else the definition stored with the bot."""
        from tcp_lab.bots.config import find_bot_config
        from tcp_lab.bots.control import stored_config
        from tcp_lab.errors import ConfigError

        try:
            return find_bot_config(name, self.config_dir)
        except ConfigError:
            row = self.store.get_bot(name) if self.store is not None else None
            if row is None or not (row.get("state") or {}).get("config"):
                raise
            return stored_config(row)

    def _begin(self) -> None:
        """A new action: the outcome of the previous one (note or error) goes away."""
        self.message = ""
        self.status.value = ""
        self.error.value = ""

    def start(self, bot: str | None = None) -> bool:
        """Start ``bot`` (default: the selected one): a config name, a path, or a stored bot.

        Returns
        -------
        bool
            Whether it was started (or requested); the error is in :attr:`error`.
        """
        self._begin()
        try:
            name = self._selected(bot)
            config = self._config_for(name)
            if self.manager is not None:
                bot_id = self.manager.start_bot(config)
                done = f"started bot {bot_id}"
            else:
                from tcp_lab.bots.control import request_start

                bot_id = request_start(self.store, self.bus, config, self.config_dir).name
                done = (f"requested the start of bot {bot_id}; the manager (`tcp-lab bots "
                        "serve`) starts it")
                if self.store.backend == "duckdb" or self.bus.url.startswith("memory"):
                    done += (" — on the embedded default no other process can: run the "
                             "manager here, BotPanel(BotManager().start())")
            self.reload_bot(bot_id)
        except Exception as e:  # noqa: BLE001 - shown in the panel
            self.message = str(e)
            self.error.value = error_html(e)
            return False
        self.message = done
        self.status.value = note_html(done)
        self._render()
        return True

    def stop(self, bot: str | None = None) -> bool:
        """Stop ``bot`` (default: the selected one).

        Returns
        -------
        bool
            Whether it was stopped (or requested); the error is in :attr:`error`.
        """
        self._begin()
        try:
            bot_id = self._selected(bot)
            if self.manager is not None:
                if self.store.get_bot(bot_id) is None:
                    from tcp_lab.errors import DataError

                    raise DataError(f"no bot {bot_id!r} in the store",
                                    hint="start it first; see the table for the bots")
                self.manager.stop_bot(bot_id)
                done = f"stopped bot {bot_id}"
            else:
                from tcp_lab.bots.control import request_stop

                row = request_stop(self.store, self.bus, bot_id)
                done = (f"bot {bot_id}: {row['status']}" if row["status"] == "stopped" else
                        f"requested the stop of bot {bot_id}; the manager stops it")
            self.reload_bot(bot_id)
        except Exception as e:  # noqa: BLE001 - shown in the panel
            self.message = str(e)
            self.error.value = error_html(e)
            return False
        self.message = done
        self.status.value = note_html(done)
        self._render()
        return True

    # -- drawing -----------------------------------------------------------------------
    def _render(self) -> None:
        with self._lock:
            rows = {k: dict(v) for k, v in self.rows.items()}
        self.table.value = bots_table_html(rows, pd.Timestamp.now("UTC")) if rows else note_html(
            "no bots yet: pick a config (config/bots/NAME.json) and press Start")
