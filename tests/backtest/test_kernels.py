"""The numba sweep kernels against pandas (moving averages) and vectorbt (fills, metrics)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tcp_lab.backtest.fused import BLOCK_BARS, FUSED_KERNELS, run_fused
from tcp_lab.backtest.kernels import ACC_FIELDS, simulate_signals_nb
from tcp_lab.backtest.metrics import METRIC_NAMES, compute_metrics
from tcp_lab.backtest.sweep_metrics import finalize_metrics
from tcp_lab.execution.account import SIZE_AMOUNT, SIZE_PERCENT, SIZE_VALUE
from tcp_lab.strategies import get_strategy
from tcp_lab.strategies.indicators import crossed_above, ema, sma
from tcp_lab.testing import make_candles

vbt = pytest.importorskip("vectorbt")

NEVER = np.zeros((0, 0), dtype=bool)
NO_LEVELS = np.zeros((0, 0))
NO_TRADES = (np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(0, np.int64),
             np.zeros(0, np.int64), np.zeros(0), np.zeros(0))


def kernel_opts(m, fees, slippage, size, size_type, stop_loss=0.0, take_profit=0.0, trail=0.0):
    """``m`` rows of the engine's option array (OPTION_FIELDS order)."""
    row = [fees, slippage, size, size_type, stop_loss, take_profit, trail, 0.0, 0.0]
    return np.tile(np.array(row, dtype=np.float64), (m, 1))


def bars_of(close, price):
    """(4, n) bars whose open is the fill price of next-open runs (high/low: the close)."""
    return np.ascontiguousarray(np.stack([price, close, close, close]).astype(np.float64))


def sim(close, price, le, lx, se, sx, segments, fees, slippage, init_cash, size, size_type,
        at_open=False):
    """The old call shape of the signal kernel, on the engine's bars and options."""
    return simulate_signals_nb(bars_of(close, price), np.arange(len(close), dtype=np.int64),
                               le, lx, se, sx, NO_LEVELS, NO_LEVELS, segments, at_open,
                               kernel_opts(le.shape[1], fees, slippage, size, size_type),
                               init_cash, NO_TRADES)


def fused(name, close, price, combos, segments, *, shift, reverse, fees, slippage, init_cash,
          size, size_type):
    return run_fused(name, bars_of(close, price), combos, segments, shift=shift,
                     reverse=reverse, init_cash=init_cash, trades=NO_TRADES,
                     opts=kernel_opts(len(combos), fees, slippage, size, size_type))


def tick_prices(n: int, seed: int, repeat: float = 0.4) -> np.ndarray:
    """Prices on a 0.01 tick grid that often repeat (flat 1m stretches): many exact MA ties."""
    rng = np.random.default_rng(seed)
    steps = rng.choice([-1.0, 0.0, 1.0], size=n, p=[(1 - repeat) / 2, repeat, (1 - repeat) / 2])
    return np.round(20_000.0 + 0.01 * np.cumsum(steps), 2)


def same(a: np.ndarray, b: np.ndarray) -> bool:
    """Bit-identical, NaN where NaN."""
    return bool(np.array_equal(a, b, equal_nan=True))


# -- moving averages: the strategies' own, so the crosses are the strategies' own ---------------
def naive_sma(x: np.ndarray, window: int) -> np.ndarray:
    """The textbook fast SMA: differences of a cumulative sum."""
    cs = np.concatenate([[0.0], np.cumsum(x)])
    out = np.full(len(x), np.nan)
    out[window - 1:] = (cs[window:] - cs[:-window]) / window
    return out


@pytest.mark.parametrize("name", ["sma_cross", "ema_cross"])
def test_fused_averages_are_the_strategy_indicators(name):
    x = tick_prices(5000, seed=1)
    windows = np.array([1, 2, 3, 5, 20, 64])
    table = FUSED_KERNELS[name].table(x, windows)
    for k, w in enumerate(windows):
        expected = sma(x, int(w)) if name == "sma_cross" else ema(x, int(w), min_periods=1)
        assert same(table[k], expected)


def test_fused_crosses_are_the_strategys_on_exact_ties():
    # Flat stretches make the fast and slow SMAs exactly equal; a mean computed
    # another way (cumsum differences) lands an ulp off and invents crosses.
    x = tick_prices(20_000, seed=7, repeat=0.8)
    fast, slow = sma(x, 5), sma(x, 20)
    assert (fast == slow).sum() > 100  # the fixture really has ties...
    naive = crossed_above(naive_sma(x, 5), naive_sma(x, 20))
    assert not np.array_equal(naive, crossed_above(fast, slow))  # ...that a naive SMA breaks
    candles = pd.DataFrame({"close": x, "open": x})
    combos = [{"fast": 5, "slow": 20}, {"fast": 3, "slow": 4}, {"fast": 1, "slow": 2}]
    segments = np.array([[0, len(x)]], dtype=np.int64)
    got = fused("sma_cross", x, x, combos, segments, shift=0, reverse=False, fees=0.0,
                slippage=0.0, init_cash=1000.0, size=np.inf, size_type=SIZE_AMOUNT)
    for k, combo in enumerate(combos):
        out = get_strategy("sma_cross", combo).compute(candles)
        e = np.asfortranarray(out.entries.to_numpy()[:, None])
        ex = np.asfortranarray(out.exits.to_numpy()[:, None])
        expected = sim(x, x, e, ex, NEVER, NEVER, segments, 0.0, 0.0, 1000.0, np.inf,
                       SIZE_AMOUNT)
        np.testing.assert_array_equal(got[k], expected[0])


# -- fills and metrics against vectorbt -------------------------------------------------------
def random_signals(n: int, m: int, seed: int, p: float = 0.03) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (np.asfortranarray(rng.random((n, m)) < p), np.asfortranarray(rng.random((n, m)) < p))


def vbt_run(close, price, signals, *, size, size_type, fees, slippage, init_cash):
    return vbt.Portfolio.from_signals(
        close[:, None], price=price[:, None], size=size, size_type=size_type, fees=fees,
        slippage=slippage, init_cash=init_cash, **signals,
    )


def vbt_metrics(pf, col: int, init_cash: float, bars_per_year: float, years: float) -> dict:
    value = pf.value().to_numpy()[:, col]
    trades = pf.trades.records_arr
    closed = trades[(trades["status"] == 1) & (trades["col"] == col)]
    assets = pf.assets().to_numpy()[:, col]
    return compute_metrics(np.concatenate([[init_cash], value]), closed["pnl"], closed["return"],
                           assets != 0, bars_per_year, years)


def assert_metrics_close(ours: dict, theirs: dict) -> None:
    for name in METRIC_NAMES:
        a, b = ours[name], theirs[name]
        if name == "n_trades":
            assert a == b, name
        elif np.isnan(b) or np.isinf(b):
            assert (np.isnan(a) and np.isnan(b)) or a == b, (name, a, b)
        else:
            assert a == pytest.approx(b, rel=1e-9, abs=1e-12), name


MODES = [
    # (direction, signal layout, vectorbt size, vectorbt size_type, our size type)
    ("longonly", "long", np.inf, "amount", SIZE_AMOUNT),
    ("longonly", "long", 0.5, "percent", SIZE_PERCENT),
    ("longonly", "long", 2500.0, "value", SIZE_VALUE),
    ("longonly", "long", 0.05, "amount", SIZE_AMOUNT),
    ("both", "reverse", np.inf, "amount", SIZE_AMOUNT),
    ("both", "reverse", 2500.0, "value", SIZE_VALUE),
    ("both", "ls", np.inf, "amount", SIZE_AMOUNT),
    ("both", "ls", 0.05, "amount", SIZE_AMOUNT),
]


@pytest.mark.parametrize("direction,layout,size,vbt_size_type,size_type", MODES)
@pytest.mark.parametrize("next_open", [False, True])
def test_simulate_signals_matches_vectorbt(direction, layout, size, vbt_size_type, size_type,
                                           next_open):
    candles = make_candles(1500, seed=11)
    close = candles["close"].to_numpy()
    price = candles["open"].to_numpy() if next_open else close
    n, m = len(close), 12
    entries, exits = random_signals(n, m, seed=3)
    fees, slippage, init_cash = 0.001, 0.0005, 10_000.0
    if layout == "long":
        ours = (entries, exits, NEVER, NEVER)
        theirs = {"entries": entries, "exits": exits}
    elif layout == "reverse":
        ours = (entries, NEVER, exits, NEVER)
        theirs = {"entries": entries, "exits": exits}
    else:
        short_entries, short_exits = random_signals(n, m, seed=4)
        ours = (entries, exits, short_entries, short_exits)
        theirs = {"entries": entries, "exits": exits, "short_entries": short_entries,
                  "short_exits": short_exits}
    segments = np.array([[0, n]], dtype=np.int64)
    acc = sim(close, price, *ours, segments, fees, slippage, init_cash, float(size), size_type,
              at_open=next_open)
    assert acc.shape == (m, 1, len(ACC_FIELDS))
    kw = {"direction": direction} if layout != "ls" else {}  # (LS mode takes no direction)
    pf = vbt_run(close, price, {**theirs, **kw}, size=size, size_type=vbt_size_type, fees=fees,
                 slippage=slippage, init_cash=init_cash)
    metrics = finalize_metrics(acc[:, 0], 525_600.0, 1500 / 525_600)
    total = pf.total_return().to_numpy()
    np.testing.assert_allclose(metrics["total_return"], total, rtol=1e-9, atol=1e-12)
    for col in range(m):
        assert_metrics_close({k: v[col] for k, v in metrics.items()},
                             vbt_metrics(pf, col, init_cash, 525_600.0, 1500 / 525_600))


def test_segments_are_independent_accounts():
    candles = make_candles(2000, seed=5)
    close = candles["close"].to_numpy()
    entries, exits = random_signals(len(close), 6, seed=9)
    segments = np.array([[0, 700], [700, 1500], [1500, 2000]], dtype=np.int64)
    acc = sim(close, close, entries, exits, NEVER, NEVER, segments, 0.001, 0.0, 1000.0, np.inf,
              SIZE_AMOUNT)
    for s, (a, b) in enumerate(segments):
        part = sim(close[a:b], close[a:b], np.asfortranarray(entries[a:b]),
                   np.asfortranarray(exits[a:b]), NEVER, NEVER,
                   np.array([[0, b - a]], dtype=np.int64), 0.001, 0.0, 1000.0, np.inf,
                   SIZE_AMOUNT)
        np.testing.assert_array_equal(acc[:, s], part[:, 0])


@pytest.mark.parametrize("name", ["sma_cross", "ema_cross"])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("shift", [0, 1])
@pytest.mark.parametrize("n,cut,slows", [
    (3000, 1000, (4, 9, 30)),
    # several time blocks; a segment and a warm-up end inside a block
    (2 * BLOCK_BARS + 1500, BLOCK_BARS - 700, (4, 30, BLOCK_BARS + 50)),
])
def test_fused_kernel_equals_signal_kernel_on_strategy_signals(name, reverse, shift, n, cut,
                                                                 slows):
    x = tick_prices(n, seed=2, repeat=0.5)
    candles = pd.DataFrame({"close": x, "open": np.r_[x[0], x[:-1]]})
    combos = [{"fast": f, "slow": s} for f in (1, 3, 8) for s in slows if f < s]
    cols = [get_strategy(name, c).compute(candles) for c in combos]
    entries = np.asfortranarray(np.column_stack([o.entries.to_numpy() for o in cols]))
    exits = np.asfortranarray(np.column_stack([o.exits.to_numpy() for o in cols]))
    if shift:
        entries, exits = (np.asfortranarray(np.vstack([np.zeros((1, len(combos)), bool),
                                                       a[:-1]])) for a in (entries, exits))
    price = candles["open"].to_numpy() if shift else x
    segments = np.array([[0, cut], [cut, n]], dtype=np.int64)
    opts = (0.002, 0.001, 5000.0, np.inf, SIZE_AMOUNT)
    signals = (entries, NEVER, exits, NEVER) if reverse else (entries, exits, NEVER, NEVER)
    expected = sim(x, price, *signals, segments, opts[0], opts[1], opts[2], opts[3], opts[4],
                   at_open=bool(shift))
    got = fused(name, x, price, combos, segments, shift=shift, reverse=reverse,
                fees=opts[0], slippage=opts[1], init_cash=opts[2], size=opts[3],
                size_type=opts[4])
    np.testing.assert_array_equal(got, expected)


def test_finalize_metrics_names_match_metrics_module():
    acc = np.zeros((2, len(ACC_FIELDS)))
    acc[:, 0] = acc[:, 1] = 100.0
    out = finalize_metrics(acc, 365.0, 1.0)
    assert tuple(out) == METRIC_NAMES
    assert out["n_trades"].dtype == np.int64


@pytest.mark.parametrize("shift,reverse", [(0, False), (1, True)])
def test_fused_kernel_equals_signal_kernel_on_missing_candles(shift, reverse):
    """Bars on a grid with holes: both kernels count the same slots and time in the market."""
    n, cut = 3000, 1100
    x = tick_prices(n, seed=3, repeat=0.5)
    slot = np.cumsum(np.random.default_rng(1).integers(1, 4, n)).astype(np.int64)
    candles = pd.DataFrame({"close": x, "open": np.r_[x[0], x[:-1]]})
    combos = [{"fast": f, "slow": s} for f in (1, 3) for s in (4, 30)]
    cols = [get_strategy("sma_cross", c).compute(candles) for c in combos]
    entries = np.asfortranarray(np.column_stack([o.entries.to_numpy() for o in cols]))
    exits = np.asfortranarray(np.column_stack([o.exits.to_numpy() for o in cols]))
    if shift:
        entries, exits = (np.asfortranarray(np.vstack([np.zeros((1, len(combos)), bool),
                                                       a[:-1]])) for a in (entries, exits))
    price = candles["open"].to_numpy() if shift else x
    segments = np.array([[0, cut], [cut, n]], dtype=np.int64)
    signals = (entries, NEVER, exits, NEVER) if reverse else (entries, exits, NEVER, NEVER)
    opts = kernel_opts(len(combos), 0.001, 0.0, 1.0, SIZE_PERCENT)
    expected = simulate_signals_nb(bars_of(x, price), slot, *signals, NO_LEVELS, NO_LEVELS,
                                   segments, bool(shift), opts, 10_000.0, NO_TRADES)
    got = run_fused("sma_cross", bars_of(x, price), combos, segments, shift=shift,
                    reverse=reverse, opts=opts, init_cash=10_000.0, trades=NO_TRADES, slot=slot)
    np.testing.assert_array_equal(got, expected)
    n_r, held = ACC_FIELDS.index("n_r"), ACC_FIELDS.index("bars_in_market")
    assert (got[:, 0, n_r] == slot[cut - 1] - slot[0] + 1).all()
    assert (got[:, 1, n_r] == slot[-1] - slot[cut] + 1).all()
    assert (got[:, :, held] > 0).all() and (got[:, :, held] <= got[:, :, n_r]).all()
