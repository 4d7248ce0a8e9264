"""The summary table (order, failures), its files, load_batch, and the metrics.json contract."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from tcp_lab.batch import RunRecord, load_batch, read_metrics, record_metrics, summary_frame
from tcp_lab.batch.summary import write_summary
from tcp_lab.errors import DataError


def _rec(name, fast, sharpe=None, status="ok", error=None, **kw):
    metrics = {} if sharpe is None else {"sharpe": sharpe, "n_trades": 3}
    return RunRecord(name=name, parameters={"strategy": "sma_cross", "parameters": {"fast": fast}},
                     status=status, error=error, metrics=metrics, seconds=1.5, **kw)


RECORDS = [
    _rec("run-000", 5, 0.5, info={"source": "synthetic"}),
    _rec("run-001", 50, status="failed", error="StrategyError: fast must be less (cell 7)"),
    _rec("run-002", 10, 2.0),
    _rec("run-003", 15, math.nan),
    _rec("run-004", 20, -1.0),
]


def test_best_first_then_nan_then_failures_with_parameters_and_error():
    df = summary_frame(RECORDS, "sharpe")
    assert list(df["run"]) == ["run-002", "run-000", "run-004", "run-003", "run-001"]
    failed = df[df["status"] == "failed"].iloc[0]
    assert failed["parameters.fast"] == 50
    assert failed["error"].startswith("StrategyError")
    assert list(df.columns[:4]) == ["run", "status", "strategy", "parameters.fast"]
    assert df.attrs["parameter_columns"] == ["strategy", "parameters.fast"]
    assert {"sharpe", "n_trades", "source"} <= set(df.columns)


def test_ascending_metric_puts_smallest_first():
    df = summary_frame(RECORDS, "sharpe", ascending=True)
    assert list(df["run"][:3]) == ["run-004", "run-000", "run-002"]


def test_unknown_metric_keeps_run_order():
    df = summary_frame(RECORDS, "nope")
    assert list(df["run"]) == ["run-000", "run-002", "run-003", "run-004", "run-001"]


def test_files_and_load_batch_round_trip(tmp_path):
    root = tmp_path / "batches" / "demo" / "20240101T000000Z"
    root.mkdir(parents=True)
    recs = [RunRecord(**{**r.to_dict(), "notebook": str(root / r.name / "nb.ipynb")})
            for r in RECORDS]
    df = summary_frame(recs, "sharpe", root=root)
    assert df["notebook"].iloc[0] == "run-002/nb.ipynb"  # relative to the batch folder
    csv, page = write_summary(df, root, {"name": "demo", "metric": "sharpe",
                                         "ascending": False}, recs)
    text = page.read_text()
    assert "class='failed'" in text and "StrategyError" in text
    assert "href='run-002/nb.ipynb'" in text
    from_csv = pd.read_csv(csv)
    assert list(from_csv["run"]) == list(df["run"])
    for where in (root, root / "summary.csv", tmp_path / "batches" / "demo"):
        back = load_batch(where)
        pd.testing.assert_frame_equal(back, df)
        assert back.attrs["name"] == "demo"


def test_load_batch_picks_the_newest_of_a_name(tmp_path):
    for stamp, fast in (("20240101T000000Z", 1), ("20240102T000000Z", 2)):
        root = tmp_path / stamp
        root.mkdir()
        recs = [_rec("run-000", fast, 1.0)]
        write_summary(summary_frame(recs, "sharpe"), root, {"name": "x"}, recs)
    assert load_batch(tmp_path)["parameters.fast"].tolist() == [2]


def test_load_batch_without_a_batch_says_so(tmp_path):
    with pytest.raises(DataError, match="no batch at"):
        load_batch(tmp_path)


def test_record_metrics_round_trip_keeps_non_finite_and_numpy(tmp_path):
    path = tmp_path / "run" / "metrics.json"
    written = record_metrics(path, {"sharpe": np.float64(1.5), "pf": math.inf, "x": math.nan,
                                    "n": np.int64(3)},
                             first=pd.Timestamp("2024-01-01", tz="UTC"), source="synthetic")
    assert written == path
    data = read_metrics(path)
    assert data["metrics"]["sharpe"] == 1.5 and data["metrics"]["n"] == 3
    assert math.isinf(data["metrics"]["pf"]) and math.isnan(data["metrics"]["x"])
    assert data["first"] == "2024-01-01T00:00:00+00:00" and data["source"] == "synthetic"
    assert not list(path.parent.glob("*.tmp"))


def test_record_metrics_outside_a_batch_writes_nothing(tmp_path, monkeypatch):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    assert record_metrics("", {"sharpe": 1.0}) is None
    assert record_metrics(None, {"sharpe": 1.0}) is None
    assert not list(cwd.iterdir())


def test_record_metrics_rejects_what_json_cannot_hold(tmp_path):
    with pytest.raises(DataError, match="cannot write the run's metrics as JSON"):
        record_metrics(tmp_path / "m.json", {"x": object()})


def test_read_metrics_errors(tmp_path):
    with pytest.raises(DataError, match="do not exist"):
        read_metrics(tmp_path / "none.json")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"sharpe": 1}))
    with pytest.raises(DataError, match="expected an object with a 'metrics' object"):
        read_metrics(bad)
