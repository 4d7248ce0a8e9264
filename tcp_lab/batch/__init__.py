"""Batch runs: one notebook, many parameter sets, executed with papermill in parallel.

>>> from tcp_lab.batch import run_batch, load_batch          # doctest: +SKIP
>>> result = run_batch("config/batches/sma_demo.json")      # doctest: +SKIP
>>> result.summary.head()                                   # doctest: +SKIP
>>> load_batch(result.output_dir)                           # doctest: +SKIP

Each run leaves, in ``<output_dir>/run-NNN/``, the executed notebook (a
failing cell is marked by papermill), its HTML export and the
``metrics.json`` the notebook recorded with :func:`record_metrics`; the
batch folder gets ``summary.csv``, ``summary.html`` and ``batch.json``.
papermill and nbconvert load only when a batch runs.

Runs read the stored candles unless the config asks for ``"source":
"synthetic"``; before any kernel starts, :mod:`tcp_lab.batch.preflight` checks
that the store holds every series and that every run's strategy parameters are
valid, and every kernel gets this process's resolved settings (also on a Dask
cluster, where an embedded DuckDB store is refused).
"""

from __future__ import annotations

from tcp_lab.batch.batch import BatchResult, notebook_parameters, run_batch
from tcp_lab.batch.config import (
    DEFAULT_NOTEBOOK,
    METRICS_PARAMETER,
    BatchConfig,
    load_batch_config,
)
from tcp_lab.batch.executors import EXECUTORS, Executor, SerialExecutor, make_executor
from tcp_lab.batch.record import read_metrics, record_metrics
from tcp_lab.batch.runner import RunRecord, run_one
from tcp_lab.batch.summary import load_batch, summary_frame

__all__ = [
    "run_batch",
    "load_batch",
    "BatchResult",
    "BatchConfig",
    "load_batch_config",
    "notebook_parameters",
    "run_one",
    "RunRecord",
    "record_metrics",
    "read_metrics",
    "summary_frame",
    "Executor",
    "SerialExecutor",
    "make_executor",
    "EXECUTORS",
    "DEFAULT_NOTEBOOK",
    "METRICS_PARAMETER",
]
