"""What run_batch refuses before any kernel starts: missing series, bad strategy parameters,
an embedded store for a cluster; and the settings every run's kernel gets. run_one is a fake.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import socket
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import tcp_lab.batch.batch as batch_module
from tcp_lab.batch import RunRecord, run_batch
from tcp_lab.batch.preflight import kernel_environment, notebook_defaults
from tcp_lab.cli import main
from tcp_lab.errors import ConfigError
from tcp_lab.settings import load_settings
from tcp_lab.store import open_store
from tcp_lab.testing import make_candles

NB02 = Path(__file__).parents[2] / "notebooks" / "02_backtest.ipynb"
CALLS: list[dict[str, Any]] = []


def fake_run_one(notebook, params, out_dir, **options) -> RunRecord:
    CALLS.append({"params": params, "out_dir": out_dir, **options})
    return RunRecord(name=Path(out_dir).name, parameters=params, status="ok",
                     metrics={"sharpe": 1.0}, info={"source": params.get("source")})


@pytest.fixture
def fake(monkeypatch):
    CALLS.clear()
    monkeypatch.setattr(batch_module, "run_one", fake_run_one)
    return CALLS


@pytest.fixture
def store_url(tmp_path, monkeypatch) -> str:
    """The batch's store (TCP_LAB_DATABASE_URL): binance BTC/USDT 1m, 2024-01-01 00:01–08:20."""
    url = f"duckdb:///{tmp_path / 'lab.duckdb'}"
    with open_store(url) as store:
        store.save_candles(make_candles(500, "1m", seed=1), "binance", "BTC/USDT", "1m")
    monkeypatch.setenv("TCP_LAB_DATABASE_URL", url)
    return url


def config(**over: Any) -> dict[str, Any]:
    base = {"name": "pre", "notebook": str(NB02), "executor": "serial",
            "parameters": {"strategy": "sma_cross", "parameters": {"fast": 5, "slow": 20}}}
    return {**base, **over}


# -- which candles: store by default, synthetic when asked for ------------------------
def test_a_series_missing_from_the_store_is_an_error_before_any_kernel_starts(fake, tmp_path):
    with pytest.raises(ConfigError) as e:
        run_batch(config(grid={"parameters.fast": [5, 10]}), output_dir=tmp_path / "out",
                  progress=False)
    msg = str(e.value)
    assert "has no binance BTC/USDT 1m candles (needed by every run)" in msg
    assert "(no database file yet)" in msg and "it holds no candles" in msg
    assert '"source": "synthetic"' in msg and "tcp-lab collect" in msg
    assert "\n" not in msg
    assert not fake and not (tmp_path / "out").exists()  # no notebook executed
    assert not (tmp_path / "home" / "tcp_lab.duckdb").exists()  # nor a store created


def test_a_grid_over_series_names_each_missing_one_and_its_runs(fake, store_url, tmp_path):
    cfg = config(grid={"symbol": ["BTC/USDT", "ETH/USDT"], "timeframe": ["1m", "5m"]})
    with pytest.raises(ConfigError) as e:
        run_batch(cfg, output_dir=tmp_path / "out", progress=False)
    msg = str(e.value)
    assert store_url in msg
    assert "no binance BTC/USDT 5m candles (needed by run-001)" in msg
    assert "no binance ETH/USDT 1m candles (needed by run-002)" in msg
    assert "no binance ETH/USDT 5m candles (needed by run-003)" in msg
    assert "BTC/USDT 1m candles (" not in msg and "it holds binance BTC/USDT 1m" in msg
    assert not fake


def test_a_range_outside_the_stored_candles_is_an_error(fake, store_url, tmp_path):
    cfg = config(runs=[{"start": "2024-01-01T02:00Z"}, {"start": "2024-02-01T00:00Z"}])
    with pytest.raises(ConfigError, match=r"no binance BTC/USDT 1m candles between "
                       r"2024-02-01 00:00 UTC and … \(it holds 2024-01-01 00:01 – "
                       r"2024-01-01 08:20 UTC; needed by run-001\)"):
        run_batch(cfg, output_dir=tmp_path / "out", progress=False)
    assert not fake


def test_store_is_the_default_source_and_each_kernel_gets_the_resolved_settings(
        fake, store_url, tmp_path):
    result = run_batch(config(grid={"parameters.fast": [5, 10]}), progress=False)
    assert [c["params"]["source"] for c in fake] == ["store", "store"]
    home = str((tmp_path / "home").resolve())
    for call in fake:
        assert call["env"] == {"TCP_LAB_HOME": home, "TCP_LAB_DATABASE_URL": store_url,
                               "TCP_LAB_REDIS_URL": "memory://", "TCP_LAB_SCHEDULER": "none"}
    assert result.summary["source"].tolist() == ["store", "store"]
    manifest = json.loads((result.output_dir / "batch.json").read_text())
    assert manifest["settings"]["database_url"] == store_url and manifest["cluster"] is None


def test_settings_given_to_run_batch_are_the_ones_checked_and_shipped(fake, store_url, tmp_path,
                                                                     monkeypatch):
    monkeypatch.delenv("TCP_LAB_DATABASE_URL")  # the store is named by the argument only
    settings = load_settings(database_url=store_url, home=str(tmp_path / "elsewhere"))
    result = run_batch(config(), settings=settings, progress=False)
    assert result.output_dir.parent == (tmp_path / "elsewhere" / "batches" / "pre").resolve()
    assert fake[0]["env"]["TCP_LAB_DATABASE_URL"] == store_url
    with pytest.raises(ConfigError, match="has no binance BTC/USDT 1m candles"):
        run_batch(config(), progress=False)  # the default settings: an empty home


def test_synthetic_candles_are_used_when_asked_for_without_a_store(fake, tmp_path):
    cfg = config(parameters={"strategy": "sma_cross", "source": "synthetic"})
    result = run_batch(cfg, output_dir=tmp_path / "out", progress=False)
    assert result.n_ok == 1 and fake[0]["params"]["source"] == "synthetic"
    assert not (tmp_path / "home" / "tcp_lab.duckdb").exists()


def test_a_synthetic_run_beside_store_runs_checks_only_the_store_ones(fake, store_url, tmp_path):
    cfg = config(runs=[{"symbol": "ETH/USDT", "source": "synthetic"}, {}])
    run_batch(cfg, output_dir=tmp_path / "out", progress=False)
    assert [c["params"]["source"] for c in fake] == ["synthetic", "store"]


@pytest.mark.parametrize("value", ["auto", "exchange"])
def test_a_source_other_than_store_or_synthetic_is_refused(fake, tmp_path, value):
    cfg = config(grid={"source": ["store", value]})
    with pytest.raises(ConfigError) as e:
        run_batch(cfg, output_dir=tmp_path / "out", progress=False)
    msg = str(e.value)
    assert f"run-001: source={value!r}" in msg
    assert ("never falls back to synthetic" in msg) == (value == "auto")
    assert not fake


# -- strategy parameters --------------------------------------------------------------
def test_a_bad_parameter_combination_is_refused_before_any_run(fake, tmp_path):
    cfg = config(parameters={"strategy": "sma_cross", "source": "synthetic"},
                 grid={"parameters.fast": [5, 50, 60], "parameters.slow": [20, 40]})
    with pytest.raises(ConfigError) as e:
        run_batch(cfg, output_dir=tmp_path / "out", progress=False)
    msg = str(e.value)
    assert msg.startswith("batch config: run-002 (parameters.fast=50, parameters.slow=20): "
                          "strategy 'sma_cross': parameter 'fast' = 50 must be less than "
                          "'slow' = 20")
    assert "3 other run(s) fail too: run-003, run-004, run-005" in msg
    assert "pick fast < slow" in msg and "no run was started" in msg and "\n" not in msg
    assert not fake and not (tmp_path / "out").exists()


@pytest.mark.parametrize(("params", "expected"), [
    ({"fsat": 5}, "unknown parameter 'fsat'; did you mean 'fast'?"),
    ({"fast": -1}, "parameter 'fast' = -1 is out of range"),
])
def test_unknown_and_out_of_range_parameters_are_refused(fake, tmp_path, params, expected):
    cfg = config(parameters={"strategy": "sma_cross", "source": "synthetic"},
                 runs=[{"parameters": {"fast": 5}}, {"parameters": params}])
    with pytest.raises(ConfigError, match=r"run-001 \(runs\[1\]\): strategy 'sma_cross': ") as e:
        run_batch(cfg, output_dir=tmp_path / "out", progress=False)
    assert expected in str(e.value) and not fake


def test_an_unknown_strategy_is_refused(fake, tmp_path):
    cfg = config(parameters={"strategy": "sma_crosss", "source": "synthetic"})
    with pytest.raises(ConfigError, match="run-000: unknown strategy 'sma_crosss'; did you "
                       "mean 'sma_cross'"):
        run_batch(cfg, output_dir=tmp_path / "out", progress=False)


def test_the_notebook_default_parameters_are_checked_when_the_run_gives_none(fake, tmp_path):
    # notebook 02 defaults to {"fast": 10, "slow": 30}; papermill replaces the dict whole
    cfg = config(parameters={"strategy": "sma_cross", "source": "synthetic"})
    cfg["parameters"].pop("parameters", None)
    run_batch(cfg, output_dir=tmp_path / "ok", progress=False)
    assert "parameters" not in fake[0]["params"]
    with pytest.raises(ConfigError, match="'fast' = 40 must be less than 'slow' = 30"):
        run_batch(config(parameters={"strategy": "sma_cross", "source": "synthetic",
                                     "parameters": {"fast": 40}}),
                  output_dir=tmp_path / "bad", progress=False)


def test_cli_refuses_a_bad_combination_in_one_line_exit_2(fake, tmp_path, capsys):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(config(parameters={"strategy": "sma_cross", "source": "synthetic"},
                                      runs=[{"parameters": {"fast": 3, "slow": 2}}])))
    assert main(["batch", str(path), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"batch config {path}: run-000: strategy 'sma_cross'" in err
    assert err.count("\n") == 1 and not fake


def test_notebook_defaults_are_the_literal_ones():
    declared = {"a": {"default": '"x"'}, "b": {"default": "10_000.0"},
                "c": {"default": "None"}, "d": {"default": "os.getcwd()"}}
    assert notebook_defaults(declared) == {"a": "x", "b": 10000.0, "c": None}


# -- clusters ---------------------------------------------------------------------------
def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_duckdb_with_a_cluster_is_refused_before_connecting(fake, store_url, tmp_path,
                                                            monkeypatch):
    # nothing listens there: a connection attempt would be a ServiceError instead
    address = f"tcp://127.0.0.1:{_closed_port()}"
    monkeypatch.setenv("TCP_LAB_SCHEDULER", address)
    with pytest.raises(ConfigError) as e:
        run_batch(config(), output_dir=tmp_path / "out", progress=False)
    msg = str(e.value)
    assert f"Dask cluster {address} (TCP_LAB_SCHEDULER)" in msg
    assert f"embedded DuckDB database {store_url}" in msg
    assert "use PostgreSQL, or run the batch locally" in msg and "\n" not in msg
    assert not fake and not (tmp_path / "out").exists()


class FakeDaskClient:
    """Runs each call at submit time; its class lives in ``distributed``, like Dask's Client."""

    __module__ = "distributed.client"

    def __init__(self) -> None:
        self.scheduler = SimpleNamespace(address="tcp://10.0.0.5:8786")

    def submit(self, fn, *args, **kwargs):
        future = cf.Future()
        future.set_result(fn(*args, **kwargs))
        return future


def test_an_all_synthetic_batch_does_not_need_the_store_on_a_cluster(fake, tmp_path):
    client = FakeDaskClient()
    cfg = config(parameters={"strategy": "sma_cross", "source": "synthetic"})
    result = run_batch(cfg, output_dir=tmp_path / "out", executor=client, progress=False)
    assert result.n_ok == 1
    assert fake[0]["env"]["TCP_LAB_SCHEDULER"] == "none"  # a run computes in its own kernel
    fake.clear()
    with pytest.raises(ConfigError, match="cluster tcp://10.0.0.5:8786"):
        run_batch(config(), output_dir=tmp_path / "out2", executor=client, progress=False)
    assert not fake


def test_kernel_environment_ships_absolute_values_and_no_scheduler_to_a_cluster(tmp_path):
    s = load_settings(env={"TCP_LAB_HOME": str(tmp_path / "h"), "TCP_LAB_SCHEDULER": "local",
                           "TCP_LAB_DATABASE_URL": "postgresql://u:pw@db:5432/lab"})
    here = kernel_environment(s, cluster=False)
    there = kernel_environment(s, cluster=True)
    assert here["TCP_LAB_HOME"] == str((tmp_path / "h").resolve())
    assert here["TCP_LAB_DATABASE_URL"] == "postgresql://u:pw@db:5432/lab"
    assert here["TCP_LAB_SCHEDULER"] == "local" and there["TCP_LAB_SCHEDULER"] == "none"
    assert load_settings(env=there).database_url == s.database_url
