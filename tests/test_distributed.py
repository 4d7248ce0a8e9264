"""Sweeps on a Dask cluster: same frame as in process; the setting; errors that say what to do.

One LocalCluster (2 single-threaded worker processes on loopback) serves the
whole module; tests reach it the way a user does, through ``TCP_LAB_SCHEDULER``.
"""

from __future__ import annotations

import importlib
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tcp_lab.backtest.param_sweep import sweep
from tcp_lab.distributed import (
    Task,
    close_client,
    get_executor,
    run_tasks,
    worker_threads,
)
from tcp_lab.errors import ConfigError, ServiceError, StrategyError
from tcp_lab.settings import load_settings
from tcp_lab.strategies import BaseStrategy, Parameter, StrategyOutput, get_strategy
from tcp_lab.testing import make_candles

distributed = pytest.importorskip("distributed")

# attrs that say how and where a sweep ran, not what it found
RUN_ATTRS = ("elapsed_s", "deflate_s", "combos_per_s", "n_chunks", "scheduler")


class FailsAtThree(BaseStrategy):
    """Generic-path strategy whose compute() raises for ``x == 3`` (workers import it)."""

    name = "fails_at_three"
    parameters = (Parameter("x", int, 1, min=1, max=10, step=1),)

    def compute(self, candles: pd.DataFrame) -> StrategyOutput:
        if self.params["x"] == 3:
            raise ValueError("x=3 is cursed")
        close = candles["close"]
        return StrategyOutput(entries=close > close.shift(self.params["x"]),
                              exits=close < close.shift(self.params["x"]), indicators={})


def numba_threads() -> int:
    import numba

    return numba.get_num_threads()


def exit_worker() -> None:
    os._exit(3)


@pytest.fixture(scope="module")
def cluster():
    """Two single-threaded worker processes; a task that kills its worker fails at once."""
    import dask

    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        lc = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                      host="127.0.0.1", dashboard_address=":0")
    yield lc
    lc.close()


@pytest.fixture
def on_cluster(cluster, monkeypatch):
    """``TCP_LAB_SCHEDULER`` pointed at the module's cluster (the ``tcp://`` path)."""
    monkeypatch.setenv("TCP_LAB_SCHEDULER", cluster.scheduler_address)
    yield cluster.scheduler_address
    close_client()


@pytest.fixture(scope="module")
def candles() -> pd.DataFrame:
    return make_candles(4000, seed=7)


def assert_same_sweep(local: pd.DataFrame, remote: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(local, remote, check_exact=True)
    assert list(local.index) == list(remote.index)  # same order, row for row
    drop = {k: v for k, v in local.attrs.items() if k not in RUN_ATTRS}
    assert drop == {k: v for k, v in remote.attrs.items() if k not in RUN_ATTRS}


CASES = {
    "sma_cross fused": ("sma_cross", {"fast": range(3, 30, 2), "slow": range(10, 60, 4)}, {}),
    "ema_cross fused longshort holdout": (
        "ema_cross", {"fast": [3, 5, 8, 13], "slow": [21, 34, 55]},
        {"direction": "longshort", "holdout": 0.3}),
    "rsi_reversion generic holdout next_open": (
        "rsi_reversion", {"period": [7, 14, 21], "lower": [20.0, 30.0], "upper": [70.0, 80.0]},
        {"holdout": 0.4, "price": "next_open"}),
}


# -- the sweep on a cluster equals the sweep in process ---------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("chunk_size", [None, 5])
@pytest.mark.parametrize("case", list(CASES))
def test_sweep_on_cluster_equals_in_process(case, chunk_size, candles, on_cluster,
                                            monkeypatch):
    name, grid, kwargs = CASES[case]
    remote = sweep(name, candles, grid, chunk_size=chunk_size, progress=False, **kwargs)
    assert remote.attrs["scheduler"] == on_cluster
    if chunk_size:
        assert remote.attrs["n_chunks"] > 2  # really spread over both workers
    monkeypatch.delenv("TCP_LAB_SCHEDULER")
    local = sweep(name, candles, grid, progress=False, **kwargs)
    assert local.attrs["scheduler"] is None
    assert_same_sweep(local, remote)


@pytest.mark.parametrize(("n_bars", "threads", "smallest", "at_least"), [
    (1_000_000, 2, 10, 8),   # memory caps chunks at 16 x 16; >= 4 per thread
    (100_000, 2, 100, 8),    # >= 4 tasks per thread
    (1_000_000, 64, 10, 200),  # many threads: small tasks, but >= ~0.1 s each
    (5_000_000, 2, 2, 8),
])
def test_cluster_chunking_spreads_the_grid_without_tiny_tasks(n_bars, threads, smallest,
                                                              at_least):
    sweep_module = importlib.import_module("tcp_lab.backtest.param_sweep")
    cls = type(get_strategy("sma_cross"))
    combos = cls.parameter_grid(fast=range(5, 105), slow=range(20, 220, 2))
    assert len(combos) == 8151
    options = {"direction": "long"}
    _, local = sweep_module._chunks(cls, combos, n_bars, options, None)
    _, chunks = sweep_module._chunks(cls, combos, n_bars, options, None, threads)
    sizes = [len(c) for c in chunks]
    assert np.array_equal(np.sort(np.concatenate(chunks)), np.arange(len(combos)))
    assert len(chunks) >= at_least
    assert max(sizes) <= max(len(c) for c in local)  # never above the memory bound
    assert min(sizes[:-1]) >= smallest  # the last chunk takes the remainder


def test_tiny_sweep_on_a_cluster_is_one_task():
    sweep_module = importlib.import_module("tcp_lab.backtest.param_sweep")
    cls = type(get_strategy("rsi_reversion"))
    combos = cls.parameter_grid(period=[7, 14], lower=[20.0, 30.0], upper=[70.0, 80.0])
    _, chunks = sweep_module._chunks(cls, combos, 5000, {"direction": "long"}, None, 8)
    assert len(chunks) == 1


# -- the setting ------------------------------------------------------------------------
def test_unset_scheduler_runs_in_process():
    assert get_executor(load_settings()) is None
    df = sweep("sma_cross", make_candles(500), {"fast": [3], "slow": [9]}, progress=False)
    assert df.attrs["scheduler"] is None


@pytest.mark.slow
def test_unset_scheduler_never_imports_dask(tmp_path):
    code = ("import sys; from tcp_lab.backtest.param_sweep import sweep; "
            "from tcp_lab.testing import make_candles; "
            "sweep('sma_cross', make_candles(500), {'fast': [3], 'slow': [9]}, progress=False); "
            "print(sorted(m for m in ('dask', 'distributed') if m in sys.modules))")
    env = {k: v for k, v in os.environ.items() if k != "TCP_LAB_SCHEDULER"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, cwd=tmp_path, check=True, timeout=120)
    assert out.stdout.strip() == "[]"


@pytest.mark.slow
def test_client_is_cached_per_process(on_cluster):
    first = get_executor()
    assert get_executor() is first
    assert worker_threads(first) == 2
    assert first.scheduler.address == on_cluster
    close_client()
    second = get_executor()
    assert second is not first and second.status == "running"


@pytest.mark.slow
def test_local_setting_starts_one_cluster_sized_to_the_machine(monkeypatch, candles):
    grid = {"fast": [3, 5, 8], "slow": [13, 21]}
    local = sweep("sma_cross", candles, grid, progress=False)
    monkeypatch.setenv("TCP_LAB_SCHEDULER", "local")
    try:
        client = get_executor()
        assert get_executor() is client
        nthreads = client.nthreads()
        assert len(nthreads) == len(os.sched_getaffinity(0))
        assert set(nthreads.values()) == {1}
        remote = sweep("sma_cross", candles, grid, progress=False, chunk_size=2)
        assert remote.attrs["scheduler"].startswith("tcp://127.0.0.1:")
        assert_same_sweep(local, remote)
    finally:
        close_client()


@pytest.mark.parametrize("value", ["tcp://host:port", "8786", "htp://host:8786", "tcp://:8786"])
def test_malformed_address_is_a_config_error_naming_the_setting(value, monkeypatch):
    monkeypatch.setenv("TCP_LAB_SCHEDULER", value)
    with pytest.raises(ConfigError, match="TCP_LAB_SCHEDULER"):
        get_executor()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.timeout(30)
def test_unreachable_scheduler_fails_at_once_naming_the_setting(monkeypatch, candles):
    monkeypatch.setenv("TCP_LAB_SCHEDULER", f"tcp://127.0.0.1:{_closed_port()}")
    with pytest.raises(ServiceError, match=r"TCP_LAB_SCHEDULER\) is unreachable") as err:
        sweep("sma_cross", candles, {"fast": [3], "slow": [9]}, progress=False)
    assert "\n" not in str(err.value)  # one line for the CLI
    assert "dask scheduler" in str(err.value)


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_silent_server_times_out_instead_of_hanging():
    """Something listens but never speaks Dask: a ServiceError after the timeout."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        settings = load_settings(scheduler=f"tcp://127.0.0.1:{port}")
        started = time.monotonic()
        with pytest.raises(ServiceError, match="did not answer within 1 s.*not a Dask scheduler"):
            get_executor(settings, timeout=1.0)
    assert time.monotonic() - started < 20  # bounded by the timeout, not the 30 s default


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_scheduler_without_workers_is_a_service_error():
    empty = distributed.LocalCluster(n_workers=0, processes=True, host="127.0.0.1",
                                     dashboard_address=":0")
    try:
        settings = load_settings(scheduler=empty.scheduler_address)
        with pytest.raises(ServiceError, match="has no worker.*dask worker"):
            get_executor(settings, timeout=1.0)
    finally:
        close_client()
        empty.close()


# -- errors from tasks ------------------------------------------------------------------
@pytest.mark.slow
def test_failing_chunk_names_its_parameters(on_cluster, candles, monkeypatch):
    grid = {"x": [1, 2, 3, 4, 5, 6]}
    with pytest.raises(StrategyError, match=r"compute\(\) failed for \{'x': 3\}") as err:
        sweep(FailsAtThree, candles, grid, chunk_size=2, progress=False)
    assert "x=3 is cursed" in str(err.value)
    notes = " ".join(getattr(err.value, "__notes__", []))
    assert "chunk 2/3 of the fails_at_three sweep" in notes
    assert "{'x': 3}" in notes and "{'x': 4}" in notes
    # the same error, word for word, as in process
    monkeypatch.delenv("TCP_LAB_SCHEDULER")
    with pytest.raises(StrategyError) as here:
        sweep(FailsAtThree, candles, grid, chunk_size=2, progress=False)
    assert str(here.value) == str(err.value)


@pytest.mark.slow
def test_run_tasks_keeps_order_and_runs_numba_single_threaded(on_cluster):
    client = get_executor()
    out = run_tasks(client, pow, [Task((2, k), f"2**{k}") for k in range(12)], progress=False)
    assert out == [2**k for k in range(12)]
    threads = run_tasks(client, numba_threads, [Task((), "probe")] * 4, progress=False)
    assert threads == [1] * 4


@pytest.mark.slow
def test_task_error_keeps_its_type_and_names_the_task(on_cluster):
    client = get_executor()
    tasks = [Task(("12",), "parse 12"), Task(("x1",), "parse x1")]
    with pytest.raises(ValueError, match="invalid literal") as err:
        run_tasks(client, int, tasks, progress=False)
    assert any("parse x1" in n for n in err.value.__notes__)


@pytest.mark.slow
def test_dead_worker_is_a_service_error_naming_the_task(on_cluster):
    client = get_executor()
    with pytest.raises(ServiceError, match="task that exits.*did not finish"):
        run_tasks(client, exit_worker, [Task((), "task that exits")], progress=False)
    client.wait_for_workers(2, timeout=60)  # the nanny restarts it for the next tests
    assert np.sum(list(client.nthreads().values())) == 2


# -- batches: `tcp-lab batch` on the cluster through the same setting -------------------
NB02 = Path(__file__).parents[1] / "notebooks" / "02_backtest.ipynb"
TINY = {"strategy": "sma_cross", "source": "synthetic", "n_synthetic": 300,
        "renderer": "plotly_mimetype"}


@pytest.mark.slow
def test_batch_on_cluster_equals_serial(on_cluster, tmp_path, capsys):
    from tcp_lab.batch import run_batch
    from tcp_lab.cli import main

    config = tmp_path / "two.json"
    config.write_text(json.dumps({
        "notebook": str(NB02), "parameters": TINY, "html": False,
        "runs": [{"parameters": {"fast": 5, "slow": 20}}, {"parameters": {"fast": 10, "slow": 40}}],
    }))
    cluster_dir = tmp_path / "cluster"
    assert main(["batch", str(config), "--no-progress", "--output-dir", str(cluster_dir)]) == 0
    assert json.loads((cluster_dir / "batch.json").read_text())["executor"] == "Client"
    serial = run_batch(config, output_dir=tmp_path / "serial", executor="serial", progress=False)
    assert [r.status for r in serial.records] == ["ok", "ok"]
    for rec in serial.records:
        remote = json.loads((cluster_dir / rec.name / "metrics.json").read_text())
        assert remote["metrics"] == rec.metrics
        assert remote["metrics"]["n_trades"] > 0


def test_a_strategy_module_the_cluster_cannot_import_fails_before_anything_runs(
        on_cluster, candles, tmp_path, monkeypatch):
    """A class from the user's own module: one line naming the module and the fix."""
    (tmp_path / "mystrat_tcp_lab_test.py").write_text(
        "from tcp_lab.strategies.sma_cross import SmaCross\n\n"
        "class MyCross(SmaCross):\n    name = 'my_cross_tcp_lab_test'\n")
    monkeypatch.syspath_prepend(str(tmp_path))  # here, not on the workers started before
    from mystrat_tcp_lab_test import MyCross

    with pytest.raises(ConfigError) as e:
        sweep(MyCross, candles, {"fast": [5], "slow": [20]}, progress=False)
    msg = str(e.value)
    # the LocalCluster's scheduler lives in this process (it can import it); the workers not
    assert "module 'mystrat_tcp_lab_test' cannot be imported on worker tcp://" in msg
    assert "and 1 more" in msg  # both workers
    assert "ModuleNotFoundError" in msg and "client.upload_file('mystrat_tcp_lab_test.py')" in msg
    assert "\n" not in msg
