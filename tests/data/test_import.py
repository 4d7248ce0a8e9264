"""``import_files`` / ``tcp-lab data import``: Binance dumps and generic files into the store."""

from __future__ import annotations

import re
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tcp_lab.cli import main
from tcp_lab.data._dumps import market_symbol, parse_dump_name
from tcp_lab.data.importer import import_files
from tcp_lab.errors import ConfigError, DataError
from tcp_lab.store import open_store

T0_MS = 1_704_067_200_000  # 2024-01-01 00:00 UTC


def make_trades(n: int, first_id: int = 1_000, seed: int = 0, start_ms: int = T0_MS) -> list:
    """``(id, price text, qty text, ms, is_buyer_maker)`` rows as Binance writes them."""
    rng = np.random.default_rng(seed)
    ms = start_ms + np.cumsum(rng.integers(0, 50, n))
    return [(first_id + i, f"{42_000 + rng.integers(0, 10**10) / 1e8:.8f}",
             f"{rng.integers(1, 10**8) / 1e8:.8f}", int(ms[i]), bool(rng.random() < 0.5))
            for i in range(n)]


def write(path: Path, lines: list[str], *, zipped: bool = False) -> Path:
    text = "".join(line + "\n" for line in lines)
    if not zipped:
        path.write_text(text)
        return path
    out = path.with_suffix(".zip")
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(path.name, text)
    return out


def agg_lines(trades: list, *, unit: str = "ms", header: bool = False) -> list[str]:
    scale = 1000 if unit == "us" else 1
    out = ["agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,"
           "is_buyer_maker,is_best_match"] if header else []
    out += [f"{i},{p},{q},{i * 3},{i * 3 + 2},{ms * scale},{'true' if m else 'false'},true"
            for i, p, q, ms, m in trades]
    return out


def expected(trades: list) -> pd.DataFrame:
    rows = sorted({t[0]: t for t in trades}.values(), key=lambda t: (t[3], t[0]))
    return pd.DataFrame({
        "ts": pd.to_datetime([t[3] for t in rows], unit="ms", utc=True).as_unit("us"),
        "id": np.array([t[0] for t in rows], dtype="int64"),
        "price": np.array([float(t[1]) for t in rows]),
        "amount": np.array([float(t[2]) for t in rows]),
        "side": pd.array(["sell" if t[4] else "buy" for t in rows], dtype="str"),
    })


@pytest.fixture
def store(store_url):
    s = open_store(store_url)
    yield s
    s.close()


@pytest.mark.parametrize("zipped", [False, True], ids=["csv", "zip"])
@pytest.mark.parametrize("unit", ["ms", "us"])
@pytest.mark.parametrize("header", [False, True], ids=["no-header", "header"])
def test_aggtrades_are_stored_as_in_the_file(store, tmp_path, zipped, unit, header):
    trades = make_trades(300)
    path = write(tmp_path / "BTCUSDT-aggTrades-2024-01-01.csv",
                 agg_lines(trades, unit=unit, header=header), zipped=zipped)
    summary = import_files(store, [path], exchange="binance", progress=False, chunk_rows=100)
    assert (summary.trades, summary.files[0].time_unit) == (300, unit)
    assert (summary.files[0].symbol, summary.files[0].kind) == ("BTC/USDT", "aggtrades")
    pd.testing.assert_frame_equal(store.load_raw_trades("binance", "BTC/USDT"), expected(trades))


def test_microsecond_times_keep_their_microseconds(store, tmp_path):
    line = "7,42000.12345678,0.00000001,7,7,1735689600123456,true,true"
    path = write(tmp_path / "ETHBTC-aggTrades-2025-01-01.csv", [line])
    import_files(store, [path], exchange="binance", progress=False)
    got = store.load_raw_trades("binance", "ETH/BTC")
    assert got["ts"][0] == pd.Timestamp("2025-01-01 00:00:00.123456", tz="UTC")
    assert (got["price"][0], got["amount"][0], got["side"][0]) == (42000.12345678, 1e-8, "sell")


def test_reimport_and_overlapping_files_store_each_trade_once(store, tmp_path):
    trades = make_trades(500)
    a = write(tmp_path / "BTCUSDT-aggTrades-2024-01-01.csv", agg_lines(trades[:300]))
    b = write(tmp_path / "BTCUSDT-aggTrades-2024-01-02.csv", agg_lines(trades[200:]),
              zipped=True)
    import_files(store, [a], exchange="binance", progress=False, chunk_rows=64)
    import_files(store, [a, b, a], exchange="binance", progress=False, chunk_rows=64)
    pd.testing.assert_frame_equal(store.load_raw_trades("binance", "BTC/USDT"), expected(trades))
    assert store.info()["tables"]["raw_trades"] == 500


def test_spot_trades_file_is_recognised_from_its_first_line(store, tmp_path):
    trades = make_trades(50, seed=3)
    lines = [f"{i},{p},{q},{float(p) * float(q):.8f},{ms * 1000},{'True' if m else 'False'},True"
             for i, p, q, ms, m in trades]
    path = write(tmp_path / "dump.csv", lines)
    summary = import_files(store, [path], exchange="binance", symbol="BTC/USDT",
                           progress=False)
    assert (summary.files[0].kind, summary.files[0].time_unit) == ("trades", "us")
    pd.testing.assert_frame_equal(store.load_raw_trades("binance", "BTC/USDT"), expected(trades))


@pytest.mark.parametrize("unit", ["ms", "us"])
def test_klines_are_stamped_by_close_time(store, tmp_path, unit):
    scale, minute = (1000, 60_000_000) if unit == "us" else (1, 60_000)
    rows = [(0, "100.0", "101.5", "99.5", "101.0", "2.0", "202.0", 7),
            (1, "101.0", "101.0", "101.0", "101.0", "0.0", "0.0", 0),  # no trades: dropped
            (2, "101.0", "103.0", "100.0", "102.0", "4.0", "408.0", 9)]
    t0 = T0_MS * scale
    lines = [f"{t0 + k * minute},{o},{h},{lo},{c},{v},{t0 + (k + 1) * minute - 1},{q},{n},1.0,"
             "100.0,0" for k, o, h, lo, c, v, q, n in rows]
    path = write(tmp_path / "BTCUSDT-1m-2024-01-01.csv", lines, zipped=True)
    summary = import_files(store, [path], exchange="binance", progress=False)
    assert (summary.candles, summary.trades, summary.files[0].timeframe) == (3, 0, "1m")
    got = store.load_candles("binance", "BTC/USDT", "1m")
    t0 = pd.Timestamp(T0_MS, unit="ms", tz="UTC")
    assert list(got.index) == [t0 + pd.Timedelta(minutes=1), t0 + pd.Timedelta(minutes=3)]
    assert got["close"].tolist() == [101.0, 102.0] and got["trade_count"].tolist() == [7, 9]
    assert got["vwap"].tolist() == [101.0, 102.0]


def test_klines_of_another_timeframe_are_refused(store, tmp_path):
    line = f"{T0_MS},1,1,1,1,1,{T0_MS + 299_999},1,1,1,1,0"
    path = write(tmp_path / "prices.csv", [line])
    with pytest.raises(DataError, match=r"prices\.csv line 1: the kline spans 300000 ms, not 1m"):
        import_files(store, [path], exchange="binance", symbol="BTC/USDT", kind="klines",
                     timeframe="1m", progress=False)


def _spoil(lines: list[str], line: int, field: int, value: str) -> list[str]:
    fields = lines[line - 1].split(",")
    fields[field] = value
    return [*lines[:line - 1], ",".join(fields), *lines[line:]]


@pytest.mark.parametrize(("field", "value", "message"), [
    (1, "abc", "price 'abc' is not a number"),
    (0, "12x", "id '12x' is not an integer"),
    (2, "", "amount is empty"),
    (6, "maybe", "buyer_maker 'maybe' is not true/false"),
    (5, "1704067200000123", "time 1704067200000123 is not in milliseconds"),
])
def test_a_bad_value_names_file_line_and_value(duckdb_url, tmp_path, field, value, message):
    lines = _spoil(agg_lines(make_trades(40)), 25, field, value)
    path = write(tmp_path / "BTCUSDT-aggTrades-2024-01-01.csv", lines)
    with open_store(duckdb_url) as store:
        with pytest.raises(DataError) as err:
            import_files(store, [path], exchange="binance", progress=False, chunk_rows=10)
        text = str(err.value)
        assert text.startswith(f"{path} line 25: {message}") and "\n" not in text
        # The chunks read before the bad line are stored, and the message says how many
        # (a value pyarrow cannot parse fails its whole 1 MB block: none here).
        m = re.search(r"; (?:the (\d+) rows before it are|nothing of this file is) stored", text)
        stored = int(m.group(1) or 0)
        assert stored in (0, 20)
        assert len(store.load_raw_trades("binance", "BTC/USDT")) == stored
        fixed = write(path, agg_lines(make_trades(40)))
        import_files(store, [fixed], exchange="binance", progress=False, chunk_rows=10)
        assert len(store.load_raw_trades("binance", "BTC/USDT")) == 40


def test_a_line_with_missing_fields_and_a_negative_price(duckdb_url, tmp_path):
    lines = agg_lines(make_trades(10))
    path = write(tmp_path / "BTCUSDT-aggTrades-2024-01-01.csv", [*lines[:4], "5,1.0,2.0"])
    with open_store(duckdb_url) as store:
        with pytest.raises(DataError, match=r"line 5: 3 fields, expected 8; the 0 rows|"
                                            r"line 5: 3 fields, expected 8; nothing"):
            import_files(store, [path], exchange="binance", progress=False)
        write(path, _spoil(lines, 3, 1, "-1.5"))
        with pytest.raises(DataError, match=r"negative price in 1 row\(s\): row 3 .*"
                                            r"price=-1.5"):
            import_files(store, [path], exchange="binance", progress=False)


def test_empty_and_header_only_files_import_nothing(store, tmp_path):
    empty = write(tmp_path / "BTCUSDT-aggTrades-2024-01-01.csv", [])
    header = write(tmp_path / "BTCUSDT-aggTrades-2024-01-02.csv", agg_lines([], header=True),
                   zipped=True)
    summary = import_files(store, [empty, header], exchange="binance", progress=False)
    assert [f.rows for f in summary.files] == [0, 0]
    assert store.info()["tables"]["raw_trades"] == 0


def test_symbol_and_kind_rules(store, tmp_path):
    assert market_symbol("BTCFDUSD") == "BTC/FDUSD" and market_symbol("BTCXYZ") is None
    assert parse_dump_name("ETHUSDT-trades-2025-03.zip").kind == "trades"
    plain = write(tmp_path / "data.csv", agg_lines(make_trades(3)))
    with pytest.raises(ConfigError, match="cannot tell the symbol.*--symbol"):
        import_files(store, [plain], exchange="binance", progress=False)
    named = write(tmp_path / "BTCUSDT-aggTrades-2024-01-01.csv", agg_lines(make_trades(3)))
    with pytest.raises(ConfigError, match="holds BTC/USDT by its name"):
        import_files(store, [named], exchange="binance", symbol="ETH/USDT", progress=False)
    odd = write(tmp_path / "odd.csv", ["a;b;c", "1;2;3"])
    with pytest.raises(DataError, match="cannot tell what the file holds.*--kind"):
        import_files(store, [odd], exchange="binance", symbol="BTC/USDT", progress=False)
    with pytest.raises(DataError, match="no such file"):
        import_files(store, [tmp_path / "nope.zip"], exchange="binance", progress=False)
    assert store.info()["tables"]["raw_trades"] == 0


def test_generic_csv_and_parquet(store, tmp_path):
    csv = write(tmp_path / "mine.csv", ["timestamp,price,qty,id,side",
                                        "2024-01-01T00:00:01.5Z,100.5,2,10,buy",
                                        "2024-01-01T00:00:02Z,101,1,11,SELL"])
    with pytest.raises(DataError, match="side other than 'buy'/'sell'"):
        import_files(store, [csv], exchange="x", symbol="A/B", progress=False)
    write(csv, ["timestamp,price,qty,id,side", "2024-01-01T00:00:01.5Z,100.5,2,10,buy",
                "2024-01-01T01:00:02+01:00,101,1,11,"])
    import_files(store, [csv], exchange="x", symbol="A/B", progress=False)
    got = store.load_raw_trades("x", "A/B")
    assert got["ts"].tolist() == [pd.Timestamp("2024-01-01 00:00:01.5", tz="UTC"),
                                  pd.Timestamp("2024-01-01 00:00:02", tz="UTC")]
    assert got["side"].tolist()[0] == "buy" and pd.isna(got["side"][1])
    frame = pd.DataFrame({"ts": pd.date_range("2024-02-01", periods=5, freq="s", tz="UTC"),
                          "price": [1.0, 2, 3, 4, 5], "amount": [1.0] * 5})
    frame.to_parquet(tmp_path / "t.parquet")
    for _ in range(2):  # no id column: ids are row numbers, so a re-import is idempotent
        s = import_files(store, [tmp_path / "t.parquet"], exchange="x", symbol="C/D",
                         progress=False)
    assert s.files[0].kind == "generic"
    assert store.load_raw_trades("x", "C/D")["price"].tolist() == [1.0, 2, 3, 4, 5]


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 60), st.integers(0, 2**16),
       st.lists(st.tuples(st.integers(0, 60), st.integers(0, 60), st.booleans()),
                min_size=1, max_size=5), st.integers(1, 20))
def test_any_split_of_trades_over_files_stores_their_union(n, seed, pieces, chunk_rows):
    """Random overlapping slices of a random trade list, in random files and chunks."""
    trades = make_trades(n, seed=seed)
    with tempfile.TemporaryDirectory() as tmp, open_store("duckdb:///:memory:") as store:
        paths, union = [], []
        for k, (a, b, zipped) in enumerate(pieces):
            part = trades[min(a, b):max(a, b) + 1] or trades[-1:]
            union += part
            paths.append(write(Path(tmp) / f"BTCUSDT-aggTrades-2024-01-{k + 1:02d}.csv",
                               agg_lines(part), zipped=zipped))
        import_files(store, paths, exchange="binance", progress=False, chunk_rows=chunk_rows)
        pd.testing.assert_frame_equal(store.load_raw_trades("binance", "BTC/USDT"),
                                      expected(union))


def test_cli_imports_and_reports(duckdb_url, tmp_path, capsys):
    path = write(tmp_path / "BTCUSDT-aggTrades-2024-01-01.csv", agg_lines(make_trades(30)),
                 zipped=True)
    args = ["data", "import", str(path), "--exchange", "binance", "--url", duckdb_url]
    assert main([*args, "--no-progress"]) == 0
    assert main(args) == 0  # with the progress bar (on stderr), and idempotent
    out = capsys.readouterr().out
    assert "30 trades (aggtrades, times in ms) -> binance BTC/USDT" in out
    with open_store(duckdb_url) as store:
        assert store.info()["tables"]["raw_trades"] == 30
    bad = write(tmp_path / "BTCUSDT-aggTrades-2024-01-02.csv",
                _spoil(agg_lines(make_trades(5)), 2, 1, "abc"))
    assert main(["data", "import", str(bad), "--exchange", "binance", "--url", duckdb_url,
                 "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert re.fullmatch(r"tcp-lab: error: \S+ line 2: price 'abc' is not a number; .*\n", err)
