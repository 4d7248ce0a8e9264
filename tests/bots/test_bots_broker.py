"""The paper broker: its rules by hand, and vectorbt's fills for any signals (hypothesis)."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from bots_helpers import assert_same_fills, backtest_fills
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tcp_lab.backtest import run_backtest
from tcp_lab.bots import Account, Flags, PaperBroker
from tcp_lab.errors import ConfigError
from tcp_lab.execution import TradingOptions
from tcp_lab.strategies import BaseStrategy, StrategyOutput
from tcp_lab.testing import make_candles


def broker(**kw) -> PaperBroker:
    values = dict(fees=0.001, slippage=0.0, size=1.0, size_type="percent", direction="long")
    values.update(kw)
    return PaperBroker(TradingOptions(**values))


def close_only(b: PaperBroker, acct: Account, flags: Flags, price: float):
    """A candle that opens, peaks, bottoms and closes at ``price``: at most one fill."""
    acct, fills = b.on_candle(acct, flags, (price, price, price, price))
    assert len(fills) <= 1
    return acct, (fills[0] if fills else None)


def test_all_in_buy_spends_the_cash_including_the_fee():
    acct, fill = close_only(broker(slippage=0.01), Account.opening(1000.0), Flags(long_entry=True),
                                                 100.0)
    assert fill.side == "buy" and fill.price == pytest.approx(101.0)
    assert fill.amount * fill.price + fill.fee == pytest.approx(1000.0)
    assert fill.fee == pytest.approx(0.001 * fill.amount * fill.price)
    assert acct.cash == 0.0 and acct.position == fill.amount and fill.realized_pnl is None


def test_exit_sells_everything_and_realises_pnl_after_both_fees():
    b = broker(fees=0.002, slippage=0.001)
    acct, buy = close_only(b, Account.opening(1000.0), Flags(long_entry=True), 100.0)
    acct, sell = close_only(b, acct, Flags(long_exit=True), 110.0)
    assert sell.side == "sell" and sell.amount == buy.amount and acct.position == 0.0
    assert sell.price == pytest.approx(110.0 * 0.999)
    expected = sell.amount * (sell.price - buy.price) - buy.fee - sell.fee
    assert sell.realized_pnl == pytest.approx(expected, rel=1e-12)
    assert acct.cash == pytest.approx(1000.0 + expected, rel=1e-12)


def test_repeated_entries_do_not_accumulate_and_conflicts_are_ignored():
    b = broker()
    acct, _ = close_only(b, Account.opening(1000.0), Flags(long_entry=True), 100.0)
    assert close_only(b, acct, Flags(long_entry=True), 90.0) == (acct, None)
    assert close_only(b, acct, Flags(long_entry=True, long_exit=True), 90.0) == (acct, None)
    flat = Account.opening(1000.0)
    assert close_only(b, flat, Flags(long_exit=True), 90.0) == (flat, None)


def test_partial_percent_and_reversal():
    acct, fill = close_only(broker(size=0.25), Account.opening(1000.0), Flags(long_entry=True),
                            10.0)
    assert fill.amount * fill.price + fill.fee == pytest.approx(250.0)
    assert acct.cash == pytest.approx(750.0)
    ls = broker(direction="longshort")
    acct, _ = close_only(ls, Account.opening(1000.0), ls.flags(True, False), 10.0)
    acct, rev = close_only(ls, acct, ls.flags(False, True), 12.0)
    assert rev.side == "sell" and acct.position < 0 and rev.realized_pnl > 0
    assert rev.amount > 99  # closes ~99.9 units and shorts about as many again
    acct, cover = close_only(ls, acct, ls.flags(True, False), 11.0)
    assert cover.side == "buy" and acct.position > 0 and cover.realized_pnl > 0


def test_account_round_trips_through_a_dict():
    b = broker(direction="longshort")
    acct, _ = close_only(b, Account.opening(1234.5), b.flags(False, True), 3.3)
    assert Account.from_dict(acct.to_dict()) == acct
    assert acct.equity(3.0) == acct.cash + acct.position * 3.0
    text = acct.to_json()  # what a bot stores: sorted keys, NaN levels null, exact floats
    assert list(json.loads(text)) == sorted(acct.to_dict())
    assert json.loads(text) == acct.to_dict()
    assert Account.from_dict(json.loads(text)) == acct


def test_an_infinite_account_value_is_refused():
    state = Account.opening(100.0).state.copy()
    state[1] = math.inf
    with pytest.raises(ValueError, match="infinite value"):
        Account(state).to_json()


@pytest.mark.parametrize("kw", [dict(size_type="lots"), dict(direction="short"),
                                dict(size=0.5, direction="longshort"), dict(fees=1.5),
                                dict(size=0)])
def test_invalid_options_are_config_errors(kw):
    with pytest.raises(ConfigError):
        broker(**kw)


class Given(BaseStrategy):
    """Replays fixed signal arrays (aligned to the candles it was built for)."""

    name = "given"

    def __init__(self, entries, exits, shorts=None) -> None:
        super().__init__()
        self._e, self._x, self._s = entries, exits, shorts

    def compute(self, candles: pd.DataFrame) -> StrategyOutput:
        n, idx = len(candles), candles.index
        out = dict(entries=pd.Series(self._e[:n], index=idx),
                   exits=pd.Series(self._x[:n], index=idx))
        if self._s is not None:
            out |= dict(short_entries=pd.Series(self._s[0][:n], index=idx),
                        short_exits=pd.Series(self._s[1][:n], index=idx))
        return StrategyOutput(**out)


accounts = st.sampled_from([
    (1.0, "percent", "long"), (0.3, "percent", "long"), (1.0, "percent", "longshort"),
    (2500.0, "value", "long"), (2500.0, "value", "longshort"), (0.07, "amount", "longshort"),
    (0.5, "amount", "long")])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**16), account=accounts, fee=st.sampled_from([0.0, 0.001, 0.01]),
       slippage=st.sampled_from([0.0, 0.0005, 0.02]), density=st.floats(0.02, 0.5),
       own_shorts=st.booleans())
def test_broker_reproduces_vectorbt_for_any_signals(seed, account, fee, slippage, density,
                                                    own_shorts):
    size, size_type, direction = account
    n = 300
    rng = np.random.default_rng(seed)
    candles = make_candles(n, seed=seed % 97, volatility=2.0)
    e, x = rng.random(n) < density, rng.random(n) < density
    shorts = (rng.random(n) < density, rng.random(n) < density) if own_shorts else None
    strategy = Given(e, x, shorts)
    result = run_backtest(strategy, candles, fees=fee, slippage=slippage, init_cash=5000.0,
                          size=size, size_type=size_type, direction=direction)
    b = PaperBroker(TradingOptions(fees=fee, slippage=slippage, size=size, size_type=size_type,
                                   direction=direction))
    acct, rows = Account.opening(5000.0), {}
    for i, ts in enumerate(candles.index):
        s = (None, None) if shorts is None else (bool(shorts[0][i]), bool(shorts[1][i]))
        acct, fill = close_only(b, acct, b.flags(bool(e[i]), bool(x[i]), *s),
                                float(candles["close"].iat[i]))
        if fill is not None:
            rows[ts] = {"side": fill.side, "price": fill.price, "amount": fill.amount,
                        "fee": fill.fee, "realized_pnl": math.nan if fill.realized_pnl is None
                        else fill.realized_pnl}
    expected = backtest_fills(result)
    if expected.empty:
        assert not rows
        return
    got = pd.DataFrame(list(rows.values()), index=pd.DatetimeIndex(list(rows), name="ts"))
    assert_same_fills(got, expected)
    assert acct.equity(float(candles["close"].iat[-1])) == pytest.approx(
        result.metrics["final_equity"], rel=1e-9)
