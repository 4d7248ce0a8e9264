"""``run_portfolio``: one strategy over several symbols, one account with shared cash."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from tcp_lab.backtest.engine import candle_timeframe, engine_signals
from tcp_lab.errors import ConfigError, DataError, StrategyError
from tcp_lab.execution import TradingOptions
from tcp_lab.execution.portfolio import SIZE_RISK, run_portfolio_nb
from tcp_lab.execution.sizing import check_vol_window, parse_sizing, volatility_fraction
from tcp_lab.portfolio.result import PortfolioResult
from tcp_lab.strategies import BaseStrategy, check_output, get_strategy
from tcp_lab.strategies.informative import with_informative
from tcp_lab.timeframes import Timeframe, validate_candles

__all__ = ["run_portfolio"]

_OWNER = "run_portfolio"


def _universe(candles_by_symbol: Any) -> dict[str, pd.DataFrame]:
    """A mapping symbol -> candles (or ``load_candles_many``'s wide frame) as a sorted dict."""
    if isinstance(candles_by_symbol, pd.DataFrame):
        if not isinstance(candles_by_symbol.columns, pd.MultiIndex):
            raise ConfigError(
                f"{_OWNER}: candles_by_symbol is one candle frame, expected several symbols",
                hint="pass {'BTC/USDT': candles, ...} or store.load_candles_many(...); "
                     "for one symbol use run_backtest")
        from tcp_lab.store._universe import candles_of

        symbols = list(dict.fromkeys(candles_by_symbol.columns.get_level_values(0)))
        candles_by_symbol = {s: candles_of(candles_by_symbol, s) for s in symbols}
    if not isinstance(candles_by_symbol, Mapping):
        raise ConfigError(f"{_OWNER}: candles_by_symbol is a {type(candles_by_symbol).__name__}, "
                          "expected a mapping symbol -> candles",
                          hint="pass {'BTC/USDT': candles, 'ETH/USDT': candles2}")
    if not candles_by_symbol:
        raise ConfigError(f"{_OWNER}: candles_by_symbol is empty, expected at least one symbol",
                          hint="pass {'BTC/USDT': candles, ...}")
    for key in candles_by_symbol:
        if not isinstance(key, str) or not key:
            raise ConfigError(f"{_OWNER}: symbol {key!r} is not a name",
                              hint="key the candles by symbol, e.g. 'BTC/USDT'")
    return {s: candles_by_symbol[s] for s in sorted(candles_by_symbol)}


def union_index(frames: Mapping[str, pd.DataFrame]) -> pd.DatetimeIndex:
    """The union of the symbols' close times (sorted): the rows of a portfolio run."""
    indexes = [c.index for c in frames.values()]
    index = indexes[0]
    for other in indexes[1:]:
        index = index.union(other)
    return index


def run_portfolio(
    strategy: BaseStrategy | str,
    candles_by_symbol: Mapping[str, pd.DataFrame] | pd.DataFrame,
    *,
    parameters: Mapping[str, Any] | None = None,
    sizing: str = "all_in",
    size: float | None = None,
    max_positions: int | None = None,
    vol_window: int | None = None,
    init_cash: float = 10_000.0,
    fees: float = 0.001,
    slippage: float = 0.0,
    direction: str = "long",
    price: str = "close",
    stop_loss: float | None = None,
    take_profit: float | None = None,
    trailing_stop: float | None = None,
    leverage: float = 1.0,
    maintenance_margin: float = 0.005,
    timeframe: str | Timeframe | None = None,
    exchange: str | None = None,
    risk_free_rate: float = 0.0,
) -> PortfolioResult:
    """Backtest one strategy on several symbols from one account with shared cash.

    One run of the execution engine over the union of the symbols' close times:
    each symbol keeps its own engine state (position, debt, open round trip,
    stops), the cash and the free cash are shared (vectorbt's ``cash_sharing``).
    A symbol without a candle at a time has no signal there and its position is
    valued at its last close. Within one close time the symbols whose bar has no
    entry signal go first (their exits and stops free cash), then those with an
    entry signal (long or short; with ``direction="longshort"`` a strategy
    without short signals enters a short on its exit signal) by the strategy's
    ``confidence`` (descending; none or NaN last), then by symbol name. Every
    fill is the engine's (:func:`~tcp_lab.execution.kernel.bar_nb`): with one
    symbol the result equals :func:`~tcp_lab.backtest.run_backtest`'s exactly.

    Parameters
    ----------
    strategy
        A strategy object, or a registry name (then ``parameters`` apply).
    candles_by_symbol
        ``{symbol: candles}`` (each validated like ``run_backtest``'s), or the
        wide frame of :meth:`~tcp_lab.store.Store.load_candles_many`.
    parameters
        Strategy parameters when ``strategy`` is a name.
    sizing, size
        ``"all_in"`` (all the cash available at a long entry, all the free cash
        at a short one; no size), ``"fixed_value"`` (``size`` quote per entry),
        ``"fixed_fraction"`` (``size`` of the equity per entry) or ``"equal"``
        (equity / ``max_positions``, or / number of symbols),
        ``"risk_percent"`` (lose ``size`` of the equity at the entry's stop;
        needs ``stop_loss`` or a strategy that sets ``stop_price``) or
        ``"volatility_target"`` (``size`` an annual volatility: ``size / sigma``
        of the equity per entry, at most all of it). A short entry sells that
        value; see :mod:`tcp_lab.execution.sizing`.
    max_positions
        At most this many open positions; an entry beyond it is skipped and
        recorded in ``result.skipped`` (None: no cap).
    vol_window
        Candles of each symbol's volatility estimate with
        ``sizing="volatility_target"`` (default 30).
    init_cash, fees, slippage, price, stop_loss, take_profit, trailing_stop
        As for ``run_backtest``; stops and targets are resolved on the candles
        (the OHLC rule), per symbol.
    direction
        ``"long"`` or ``"longshort"`` (as for ``run_backtest``: short signals
        open shorts; without them an exit reverses a long into a short).
    leverage, maintenance_margin
        With ``leverage`` above 1 the account may borrow up to ``leverage - 1``
        times its equity (a cross-margin account in the quote currency, as for
        perpetual futures): ``"all_in"`` buys up to ``leverage`` times the
        equity, ``"equal"`` ``leverage / max_positions`` of it per entry,
        ``"fixed_fraction"`` takes a ``size`` up to ``leverage`` and
        ``"volatility_target"`` caps at ``leverage``. At each close time an
        account whose equity is below ``maintenance_margin`` times the gross
        value of its positions is liquidated: every position closes at its
        symbol's latest close (exit reason ``"liquidation"``). No funding
        payments or borrowing interest yet. See :mod:`tcp_lab.execution.portfolio`.
    timeframe
        Timeframe of every symbol's candles (inferred, and required to agree, when omitted).
    exchange
        A label kept with the result.
    risk_free_rate
        Annual risk-free rate for Sharpe and Sortino.

    Returns
    -------
    PortfolioResult
        Equity, cash, exposure, per-symbol value and contribution, trades with
        their ``symbol``, metrics, correlation, ``plot()``, ``summary()``.

    Raises
    ------
    ConfigError
        Unknown sizing, bad size, empty mapping, an unknown direction, leverage below
        1 or a maintenance margin outside [0, 1), risk-percent sizing without any stop.
    DataError
        Invalid candles (naive timestamps, too few rows), or timeframes that differ.
    StrategyError
        Unknown strategy or a malformed ``compute`` output.

    Examples
    --------
    >>> from tcp_lab.testing import make_candles
    >>> universe = {"BTC/USDT": make_candles(500, seed=1), "ETH/USDT": make_candles(500, seed=2)}
    >>> r = run_portfolio("sma_cross", universe, parameters={"fast": 5, "slow": 20},
    ...                   sizing="equal")
    >>> sorted(r.contribution.columns)
    ['BTC/USDT', 'ETH/USDT']
    >>> ls = run_portfolio("sma_cross", universe, parameters={"fast": 5, "slow": 20},
    ...                    sizing="fixed_fraction", size=0.3, direction="longshort")
    >>> sorted(set(ls.trades["direction"]))
    ['long', 'short']
    """
    if isinstance(strategy, str):
        strategy = get_strategy(strategy, parameters)
    elif parameters is not None:
        raise ConfigError(f"{_OWNER}: parameters= given with a strategy object",
                          hint="pass the parameters to the strategy, or the strategy by name")
    if not isinstance(strategy, BaseStrategy):
        raise StrategyError(f"{_OWNER}: expected a strategy, got {type(strategy).__name__}")
    if isinstance(leverage, bool) or not isinstance(leverage, int | float) or not (
            1 <= leverage < math.inf):
        raise ConfigError(f"{_OWNER}: leverage={leverage!r}, expected a number >= 1",
                          hint="e.g. leverage=3 to hold up to 3 times the equity")
    if isinstance(maintenance_margin, bool) or not isinstance(
            maintenance_margin, int | float) or not 0 <= maintenance_margin < 1:
        raise ConfigError(f"{_OWNER}: maintenance_margin={maintenance_margin!r}, expected a "
                          "rate in [0, 1)", hint="e.g. maintenance_margin=0.005 (0.5 %)")
    universe = _universe(candles_by_symbol)
    symbols = list(universe)
    if max_positions is not None and (isinstance(max_positions, bool) or not isinstance(
            max_positions, int | np.integer) or max_positions < 1):
        raise ConfigError(f"{_OWNER}: max_positions={max_positions!r}, expected a whole "
                          "number >= 1 or None", hint="e.g. max_positions=5")
    sz = parse_sizing(sizing, size, max_positions, len(symbols), leverage=float(leverage))
    window = check_vol_window(vol_window, sz.name)
    opts = TradingOptions.from_mapping(
        dict(fees=fees, slippage=slippage, init_cash=init_cash, size=sz.size,
             size_type=sz.size_type, direction=direction, price=price, stop_loss=stop_loss,
             take_profit=take_profit, trailing_stop=trailing_stop), owner=_OWNER)
    if isinstance(risk_free_rate, bool) or not isinstance(risk_free_rate, int | float) or not (
            -1 < risk_free_rate < math.inf):
        raise ConfigError(f"{_OWNER}: risk_free_rate={risk_free_rate!r} must be an annual "
                          "rate above -1", hint="e.g. risk_free_rate=0.04 for 4 % a year")
    frames, tfs = {}, {}
    for s, c in universe.items():
        label = f"candles for {s}"
        c = validate_candles(c, timeframe, name=label)
        if len(c) < 2:
            raise DataError(f"{label}: {len(c)} candle(s), a portfolio backtest needs at least "
                            "2 per symbol", hint="drop the symbol or load a longer range")
        frames[s], tfs[s] = c, candle_timeframe(c.index, timeframe, label)
    if len({tf.name for tf in tfs.values()}) > 1:
        found = ", ".join(f"{s}: {tf.name}" for s, tf in tfs.items())
        raise DataError(f"{_OWNER}: the symbols' timeframes differ ({found})",
                        hint="resample them to one timeframe, or pass timeframe=")
    tf = tfs[symbols[0]]
    shift = opts.price == "next_open"
    index = union_index(frames)
    n_t, n_s = len(index), len(symbols)
    outputs, signals = {}, {}
    for s in symbols:
        c = frames[s]
        # informative series: the own symbol's from its candles, others' from the universe
        view = with_informative(strategy, c, timeframe=tfs[s], others=frames, symbol=s)
        outputs[s] = check_output(strategy.compute(view), view, repr(strategy))
        signals[s] = engine_signals(outputs[s], opts, shift)
    has_levels = np.array([len(signals[s][1]) > 0 for s in symbols], dtype=bool)
    # Fresh (T, S) arrays cost their page faults when first written (~80 MB each at 100
    # symbols x 100k candles): the open, high and low are only read for orders at the open
    # and for stops and targets, the confidence only when the strategy gives one.
    ohl = shift or bool(opts.stop_loss or opts.take_profit or opts.trailing_stop
                        or has_levels.any())
    close = np.zeros((n_t, n_s))
    bars = {k: np.zeros((n_t, n_s)) if ohl else close for k in ("open", "high", "low")}
    bars["close"] = close
    has_bar = np.zeros((n_t, n_s), dtype=bool)
    le, lx, se, sx = (np.zeros((n_t, n_s), dtype=bool) for _ in range(4))
    confident = any(outputs[s].confidence is not None for s in symbols)
    conf = np.full((n_t, n_s) if confident else (1, 1), -np.inf)
    levels: dict[int, tuple[np.ndarray | slice, np.ndarray, np.ndarray]] = {}
    for j, s in enumerate(symbols):
        c, output = frames[s], outputs[s]
        # the symbol's rows of the union (a slice when it has every close time: no gather)
        rows = slice(None) if c.index.equals(index) else index.get_indexer(c.index)
        (e, x, short_e, short_x), stop, target = signals[s]
        for k in ("open", "high", "low", "close") if ohl else ("close",):
            bars[k][rows, j] = c[k].to_numpy(dtype=np.float64)
        has_bar[rows, j] = True
        le[rows, j], lx[rows, j], se[rows, j], sx[rows, j] = e, x, short_e, short_x
        if output.confidence is not None:
            cf = np.asarray(output.confidence, dtype=np.float64)
            if shift:
                cf = np.concatenate(([np.nan], cf[:-1]))
            conf[rows, j] = np.where(np.isnan(cf), -np.inf, cf)
        if len(stop):
            levels[j] = (rows, stop, target)
    if sz.mode == SIZE_RISK and not opts.stop_loss and not has_levels.any():
        raise ConfigError(f"{_OWNER}: sizing='risk_percent' needs a stop to measure the risk: "
                          f"{strategy!r} sets no stop_price and stop_loss is not set",
                          hint="pass stop_loss=0.02 (2 % below the entry), or use a strategy "
                               "that sets stop_price")
    fraction = np.array([[sz.fraction if sz.mode else 0.0]])
    if sz.name == "volatility_target":
        fraction = _volatility_fraction(frames, index, sz.fraction, window, tf, shift,
                                        float(leverage))
    stop_a = target_a = np.zeros((0, n_s))
    if levels:
        stop_a, target_a = np.full((n_t, n_s), np.nan), np.full((n_t, n_s), np.nan)
        for j, (rows, stop, target) in levels.items():
            stop_a[rows, j], target_a[rows, j] = stop, target
    sim = run_portfolio_nb(
        bars["open"], bars["high"], bars["low"], bars["close"], has_bar, le, lx, se, sx, stop_a,
        target_a, has_levels, conf, shift, opts.kernel_options(), sz.mode, fraction,
        n_s if max_positions is None else int(max_positions),
        float(opts.init_cash), float(leverage) - 1.0, float(maintenance_margin))
    options = opts.to_dict() | {"sizing": sz.name, "sizing_size": size,
                                "max_positions": max_positions, "leverage": float(leverage),
                                "maintenance_margin": float(maintenance_margin),
                                "risk_free_rate":
                                float(risk_free_rate)}
    if sz.name == "volatility_target":
        options["vol_window"] = window
    return PortfolioResult.from_simulation(
        sim, strategy=strategy, index=index, symbols=symbols, candles=frames, outputs=outputs,
        timeframe=tf, options=options, exchange=exchange)


def _volatility_fraction(frames: Mapping[str, pd.DataFrame], index: pd.DatetimeIndex,
                         target: float, window: int, tf: Timeframe, shift: bool,
                         cap: float = 1.0) -> np.ndarray:
    """``(T, S)`` share of equity per entry for a volatility target
    (:func:`~tcp_lab.execution.sizing.volatility_fraction` of each symbol's closes, up
    to the bar, or up to the bar before with orders at the open); NaN where it is not
    known yet."""
    out = np.full((len(index), len(frames)), np.nan)
    for j, c in enumerate(frames.values()):
        f = volatility_fraction(c["close"].to_numpy(dtype=np.float64), target, window,
                                tf.per_year, cap)
        if shift:
            f = np.concatenate(([np.nan], f[:-1]))
        out[index.get_indexer(c.index), j] = f
    return out
