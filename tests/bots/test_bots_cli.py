"""``tcp-lab bots …``: list, status, logs, stop; start in the foreground (embedded) or through
a running manager (PostgreSQL + Redis)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from bots_helpers import EXCHANGE, SYMBOL, TIMEFRAME, make_config

from tcp_lab.bots import Bot, BotManager, RestartPolicy
from tcp_lab.bots.control import SHUTDOWN_REASON
from tcp_lab.cli import main
from tcp_lab.errors import ServiceError
from tcp_lab.store import open_store
from tcp_lab.testing import make_candles

ROOT = Path(__file__).parents[2]
CONFIG = {"strategy": "sma_cross", "parameters": {"fast": 3, "slow": 8}, "window_margin": 2,
          "exchange": EXCHANGE, "symbol": SYMBOL, "timeframe": TIMEFRAME, "start": "earliest"}


@pytest.fixture
def embedded(tmp_path, monkeypatch):
    """The embedded default in TCP_LAB_HOME, with one bot that traded 40 candles."""
    url = f"duckdb:///{tmp_path / 'home' / 'tcp_lab.duckdb'}"
    with open_store(url) as store:
        store.save_candles(make_candles(40, seed=1, volatility=2.0), EXCHANGE, SYMBOL, TIMEFRAME)
        Bot(make_config("alpha", **{k: v for k, v in CONFIG.items()}), store).catch_up()
    return url


def test_list_status_logs_and_stop(embedded, capsys):
    assert main(["bots", "list"]) == 0
    out = capsys.readouterr().out
    assert "alpha" in out and "sma_cross" in out and "binance BTC/USDT 1m" in out
    assert main(["bots", "status", "alpha"]) == 0
    out = capsys.readouterr().out
    assert "bot alpha: stopped" in out and "fills" in out and "equity" in out
    assert main(["bots", "logs", "alpha", "-n", "5"]) == 0
    out = capsys.readouterr().out
    assert "last 5 signals" in out and out.count("2024-01-01") >= 5
    assert main(["bots", "stop", "alpha"]) == 0
    assert "bot alpha: stopped" in capsys.readouterr().out


@pytest.mark.parametrize("failing", ["alpha", "beta"])
def test_list_shows_bots_with_and_without_an_error(embedded, capsys, failing):
    # regression: a column where one bot has a value and another none holds NaN
    with open_store(embedded) as store:
        store.upsert_bot("beta", strategy="sma_cross")
        store.update_bot(failing, status="failed",
                         last_error="CandleError: boom at 2024-01-01 00:30\ntraceback line")
    assert main(["bots", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3  # header, alpha, beta: a multi-line error stays on its row
    rows = {line.split()[0]: line for line in lines[1:]}
    assert rows[failing].endswith("CandleError: boom at 2024-01-01 00:30")
    other = ({"alpha", "beta"} - {failing}).pop()
    assert "boom" not in rows[other] and rows[other].rstrip().endswith("0")


def test_unknown_bot_is_one_line_and_exit_2(embedded, capsys):
    assert main(["bots", "status", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no bot 'nope'" in err


def test_list_without_bots(tmp_path, capsys):
    assert main(["bots", "list"]) == 0
    assert "no bots" in capsys.readouterr().out


@pytest.mark.slow
def test_start_runs_in_the_foreground_on_the_embedded_default(tmp_path):
    home = tmp_path / "home"
    url = f"duckdb:///{home / 'tcp_lab.duckdb'}"
    with open_store(url) as store:
        store.save_candles(make_candles(30, seed=2), EXCHANGE, SYMBOL, TIMEFRAME)
    configs = tmp_path / "bots"
    configs.mkdir()
    (configs / "fg.json").write_text(json.dumps(CONFIG))
    env = dict(os.environ, TCP_LAB_HOME=str(home))
    with subprocess.Popen([sys.executable, "-m", "tcp_lab", "bots", "start", "fg",
                           "--config-dir", str(configs)], cwd=ROOT, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stdout.readline().strip() == "bot fg: running"
            time.sleep(1.5)
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=30)
            assert proc.returncode == 0
        finally:
            if proc.poll() is None:
                proc.kill()
    assert "embedded default" in err
    with open_store(url) as store:
        row = store.get_bot("fg")
        assert row["status"] == "stopped" and row["last_error"] == SHUTDOWN_REASON
        signals = store.load_signals("fg")  # Ctrl-C may come before all 30 are done
        assert len(signals) >= 1 and row["last_candle_ts"] == signals.index[-1]


@pytest.mark.services
@pytest.mark.slow
def test_start_and_stop_through_a_running_manager(postgres_url, redis_url, tmp_path,
                                                  monkeypatch, capsys):
    monkeypatch.setenv("TCP_LAB_DATABASE_URL", postgres_url)
    monkeypatch.setenv("TCP_LAB_REDIS_URL", redis_url)
    with open_store(postgres_url) as store:
        store.save_candles(make_candles(30, seed=3), EXCHANGE, SYMBOL, TIMEFRAME)
    (tmp_path / "remote.json").write_text(json.dumps(CONFIG))
    policy = RestartPolicy(heartbeat_interval=0.3, hang_timeout=15.0)
    with BotManager(postgres_url, redis_url, policy=policy, poll_interval=0.2,
                    log_dir=tmp_path / "logs") as manager:
        assert manager.runner.kind == "process"
        assert main(["bots", "start", "remote", "--config-dir", str(tmp_path),
                     "--timeout", "60"]) == 0
        assert "bot remote: running" in capsys.readouterr().out
        assert list(manager.pids()) == ["remote"]
        assert main(["bots", "stop", "remote", "--timeout", "60"]) == 0
        assert "bot remote: stopped" in capsys.readouterr().out
        assert manager.pids() == {}


# -- start: confirmed by a heartbeat, or the crash reported ------------------------------------
QUICK = RestartPolicy(backoff=0.05, heartbeat_interval=0.2, hang_timeout=5.0)
# the next heartbeat comes long after the crash, and no restart before the test ends
SLOW = RestartPolicy(backoff=60.0, heartbeat_interval=20.0, hang_timeout=60.0)


@pytest.fixture
def foreground(tmp_path, monkeypatch):
    """The embedded default with quick heartbeats, a manager that stops once the start is
    reported, and a config directory; returns (store URL, config dir)."""
    monkeypatch.setattr("tcp_lab.bots.manager.RestartPolicy", lambda: QUICK)
    monkeypatch.setattr(BotManager, "serve", lambda self: None)
    configs = tmp_path / "bots"
    configs.mkdir()
    return f"duckdb:///{tmp_path / 'home' / 'tcp_lab.duckdb'}", configs


def test_start_reports_a_bot_that_crashes_on_its_first_candles(foreground, capsys,
                                                                monkeypatch):
    url, configs = foreground
    monkeypatch.setattr("tcp_lab.bots.manager.RestartPolicy", lambda: SLOW)
    candles = make_candles(30, seed=4)
    with open_store(url) as store:
        store.save_candles(candles, EXCHANGE, SYMBOL, TIMEFRAME)
    (configs / "crashy.json").write_text(json.dumps({
        **CONFIG, "strategy": "bot_strategies:FailOnCandle", "parameters": {
            "fail_at": candles.index[20].isoformat()}}))
    assert main(["bots", "start", "crashy", "--config-dir", str(configs)]) == 2
    out, err = capsys.readouterr()
    assert "running" not in out
    assert "bot crashy: crashed: " in err and "deliberate failure" in err
    assert "warning" not in err  # its series has candles
    with open_store(url) as store:
        row = store.get_bot("crashy")
    # stopped with its error: neither restarted nor restored by the next manager
    assert row["status"] == "stopped" and "deliberate failure" in row["last_error"]
    assert row["last_error"] != SHUTDOWN_REASON


def test_start_waits_for_a_heartbeat_and_warns_about_a_series_without_data(foreground,
                                                                             capsys):
    url, configs = foreground
    with open_store(url) as store:  # candles of another symbol only
        store.save_candles(make_candles(5, seed=4), EXCHANGE, SYMBOL, TIMEFRAME)
    (configs / "empty.json").write_text(json.dumps({**CONFIG, "timeframe": "5m"}))
    (configs / "typo.json").write_text(json.dumps({**CONFIG, "symbol": "BTC/USD"}))
    assert main(["bots", "start", "empty", "--config-dir", str(configs)]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines()[-1] == "bot empty: running"
    warnings = [line for line in err.splitlines() if "warning" in line]
    assert warnings == [
        "tcp-lab: warning: bot empty: no stored candles for binance BTC/USDT 5m (stored: 1m); "
        "it trades once the collector stores some (`tcp-lab collect --exchange binance "
        "--symbols BTC/USDT --timeframes 5m`)"]
    with open_store(url) as store:
        row = store.get_bot("empty")
        assert row["heartbeat"] is not None
    assert main(["bots", "start", "typo", "--config-dir", str(configs)]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines()[-1] == "bot typo: running"
    warnings = [line for line in err.splitlines() if "warning" in line]
    assert len(warnings) == 1
    assert "'BTC/USD' is not among the 1 binance symbols in the store" in warnings[0]
    assert "did you mean 'BTC/USDT'?" in warnings[0]


@pytest.mark.services
def test_start_through_a_manager_reports_the_crash(postgres_url, redis_url, tmp_path,
                                                   monkeypatch, capsys):
    monkeypatch.setenv("TCP_LAB_DATABASE_URL", postgres_url)
    monkeypatch.setenv("TCP_LAB_REDIS_URL", redis_url)
    candles = make_candles(30, seed=5)
    with open_store(postgres_url) as store:
        store.save_candles(candles, EXCHANGE, SYMBOL, TIMEFRAME)
    (tmp_path / "crashy.json").write_text(json.dumps({
        **CONFIG, "strategy": "bot_strategies:FailOnCandle", "parameters": {
            "fail_at": candles.index[20].isoformat()}}))
    (tmp_path / "fine.json").write_text(json.dumps({**CONFIG, "symbol": "ETH/USDT"}))
    with BotManager(postgres_url, redis_url, runner="thread", policy=SLOW,
                    poll_interval=0.1) as manager:
        assert main(["bots", "start", "crashy", "--config-dir", str(tmp_path)]) == 2
        out, err = capsys.readouterr()
        assert "requested start of bot crashy" in out and "running" not in out
        assert "bot crashy: crashed: " in err and "deliberate failure" in err
        assert "`tcp-lab bots logs crashy`" in err
        assert main(["bots", "stop", "crashy"]) == 0  # its restart is due in 60 s
        assert "bot crashy: stopped" in capsys.readouterr().out
    with BotManager(postgres_url, redis_url, runner="thread", policy=QUICK,
                    poll_interval=0.1) as manager:
        assert main(["bots", "start", "fine", "--config-dir", str(tmp_path)]) == 0
        out, err = capsys.readouterr()
        assert out.splitlines()[-1] == "bot fine: running"
        assert "warning: bot fine: 'ETH/USDT' is not among the 1 binance symbols" in err
        assert manager.running == ["fine"]


# -- one manager per database: the second fails before it prints anything --------------------
def test_a_second_manager_fails_before_its_banner(tmp_path, capsys):
    url = f"duckdb:///{tmp_path / 'home' / 'tcp_lab.duckdb'}"
    configs = tmp_path / "bots"
    configs.mkdir()
    (configs / "fg.json").write_text(json.dumps(CONFIG))
    with BotManager(url, "memory://") as first:
        assert main(["bots", "serve"]) == 2
        out, err = capsys.readouterr()
        assert out == "" and err.count("\n") == 1
        assert err.startswith("tcp-lab: error: ") and "bots manager lease is held by" in err
        assert main(["bots", "start", "fg", "--config-dir", str(configs)]) == 2
        out, err = capsys.readouterr()
        assert out == "" and err.count("\n") == 1 and "bots manager lease" in err
        with open_store(url) as store:
            assert store.get_bot("fg") is None  # nothing was started
        assert first.running == []
    second = BotManager(url, "memory://").acquire_lease()  # the first one's stop released it
    third = BotManager(url, "memory://")
    with pytest.raises(ServiceError, match="bots manager lease"):
        third.serve()
    assert third._owned == []  # serve() closed what it opened when it could not start
    second.stop()
