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
            assert proc.stdout.readline().strip() == "bot fg started"
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
