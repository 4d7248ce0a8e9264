"""A batch on a Dask cluster reads the client's store, whatever the workers' own settings.

The worker is a `dask worker` process started as the README's "Scaling out" says: in
another working directory, which holds a settings file of its own (an empty DuckDB
store under that directory), and without the test's ``TCP_LAB_*`` variables. Before
tcp_lab shipped the client's settings to the runs, such a run read the worker's store
(and, with ``source="auto"``, quietly fell back to synthetic candles).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tcp_lab.batch import run_batch
from tcp_lab.distributed import close_client
from tcp_lab.errors import ConfigError
from tcp_lab.store import open_store
from tcp_lab.testing import make_candles

distributed = pytest.importorskip("distributed")

pytestmark = pytest.mark.slow

NB02 = Path(__file__).parents[2] / "notebooks" / "02_backtest.ipynb"
CONFIG = {"name": "on_cluster", "notebook": str(NB02), "html": False,
          "parameters": {"strategy": "sma_cross", "renderer": "plotly_mimetype",
                         "parameters": {"fast": 5, "slow": 20}}}  # source: store (default)


@pytest.fixture(scope="module")
def worker_cluster(tmp_path_factory):
    """A scheduler here and one `dask worker` process in a directory of its own."""
    import dask

    where = tmp_path_factory.mktemp("worker")
    (where / "config").mkdir()
    (where / "config" / "settings.json").write_text(json.dumps({"home": "worker-home"}))
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        cluster = distributed.LocalCluster(n_workers=0, processes=True, host="127.0.0.1",
                                           dashboard_address=":0")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TCP_LAB_")}
    worker = subprocess.Popen(
        [sys.executable, "-m", "distributed.cli.dask_worker", cluster.scheduler_address,
         "--nthreads", "1", "--nworkers", "1", "--no-dashboard", "--host", "127.0.0.1"],
        cwd=where, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = distributed.Client(cluster, set_as_default=False)
    try:
        client.wait_for_workers(1, timeout=60)
        client.close()
        yield cluster.scheduler_address, where
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
        cluster.close()


@pytest.fixture
def on_cluster(worker_cluster, monkeypatch):
    address, where = worker_cluster
    monkeypatch.setenv("TCP_LAB_SCHEDULER", address)
    yield address, where
    close_client()


def test_the_workers_own_settings_differ_from_the_clients(worker_cluster):
    address, where = worker_cluster
    with distributed.Client(address, set_as_default=False) as client:
        seen = client.run(lambda: (os.getcwd(), os.environ.get("TCP_LAB_DATABASE_URL")))
    assert list(seen.values()) == [(str(where), None)]


@pytest.mark.services
def test_a_cluster_batch_reads_the_clients_postgresql_store(on_cluster, postgres_url, tmp_path,
                                                            monkeypatch):
    address, where = on_cluster
    with open_store(postgres_url) as store:
        store.save_candles(make_candles(600, "1m", seed=11), "binance", "BTC/USDT", "1m")
    monkeypatch.setenv("TCP_LAB_DATABASE_URL", postgres_url)

    remote = run_batch(CONFIG, output_dir=tmp_path / "cluster", progress=False)
    [rec] = remote.records
    assert rec.ok, rec.error
    manifest = json.loads((remote.output_dir / "batch.json").read_text())
    assert manifest["executor"] == "Client" and manifest["cluster"] == address
    assert rec.info["source"] == "store" and rec.info["n_candles"] == 600
    assert Path(rec.notebook).parent == tmp_path / "cluster" / "run-000"  # where we expect it
    assert not (where / "worker-home").exists()  # the worker's settings were not used

    monkeypatch.delenv("TCP_LAB_SCHEDULER")
    local = run_batch(CONFIG, output_dir=tmp_path / "local", executor="serial", progress=False)
    [here] = local.records
    assert here.ok and here.info["source"] == "store"
    assert rec.metrics == here.metrics and rec.metrics["n_trades"] > 0


def test_duckdb_with_the_cluster_is_refused_before_anything_is_submitted(
        worker_cluster, tmp_path, monkeypatch):
    address, _ = worker_cluster
    with distributed.Client(address, set_as_default=False) as client:
        submitted = []
        monkeypatch.setattr(client, "submit", lambda *a, **k: submitted.append(a))
        with pytest.raises(ConfigError, match="use PostgreSQL, or run the batch locally"):
            run_batch(CONFIG, output_dir=tmp_path / "out", executor=client, progress=False)
    assert not submitted and not (tmp_path / "out").exists()
