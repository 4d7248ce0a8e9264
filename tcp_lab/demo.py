"""``make demo`` / ``tcp-lab demo``: the whole story, offline, on the embedded default.

Steps (each prints one line as it goes):

1. open the embedded store (a DuckDB file under ``<home>/demo/``) and the in-process bus;
2. put a few days of 1-minute candles for two symbols into the store;
3. read them back and summarise every stored series;
4. backtest a built-in strategy on them and store the run;
5. write ``reports/demo.html`` (data summary, backtest metrics and figures).

The demo never touches the user's own database: it always uses its own DuckDB
file, whatever ``TCP_LAB_DATABASE_URL`` says.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from tcp_lab.settings import Settings, load_settings

__all__ = ["DemoResult", "run_demo"]

EXCHANGE = "binance"
SYMBOLS = ("BTC/USDT", "ETH/USDT")
START_PRICES = {"BTC/USDT": 42_000.0, "ETH/USDT": 2_300.0}
TIMEFRAME = "1m"
STRATEGY = "sma_cross"
PARAMETERS = {"fast": 20, "slow": 60}


@dataclass
class DemoResult:
    """Where the demo left its results."""

    report: Path
    database_url: str
    series: pd.DataFrame
    metrics: dict[str, float]
    run_id: str | None
    seconds: float = 0.0
    artefacts: dict[str, Path] = field(default_factory=dict)


def demo_settings(home: str | Path | None = None) -> Settings:
    """The embedded-default settings the demo runs with (its own DuckDB file)."""
    base = load_settings(home=str(home) if home is not None else None)
    demo_home = base.home / "demo"
    return load_settings(
        home=str(demo_home),
        database_url=f"duckdb:///{demo_home / 'demo.duckdb'}",
        redis_url="memory://demo",
    )


def _step(say: Callable[[str], None], n: int, total: int, text: str) -> float:
    say(f"[{n}/{total}] {text}")
    return time.perf_counter()


def run_demo(
    home: str | Path | None = None,
    *,
    report_dir: str | Path = "reports",
    days: int = 3,
    symbols: Sequence[str] = SYMBOLS,
    say: Callable[[str], None] = print,
) -> DemoResult:
    """Run the demo and return where its results are.

    Parameters
    ----------
    home
        tcp_lab home (default: the settings' home, ``./data``); the demo works in
        ``<home>/demo/``.
    report_dir
        Where ``demo.html`` goes.
    days
        Days of 1-minute candles per symbol.
    symbols
        Symbols to put in the store.
    say
        Where progress lines go (``print`` by default).
    """
    from tcp_lab.backtest import run_backtest
    from tcp_lab.reports.html import Report
    from tcp_lab.store import open_store
    from tcp_lab.testing import make_candles

    started = time.perf_counter()
    settings = demo_settings(home)
    total = 5
    _step(say, 1, total, f"opening the embedded store {settings.redacted()['database_url']}")
    store = open_store(settings.database_url)
    try:
        store.init_schema()
        n = days * 24 * 60
        _step(say, 2, total, f"writing {days} days of synthetic {TIMEFRAME} candles for {', '.join(symbols)}")
        end = pd.Timestamp.now(tz="UTC").floor("1D")
        start = end - pd.Timedelta(days=days)
        for i, symbol in enumerate(symbols):
            candles = make_candles(n, TIMEFRAME, start=start, seed=i,
                                   start_price=START_PRICES.get(symbol, 100.0))
            store.save_candles(candles, EXCHANGE, symbol, TIMEFRAME)

        _step(say, 3, total, "reading the candles back")
        series = store.list_series()
        say(series.to_string(index=False))
        candles = store.load_candles(EXCHANGE, symbols[0], TIMEFRAME)

        _step(say, 4, total, f"backtesting {STRATEGY}{PARAMETERS} on {symbols[0]} {TIMEFRAME}")
        result = run_backtest(STRATEGY, candles, parameters=PARAMETERS, timeframe=TIMEFRAME,
                              symbol=symbols[0], exchange=EXCHANGE)
        run_id = result.save(home=settings.home)
        say("   " + repr(result))

        _step(say, 5, total, "writing the report")
        report = Report("tcp_lab demo")
        report.paragraph(
            f"Embedded default: {settings.redacted()['database_url']}, bus {settings.redis_url}."
        )
        report.heading("Stored candles").table(series, index=False)
        report.heading(f"Backtest: {result.label}").backtest(result, max_trades=50)
        path = report.write(Path(report_dir) / "demo.html").resolve()
    finally:
        store.close()

    seconds = time.perf_counter() - started
    say("")
    say(f"Done in {seconds:.0f} s.")
    say(f"  report:   {path}")
    say(f"  database: {settings.redacted()['database_url']}")
    say(f"  backtest run: {run_id} (under {settings.home / 'backtests'})")
    say("Open the report in a browser (e.g. `xdg-open reports/demo.html`, or "
        "`python -m http.server -d reports` and visit http://127.0.0.1:8000/demo.html),")
    say("and the notebooks with `make lab`.")
    return DemoResult(report=path, database_url=settings.database_url, series=series,
                      metrics=dict(result.metrics), run_id=run_id, seconds=seconds)
