"""A real batch on tiny data: papermill kernels in a process pool, one run failing on purpose."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from tcp_lab.batch import load_batch, run_batch
from tcp_lab.cli import main

pytestmark = pytest.mark.slow

ROOT = Path(__file__).parents[2]
NB02 = ROOT / "notebooks" / "02_backtest.ipynb"
TINY = {"strategy": "sma_cross", "source": "synthetic", "n_synthetic": 300,
        "renderer": "plotly_mimetype"}  # no plotly.js in the files: small and quick


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """An isolated TCP_LAB_HOME for the module (the autouse fixture is per test)."""
    tmp = tmp_path_factory.mktemp("batch_env")
    (tmp / "empty.json").write_text("{}")
    with pytest.MonkeyPatch.context() as mp:
        for var in ("TCP_LAB_DATABASE_URL", "TCP_LAB_REDIS_URL", "TCP_LAB_SCHEDULER"):
            mp.delenv(var, raising=False)
        mp.setenv("TCP_LAB_HOME", str(tmp / "home"))
        mp.setenv("TCP_LAB_SETTINGS_FILE", str(tmp / "empty.json"))
        yield tmp


@pytest.fixture(scope="module")
def batch(env):
    config = {
        "name": "tiny",
        "notebook": str(NB02),
        "parameters": TINY,
        "runs": [
            {"parameters": {"fast": 5, "slow": 20}},
            {"parameters": {"fast": 8, "slow": 20}, "fees": -0.5},  # run_backtest refuses
            {"parameters": {"fast": 10, "slow": 40}},
        ],
        "max_workers": 2,
    }
    return run_batch(config, progress=False)


def test_failed_run_is_reported_with_its_parameters_and_error(batch):
    assert [r.status for r in batch.records] == ["ok", "failed", "ok"]
    failed = batch.failed[0]
    assert failed.parameters["parameters"] == {"fast": 8, "slow": 20}
    assert failed.error.startswith("ConfigError: run_backtest: fees=-0.5")
    assert "(cell " in failed.error
    row = batch.summary[batch.summary["run"] == failed.name].iloc[0]
    assert row["status"] == "failed" and row["fees"] == -0.5
    assert row["error"] == failed.error
    assert batch.summary["status"].tolist() == ["ok", "ok", "failed"]  # failures last


def test_every_run_leaves_its_notebook_and_html(batch):
    for rec in batch.records:
        assert Path(rec.notebook).is_file() and Path(rec.html).is_file()
        assert Path(rec.notebook).parent == batch.output_dir / rec.name
    failed = nbformat.read(batch.failed[0].notebook, as_version=4)
    marked = [c for c in failed.cells if "An Exception was encountered" in c.source]
    assert marked, "papermill marks the failing cell"


def test_successful_runs_record_their_metrics_from_the_notebook(batch, env):
    ok = [r for r in batch.records if r.ok]
    for rec in ok:
        on_disk = json.loads((batch.output_dir / rec.name / "metrics.json").read_text())
        assert rec.metrics == on_disk["metrics"]
        assert rec.info["source"] == "synthetic" and rec.info["n_candles"] == 300
        assert rec.metrics["n_trades"] >= 0
    sharpe = batch.summary["sharpe"][:2].tolist()
    assert sharpe == sorted(sharpe, reverse=True)  # best first
    assert batch.output_dir.parent == (env / "home").resolve() / "batches" / "tiny"


def test_load_batch_reads_the_same_summary(batch):
    back = load_batch(batch.output_dir)
    assert back["run"].tolist() == batch.summary["run"].tolist()
    assert back["sharpe"].equals(batch.summary["sharpe"])


def test_cli_runs_a_batch_and_exits_1_when_a_run_failed(env, tmp_path, capsys):
    config = tmp_path / "one.json"
    config.write_text(json.dumps({
        "notebook": str(NB02), "parameters": TINY,
        "runs": [{"fees": 2.0}], "html": False,
    }))
    code = main(["batch", str(config), "--serial", "--no-progress",
                 "--output-dir", str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert code == 1
    assert "run-000" in out and "failed" in out and "ConfigError: run_backtest: fees=2" in out
    assert "synthetic" in out  # the source column
    assert (tmp_path / "out" / "summary.html").is_file()
    assert not list((tmp_path / "out" / "run-000").glob("*.html"))  # html: false


def test_cli_config_error_is_one_line_exit_2(env, tmp_path, capsys):
    config = tmp_path / "bad.json"
    config.write_text(json.dumps({"notebok": "x"}))
    assert main(["batch", str(config)]) == 2
    err = capsys.readouterr().err
    assert "unknown field 'notebok'" in err and err.count("\n") == 1


# -- candles from the store --------------------------------------------------------------
def test_a_store_batch_reads_the_stored_candles(tmp_path, monkeypatch):
    from tcp_lab.store import open_store
    from tcp_lab.testing import make_candles

    url = f"duckdb:///{tmp_path / 'stored.duckdb'}"
    with open_store(url) as store:
        store.save_candles(make_candles(400, "1m", seed=5), "binance", "BTC/USDT", "1m")
    monkeypatch.setenv("TCP_LAB_DATABASE_URL", url)
    config = {"notebook": str(NB02), "html": False, "executor": "serial",
              "parameters": {"strategy": "sma_cross", "renderer": "plotly_mimetype",
                             "parameters": {"fast": 5, "slow": 20}}}  # source: store (default)
    result = run_batch(config, output_dir=tmp_path / "out", progress=False)
    [rec] = result.records
    assert rec.ok, rec.error
    assert rec.parameters["source"] == "store"
    assert rec.info["source"] == "store" and rec.info["n_candles"] == 400


def test_the_notebook_with_source_store_fails_instead_of_falling_back(env, tmp_path):
    from tcp_lab.batch import run_one

    rec = run_one(NB02, {**TINY, "source": "store", "symbol": "NOPE/USDT"}, tmp_path / "run-000",
                  html=False)
    assert rec.status == "failed"
    assert rec.error.startswith("DataError: The store ") and "NOPE/USDT 1m" in rec.error
    assert not (tmp_path / "run-000" / "metrics.json").exists()
