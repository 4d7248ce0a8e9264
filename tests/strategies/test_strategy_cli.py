"""``tcp-lab strategy list|check``."""

from __future__ import annotations

from tcp_lab.cli import main
from tcp_lab.strategies import get_strategy, register_strategy, registry
from tcp_lab.testing import make_candles


def test_list(capsys):
    assert main(["strategy", "list"]) == 0
    out = capsys.readouterr().out
    for name in ("sma_cross", "ema_cross", "rsi_reversion", "macd", "bollinger_breakout"):
        assert name in out
    assert "fast=10 (int in [1, 100000])" in out


def test_list_shows_a_strategy_without_docstring(capsys, monkeypatch):
    # like the README's MyCross: a user's strategy need not have a docstring
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    register_strategy(type("Undocumented", (type(get_strategy("sma_cross")),),
                           {"name": "undocumented", "__doc__": None}))
    assert main(["strategy", "list"]) == 0
    assert "undocumented" in capsys.readouterr().out


def test_check_ok(capsys):
    assert main(["strategy", "check", "sma_cross", "--parameters", '{"fast": 3, "slow": 9}',
                 "--n", "400"]) == 0
    assert capsys.readouterr().out.startswith("OK SmaCross(fast=3, slow=9)")


def test_check_peeking_exits_2_and_names_the_bar(capsys, fixtures_on_path):
    assert main(["strategy", "check", "peeking_strategies:PeekingStrategy", "--n", "400"]) == 2
    out = capsys.readouterr().out
    assert out.startswith("FAILED") and "look-ahead at 2024-01-01" in out


def test_check_with_a_candle_file(tmp_path, capsys):
    path = tmp_path / "c.parquet"
    make_candles(500, "5m").to_parquet(path)
    assert main(["strategy", "check", "bollinger_breakout", "--candles", str(path),
                 "--timeframe", "5m"]) == 0
    assert "OK" in capsys.readouterr().out


def test_check_bad_parameters_is_one_line(capsys):
    assert main(["strategy", "check", "macd", "--parameters", '{"fast": 30}']) == 2
    err = capsys.readouterr().err
    assert err.startswith("tcp-lab: error: strategy 'macd': parameter 'fast' = 30")
    assert err.count("\n") == 1
    assert main(["strategy", "check", "macd", "--parameters", "{fast"]) == 2
    assert "--parameters is not valid JSON" in capsys.readouterr().err


def test_check_on_a_stored_series(capsys):
    from tcp_lab.settings import load_settings
    from tcp_lab.store import open_store

    with open_store(load_settings().database_url) as store:
        store.save_candles(make_candles(800, "5m", seed=9), "binance", "ETH/USDT", "5m")
    assert main(["strategy", "check", "sma_cross", "--symbol", "ETH/USDT",
                 "--timeframe", "5m"]) == 0
    out = capsys.readouterr()
    assert out.out.startswith("OK SmaCross(fast=10, slow=30)")
    assert "binance ETH/USDT 5m" in out.err and "store" in out.err
    assert main(["strategy", "check", "sma_cross", "--symbol", "BTC/USDT",
                 "--timeframe", "5m"]) == 2
    assert "has no binance BTC/USDT 5m candles" in capsys.readouterr().err
    assert main(["strategy", "check", "sma_cross", "--symbol", "ETH/USDT"]) == 2
    assert "--symbol needs --timeframe" in capsys.readouterr().err
