"""Executors and run_batch's orchestration, with run_one replaced by a fake (no kernels)."""

from __future__ import annotations

import concurrent.futures as cf
from pathlib import Path
from typing import Any

import pytest

import tcp_lab.batch.batch as batch_module
from tcp_lab.batch import RunRecord, SerialExecutor, load_batch, make_executor, run_batch
from tcp_lab.batch.executors import iter_completed
from tcp_lab.errors import ConfigError

NB02 = Path(__file__).parents[2] / "notebooks" / "02_backtest.ipynb"
CALLS: list[dict[str, Any]] = []
DIES = 25  # the run with this fast window kills its worker


def fake_run_one(notebook, params, out_dir, **options) -> RunRecord:
    CALLS.append({"notebook": notebook, "params": params, "out_dir": out_dir, **options})
    fast = params["parameters"]["fast"]
    if fast == DIES:
        raise RuntimeError("worker died")
    Path(out_dir).mkdir(parents=True)
    return RunRecord(name=Path(out_dir).name, parameters=params, status="ok",
                     metrics={"sharpe": float(fast)})


@pytest.fixture
def fake(monkeypatch):
    CALLS.clear()
    monkeypatch.setattr(batch_module, "run_one", fake_run_one)
    return CALLS


CONFIG = {"name": "fake", "notebook": str(NB02),
          "parameters": {"strategy": "sma_cross", "source": "synthetic"},
          "grid": {"parameters.fast": [5, DIES, 20]}, "executor": "serial"}


def test_serial_executor_delivers_results_and_exceptions():
    with SerialExecutor() as ex:
        assert ex.submit(pow, 2, 5).result() == 32
        failed = ex.submit(int, "x")
        assert failed.done()
        with pytest.raises(ValueError):
            failed.result()


def test_make_executor_kinds():
    assert isinstance(make_executor("serial"), SerialExecutor)
    pool = make_executor("process", 2)
    try:
        assert isinstance(pool, cf.ProcessPoolExecutor)
    finally:
        pool.shutdown()
    with pytest.raises(ConfigError, match="unknown executor 'dask'"):
        make_executor("dask")


class _Future:
    """A future that is not a concurrent.futures.Future (like Dask's)."""

    def __init__(self, value: Any, polls: int) -> None:
        self.value, self.polls = value, polls

    def done(self) -> bool:
        self.polls -= 1
        return self.polls < 0

    def result(self) -> Any:
        return self.value


class _Client:
    def __init__(self) -> None:
        self.submitted = 0

    def submit(self, fn, *args, **kwargs):
        self.submitted += 1
        return _Future(fn(*args, **kwargs), polls=self.submitted)


def test_iter_completed_polls_foreign_futures():
    futures = [_Future(i, polls=3 - i) for i in range(3)]
    assert [f.result() for f in iter_completed(futures, poll=0.001)] == [2, 1, 0]


def test_run_batch_default_output_dir_summary_and_dead_worker(fake, tmp_path):
    result = run_batch(CONFIG, progress=False)
    home = Path(tmp_path / "home").resolve()  # TCP_LAB_HOME of the test
    assert result.output_dir.parent == home / "batches" / "fake"
    assert [r.name for r in result.records] == ["run-000", "run-001", "run-002"]
    assert [r.status for r in result.records] == ["ok", "failed", "ok"]
    assert result.failed[0].error == "RuntimeError: worker died"
    assert result.failed[0].parameters["parameters"]["fast"] == DIES
    assert list(result.summary["run"]) == ["run-002", "run-000", "run-001"]
    assert result.best["run"] == "run-002"
    assert result.summary_csv.is_file() and result.summary_html.is_file()
    assert all(c["metrics_parameter"] == "metrics_path" for c in fake)
    assert all(Path(c["out_dir"]).parent == result.output_dir for c in fake)
    back = load_batch(result.output_dir)
    assert list(back["run"]) == list(result.summary["run"])
    assert back.attrs["n_failed"] == 1 and back.attrs["executor"] == "serial"


def test_run_batch_with_a_foreign_executor_object(fake, tmp_path):
    client = _Client()
    result = run_batch({**CONFIG, "grid": {"parameters.fast": [1, 2, 3]}},
                       output_dir=tmp_path / "out", executor=client, progress=False)
    assert client.submitted == 3
    assert result.n_ok == 3
    assert load_batch(tmp_path / "out").attrs["executor"] == "_Client"


def test_run_batch_refuses_to_overwrite_a_batch(fake, tmp_path):
    run_batch(CONFIG, output_dir=tmp_path / "out", progress=False)
    with pytest.raises(ConfigError, match="holds a batch already"):
        run_batch(CONFIG, output_dir=tmp_path / "out", progress=False)


def test_two_batches_of_a_name_get_their_own_folders(fake):
    first = run_batch(CONFIG, progress=False)
    second = run_batch(CONFIG, progress=False)
    assert first.output_dir != second.output_dir
    assert first.output_dir.parent == second.output_dir.parent


def test_unknown_executor_override_is_rejected_before_anything_is_written(fake, tmp_path):
    with pytest.raises(ConfigError, match="unknown executor 'dask'"):
        run_batch(CONFIG, output_dir=tmp_path / "out", executor="dask", progress=False)
    assert not (tmp_path / "out").exists() and not fake
