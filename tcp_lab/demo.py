"""``make demo`` / ``tcp-lab demo``: the whole story, offline, on the embedded default.

1. start tcp_lab's exchange emulator on 127.0.0.1 (Binance's wire format);
2. collect a few days of 1m/5m/1h candles for two symbols with the real ccxt client
   into the default embedded store (``<home>/tcp_lab.duckdb``), so that the notebooks,
   the panels and the CLI see them afterwards;
3. check the stored series (holes, duplicates, suspicious values);
4. backtest a built-in strategy on one series and store the run;
5. replay the same candles through a paper-trading bot and compare its fills with
   the backtest's (they must be identical);
6. run a small papermill batch of the backtest notebook over a parameter grid;
7. write ``reports/demo.html`` with all of it.

The demo always runs on the embedded default (the DuckDB file of the resolved home and
an in-process bus), whatever ``TCP_LAB_DATABASE_URL`` says; it never writes to a
PostgreSQL database. Its candles are stored as exchange ``binance`` (the emulator speaks
Binance's format): they are what a new user's notebooks show until they collect their own.
A second run resumes the collection and reuses the stored candles.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tcp_lab.errors import ConfigError
from tcp_lab.settings import DEFAULT_DB_FILE, Settings, load_settings

__all__ = ["DemoResult", "run_demo", "demo_settings"]

EXCHANGE = "binance"
SYMBOLS = ("BTC/USDT", "ETH/USDT")
TIMEFRAMES = ("1m", "5m", "1h")
TIMEFRAME = "5m"  # what the backtest, the bot and the batch trade
STRATEGY = "sma_cross"
PARAMETERS = {"fast": 10, "slow": 30}
BATCH_GRID = {"parameters.fast": [5, 10], "parameters.slow": [30, 60]}
NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "02_backtest.ipynb"
STEPS = 7


@dataclass
class DemoResult:
    """Where the demo left its results, and what it found."""

    report: Path
    database_url: str
    series: pd.DataFrame
    metrics: dict[str, float]
    run_id: str | None
    bot_matches_backtest: bool
    batch_dir: Path | None
    seconds: float = 0.0
    artefacts: dict[str, Any] = field(default_factory=dict)


def demo_settings(home: str | Path | None = None) -> Settings:
    """The settings the demo runs with: the embedded default of the resolved home.

    The store is ``<home>/tcp_lab.duckdb`` (the default a notebook or the CLI opens when
    no database URL is set), the bus in-process and no Dask scheduler, whatever the
    environment says.
    """
    base = load_settings(home=str(home) if home is not None else None)
    return load_settings(
        home=str(base.home),
        database_url=f"duckdb:///{base.home / DEFAULT_DB_FILE}",
        redis_url="memory://demo",
        scheduler="none",  # the demo runs here, whatever TCP_LAB_SCHEDULER says
    )


def _collect(settings: Settings, emulator_url: str, symbols: Sequence[str], days: int,
             say: Callable[[str], None]) -> Any:
    from tcp_lab.data.collector import DataCollector

    until = pd.Timestamp.now(tz="UTC").floor("1h")
    since = until - pd.Timedelta(days=days)
    with DataCollector(settings.database_url, bus=settings.redis_url, exchange=EXCHANGE,
                       exchange_url=emulator_url, progress=False) as collector:
        summary = collector.backfill(list(symbols), list(TIMEFRAMES), since=since, until=until)
        say(f"   {summary.candles:,} candles in {summary.requests} requests "
            f"({summary.seconds:.1f} s)")
        # the demo's series only; a hole (a missing candle the emulator has not confirmed
        # as quiet) is asked again, so the check below is clean or says why not
        checks = [c for s in symbols for tf in TIMEFRAMES
                  for c in collector.check_data(s, tf, repair=True)]
    return checks


def _bot_replay(settings: Settings, candles: pd.DataFrame, result: Any) -> dict[str, Any]:
    """Replay the stored candles through a paper bot; compare with the backtest."""
    from tcp_lab.bots import Bot, BotConfig
    from tcp_lab.store import open_store

    config = BotConfig.from_mapping({
        "name": "demo-sma-btc", "strategy": STRATEGY, "parameters": PARAMETERS,
        "exchange": EXCHANGE, "symbol": result.symbol, "timeframe": TIMEFRAME,
        "init_cash": result.options["init_cash"], "fees": result.options["fees"],
        "slippage": result.options["slippage"], "size": 1.0, "start": "earliest",
    }, source="the demo")
    store = open_store(settings.database_url)
    try:
        bot = Bot(config, store)
        bot.catch_up()  # a re-run resumes from the bot's stored state, as after a restart
        fills = store.load_bot_trades(config.name)
        perf = store.load_performance(config.name)
    finally:
        store.close()
    bt = result.trades
    bt_times = pd.concat([bt["entry_time"], bt["exit_time"].dropna()]).sort_values()
    equity = perf["equity"].reindex(result.equity.index)
    same = (len(fills) == len(bt_times)
            and np.array_equal(fills.index.to_numpy(), bt_times.to_numpy())
            and np.allclose(equity.to_numpy(), result.equity.to_numpy(), rtol=1e-9))
    return {"candles": len(perf), "fills": fills, "performance": perf, "same": bool(same),
            "final_equity": float(perf["equity"].iat[-1]) if len(perf) else float("nan")}


def _batch(settings: Settings, symbol: str, say: Callable[[str], None]) -> Any:
    from tcp_lab.batch import run_batch

    config = {
        "name": "demo",
        "description": f"{STRATEGY} on {symbol} {TIMEFRAME}: a small grid",
        "notebook": str(NOTEBOOK),
        "parameters": {"strategy": STRATEGY, "exchange": EXCHANGE, "symbol": symbol,
                       "timeframe": TIMEFRAME, "source": "store"},
        "grid": BATCH_GRID,
        "metric": "sharpe",
    }
    out = settings.home / "batches" / "demo"
    if out.exists():  # the demo's own folder: a second demo replaces its batch
        say(f"   replacing the batch of the previous demo in {out}")
        shutil.rmtree(out)
    # The runs are kernels of this machine: they get the demo's settings (its store).
    result = run_batch(config, output_dir=out, progress=False, executor="process",
                       settings=settings)
    say(f"   {result.n_ok} of {len(result.records)} runs succeeded ({result.seconds:.0f} s); "
        f"summary {result.summary_html}")
    return result


def _say_where_notebooks_read(settings: Settings, say: Callable[[str], None]) -> None:
    """Warn when the user's own settings point elsewhere than the demo's store."""
    try:
        mine = load_settings()
    except ConfigError as e:  # a broken settings file must not fail the demo
        say(f"Note: your settings do not load ({e}); fix them to see the demo's candles.")
        return
    if mine.database_url != settings.database_url:
        say(f"Note: your settings use {mine.redacted()['database_url']}, so notebooks and "
            "the CLI read that store, not the demo's.")
    say("The demo's candles come from the emulator (stored as exchange binance); before "
        f"collecting real data into this store, delete {settings.home / DEFAULT_DB_FILE}.")


def run_demo(
    home: str | Path | None = None,
    *,
    report_dir: str | Path = "reports",
    days: int = 3,
    symbols: Sequence[str] = SYMBOLS,
    batch: bool = True,
    say: Callable[[str], None] = print,
) -> DemoResult:
    """Run the demo and return where its results are.

    Parameters
    ----------
    home
        tcp_lab home (default: the settings' home, ``<project root>/data``); the demo
        stores its candles in ``<home>/tcp_lab.duckdb`` and its runs under ``<home>``.
    report_dir
        Where ``demo.html`` goes.
    days
        Days of candles to collect per symbol.
    symbols
        Symbols to collect.
    batch
        Run the papermill batch (about half a minute on two cores).
    say
        Where progress lines go (``print`` by default).
    """
    from tcp_lab.backtest import run_backtest
    from tcp_lab.data.emulator import EmulatorServer
    from tcp_lab.reports.html import Report
    from tcp_lab.store import open_store

    started = time.perf_counter()
    settings = demo_settings(home)
    urls = settings.redacted()
    genesis = (pd.Timestamp.now(tz="UTC").floor("1D") - pd.Timedelta(days=days + 1))
    say(f"[1/{STEPS}] starting the exchange emulator (Binance wire format, 127.0.0.1)")
    with EmulatorServer(symbols=tuple(symbols), seed=0, genesis=genesis.isoformat()) as emu:
        say(f"   serving {', '.join(symbols)} at {emu.base_url}")
        say(f"[2/{STEPS}] collecting {days} days of {'/'.join(TIMEFRAMES)} candles with ccxt "
            f"into {urls['database_url']}")
        checks = _collect(settings, emu.base_url, symbols, days, say)
    say(f"[3/{STEPS}] checking the stored series")
    check_frame = pd.DataFrame([
        {"symbol": c.symbol, "timeframe": c.timeframe, "candles": c.candles,
         "missing": c.missing_count, "confirmed quiet": c.quiet_count, "holes": c.hole_count,
         "duplicates": c.duplicates, "suspicious": len(c.suspicious), "ok": c.ok,
         "verdict": c.verdict} for c in checks])
    for c in checks:
        say("   " + c.summary())
        for line in c.lines()[1:]:  # what a repair did; the first holes of a series not ok
            if not c.ok or line.lstrip().startswith(("note:", "repaired from")):
                say("   " + line)
        if not c.ok:
            say(f"       not ok: {c.verdict}")
    store = open_store(settings.database_url)
    try:
        series = store.list_series()
        say(series.to_string(index=False))
        candles = store.load_candles(EXCHANGE, symbols[0], TIMEFRAME)
    finally:
        store.close()

    say(f"[4/{STEPS}] backtesting {STRATEGY}{PARAMETERS} on {symbols[0]} {TIMEFRAME}")
    result = run_backtest(STRATEGY, candles, parameters=PARAMETERS, timeframe=TIMEFRAME,
                          symbol=symbols[0], exchange=EXCHANGE)
    run_id = result.save(home=settings.home)
    say("   " + repr(result))

    say(f"[5/{STEPS}] replaying the same candles through a paper-trading bot")
    bot = _bot_replay(settings, candles, result)
    verdict = "identical to" if bot["same"] else "DIFFERENT from"
    say(f"   {bot['candles']} candles, {len(bot['fills'])} fills {verdict} the backtest's; "
        f"final equity {bot['final_equity']:,.2f} (backtest "
        f"{result.metrics['final_equity']:,.2f})")

    batch_result = None
    if batch:
        say(f"[6/{STEPS}] running a papermill batch of {NOTEBOOK.name} over {BATCH_GRID}")
        batch_result = _batch(settings, symbols[0], say)
    else:
        say(f"[6/{STEPS}] batch skipped")

    say(f"[7/{STEPS}] writing the report")
    report = Report("tcp_lab demo")
    report.paragraph(f"Embedded default: {urls['database_url']}, bus {urls['redis_url']}. "
                     "Market data from tcp_lab's exchange emulator through the real ccxt "
                     "client.")
    report.key(f"Data: {len(series)} series stored, "
               f"{int(check_frame['ok'].sum()) if len(check_frame) else 0} of "
               f"{len(check_frame)} checked ok")
    report.heading("Stored candles").table(series, index=False)
    if len(check_frame):
        report.heading("Data check", 3).paragraph(
            "A missing candle is a slot of the grid without a stored candle. \"Confirmed "
            "quiet\": the exchange (here the emulator) reported no trades there (tcp_lab "
            "stores no candle then), recorded by the backfill or repair that asked. "
            "\"Holes\": nobody confirmed them (lost data, or quiet slots not asked about "
            "yet); `tcp-lab data check --repair` asks. A series is ok without holes, "
            "duplicates or suspicious values; the verdict says what is wrong otherwise."
        ).table(check_frame, index=False)
    report.heading(f"Backtest: {result.label}").backtest(result, max_trades=50)
    report.key(f"Paper bot: {len(bot['fills'])} fills, {verdict} the backtest's")
    report.heading("Paper bot replay")
    report.paragraph(f"The bot processed {bot['candles']} candles one at a time (a trailing "
                     f"window each) and made {len(bot['fills'])} fills, {verdict} the "
                     f"backtest's; final equity {bot['final_equity']:,.2f} vs "
                     f"{result.metrics['final_equity']:,.2f}.")
    if len(bot["fills"]):
        report.table(bot["fills"], last=20)
    if batch_result is not None:
        report.heading("Batch").paragraph(
            f"{batch_result.n_ok} of {len(batch_result.records)} runs succeeded; executed "
            f"notebooks and HTML in {batch_result.output_dir}")
        report.table(batch_result.summary, index=False, fold_constant=True)
        best = batch_result.best
        report.key(f"Batch: {batch_result.n_ok} of {len(batch_result.records)} runs succeeded"
                   + ("" if best is None else "; best by sharpe: " + ", ".join(
                       f"{c.split('.')[-1]}={best[c]}" for c in BATCH_GRID) + f" ({best['run']})"))
    path = report.write(Path(report_dir) / "demo.html").resolve()

    seconds = time.perf_counter() - started
    say("")
    say(f"Done in {seconds:.0f} s. Results:")
    say(f"  report:        {path}")
    say(f"  database:      {urls['database_url']}")
    say(f"  backtest run:  {run_id} (under {settings.home / 'backtests'})")
    if batch_result is not None:
        say(f"  batch:         {batch_result.output_dir} (executed notebooks, HTML, summary)")
    say("Open the report in a browser, e.g. `xdg-open reports/demo.html`, or "
        "`python -m http.server -d reports` and visit http://127.0.0.1:8000/demo.html;")
    say("open the notebooks with `make lab`: they, the panels and the CLI read the demo's "
        "candles from the default store above.")
    _say_where_notebooks_read(settings, say)
    return DemoResult(report=path, database_url=settings.database_url, series=series,
                      metrics=dict(result.metrics), run_id=run_id,
                      bot_matches_backtest=bot["same"],
                      batch_dir=batch_result.output_dir if batch_result else None,
                      seconds=seconds, artefacts={"checks": check_frame})
