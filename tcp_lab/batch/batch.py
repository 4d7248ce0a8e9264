"""Run a notebook once per parameter set, in parallel, and collect a summary.

:func:`run_batch` validates the config (every parameter name against the
notebook's ``parameters`` cell; then, in :mod:`tcp_lab.batch.preflight`, the
candles each run reads, the store holding them and every run's strategy
parameters) before anything runs, hands each run to an executor as a call of
:func:`~tcp_lab.batch.runner.run_one` whose kernel gets the batch's resolved
settings, shows a ``tqdm`` bar, and writes ``summary.csv``, ``summary.html`` and
``batch.json``.
A failing run never stops the others: it appears in the summary with its
parameters and error, and its executed notebook shows the failing cell.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from tcp_lab.batch import preflight
from tcp_lab.batch.config import METRICS_PARAMETER, BatchConfig, load_batch_config, resolve_path
from tcp_lab.batch.executors import Executor, is_cluster, iter_completed, make_executor
from tcp_lab.batch.runner import RunRecord, failed_record, run_one
from tcp_lab.batch.summary import MANIFEST, summary_frame, write_summary
from tcp_lab.errors import ConfigError
from tcp_lab.settings import Settings, load_settings, redact_url

__all__ = ["BatchResult", "run_batch", "notebook_parameters"]


@dataclass
class BatchResult:
    """The outcome of :func:`run_batch`.

    Attributes
    ----------
    name
        Batch name.
    output_dir
        Folder with one sub-folder per run, ``summary.csv``, ``summary.html``
        and ``batch.json``.
    records
        One :class:`~tcp_lab.batch.runner.RunRecord` per run, in run order.
    summary
        The summary table, best first, failures last.
    summary_csv, summary_html
        The summary files.
    seconds
        Wall-clock time of the whole batch.
    """

    name: str
    output_dir: Path
    records: list[RunRecord]
    summary: pd.DataFrame
    summary_csv: Path
    summary_html: Path
    seconds: float

    @property
    def n_ok(self) -> int:
        """Runs that completed."""
        return sum(r.ok for r in self.records)

    @property
    def failed(self) -> list[RunRecord]:
        """Runs that failed, in run order."""
        return [r for r in self.records if not r.ok]

    @property
    def best(self) -> pd.Series | None:
        """The summary row of the best successful run (``None`` if every run failed)."""
        ok = self.summary[self.summary["status"] == "ok"]
        return ok.iloc[0] if len(ok) else None

    def __repr__(self) -> str:
        return (f"<BatchResult {self.name}: {len(self.records)} run(s), {len(self.failed)} "
                f"failed, {self.seconds:.1f} s, {self.output_dir}>")

    def _repr_html_(self) -> str:
        return f"<p>{self!r}</p>" + self.summary._repr_html_()


def notebook_parameters(notebook: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """The parameters a notebook declares in its ``parameters`` cell (name -> details).

    Raises
    ------
    ConfigError
        The notebook cannot be read or has no cell tagged ``parameters``.
    """
    import papermill as pm

    try:
        declared = pm.inspect_notebook(str(notebook))
    except Exception as e:  # noqa: BLE001 - nbformat/papermill raise many kinds
        raise ConfigError(f"notebook {notebook}: cannot read its parameters ({e})") from e
    if not declared:
        raise ConfigError(
            f"notebook {notebook} has no cell tagged 'parameters'",
            hint="tag the cell that sets the defaults with 'parameters' (papermill's convention)",
        )
    return declared


def _output_dir(cfg: BatchConfig, given: str | os.PathLike[str] | None,
                settings: Settings) -> Path:
    chosen = given if given is not None else cfg.output_dir
    if chosen is not None:
        out = Path(chosen).expanduser().resolve()
        if (out / MANIFEST).exists():
            raise ConfigError(f"{cfg.where}: output dir {out} holds a batch already",
                              hint="pick another output_dir, or omit it for a new timestamped one")
        return out
    base = Path(settings.home).resolve() / "batches" / cfg.batch_name
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out, n = base / stamp, 1
    while out.exists():
        n += 1
        out = base / f"{stamp}-{n}"
    return out


def _cluster(executor: str | Executor | None, settings: Settings) -> str | None:
    """The Dask cluster the runs will execute on (for messages), or ``None`` for this machine."""
    if executor is None and settings.scheduler is not None:
        return str(redact_url(settings.scheduler))
    if is_cluster(executor):
        from tcp_lab.distributed import describe_executor

        return describe_executor(executor)  # type: ignore[arg-type]
    return None


def run_batch(
    config: str | os.PathLike[str] | Mapping[str, Any] | BatchConfig,
    *,
    output_dir: str | os.PathLike[str] | None = None,
    max_workers: int | None = None,
    executor: str | Executor | None = None,
    progress: bool = True,
    settings: Settings | None = None,
) -> BatchResult:
    """Run a notebook once per parameter set of a batch config and summarise the runs.

    Parameters
    ----------
    config
        A batch config file (``config/batches/<name>.json``), a dict with the
        same keys, or a :class:`~tcp_lab.batch.config.BatchConfig`.
    output_dir
        Overrides the config's ``output_dir`` (default
        ``$TCP_LAB_HOME/batches/<name>/<UTC timestamp>/``).
    max_workers
        Overrides the config's ``max_workers`` (default: the number of cores,
        at most one per run).
    executor
        ``"process"`` or ``"serial"`` (overrides the config), or an executor
        object (``submit(fn, *args)`` returning futures, e.g. a Dask
        ``Client``), which the caller keeps and shuts down. Default: the
        Dask cluster named by ``TCP_LAB_SCHEDULER`` when it is set
        (:mod:`tcp_lab.distributed`), else the config's executor.
    progress
        Show a ``tqdm`` progress bar.
    settings
        The settings the batch and its runs use: the store the runs read, the
        home the output goes under, the scheduler (default
        :func:`~tcp_lab.settings.load_settings`).

    Returns
    -------
    BatchResult
        Records, summary table (best first by the config's ``metric``, failed
        runs last with their error) and the files written.

    Raises
    ------
    ConfigError
        An invalid config, a missing notebook, a parameter the notebook does
        not declare, ``source`` other than ``"store"``/``"synthetic"``, a
        series a ``"store"`` run reads that the store lacks, a run whose
        strategy parameters are invalid, an embedded DuckDB store for runs on
        a Dask cluster, or an output dir that holds a batch already. Nothing
        runs then. A failing *run* does not raise: see ``result.failed``.
    ServiceError
        The store cannot be reached, or ``TCP_LAB_SCHEDULER`` is set but its
        scheduler is unreachable.

    Notes
    -----
    Every run's kernel gets the batch's resolved settings as ``TCP_LAB_*``
    environment variables (:func:`~tcp_lab.batch.preflight.kernel_environment`),
    so runs on a Dask worker read the same store as runs here, whatever the
    worker's working directory or environment.

    Examples
    --------
    >>> result = run_batch("config/batches/sma_demo.json")   # doctest: +SKIP
    >>> result.summary[["run", "status", "parameters.fast", "sharpe"]]  # doctest: +SKIP
    """
    started = time.perf_counter()
    started_at = datetime.now(UTC)
    cfg = load_batch_config(config)
    notebook = resolve_path(cfg.notebook, cfg, "notebook")
    declared = notebook_parameters(notebook)
    cfg.check_parameters(declared, notebook)
    runs = preflight.plan_runs(cfg)
    defaults = preflight.notebook_defaults(declared)
    preflight.choose_sources(cfg, runs, declared)
    preflight.check_strategies(cfg, runs, declared, defaults)
    settings = settings if settings is not None else load_settings()
    workers = max_workers or cfg.max_workers or os.cpu_count() or 1
    workers = max(1, min(workers, len(runs)))
    out = _output_dir(cfg, output_dir, settings)
    cluster = _cluster(executor, settings)
    if cluster is not None:  # before connecting to it, and before looking at the store
        preflight.check_cluster(cfg, runs, declared, settings, cluster)
    preflight.check_series(cfg, runs, defaults, settings.database_url)
    env = preflight.kernel_environment(settings, cluster=cluster is not None)
    if executor is None:  # TCP_LAB_SCHEDULER set: its Dask client (else still None)
        from tcp_lab.distributed import get_executor

        executor = get_executor(settings)
    if executor is None or isinstance(executor, str):
        kind = executor or cfg.executor
        pool, owned = make_executor(kind, workers), True
    else:  # the caller's (e.g. a Dask client): used, not shut down
        kind, pool, owned = type(executor).__name__, executor, False
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        if owned:
            pool.shutdown()
        raise ConfigError(f"{cfg.where}: cannot create output dir {out} ({e.strerror})") from e

    options = dict(kernel_name=cfg.kernel, timeout=cfg.timeout, html=cfg.html,
                   metrics_parameter=METRICS_PARAMETER if METRICS_PARAMETER in declared else None,
                   env=env, assets_dir=str(out))  # one plotly.min.js for all runs' HTML
    names = [run.name for run in runs]
    records: dict[str, RunRecord] = {}

    from tqdm.auto import tqdm

    bar = tqdm(total=len(runs), unit="run", desc=f"batch {cfg.batch_name}", disable=not progress)
    pending: dict[Any, tuple[str, dict[str, Any]]] = {}

    def collect(future: Any) -> None:
        name, params = pending.pop(future)
        try:
            records[name] = future.result()
        except Exception as e:  # noqa: BLE001 - a dead worker fails its run only
            records[name] = failed_record(name, params, e)
        bar.update(1)
        bar.set_postfix(failed=sum(not r.ok for r in records.values()), refresh=False)

    try:
        for run in runs:
            future = pool.submit(run_one, str(notebook), run.params, str(out / run.name),
                                 **options)
            pending[future] = (run.name, run.params)
            for done in [f for f in pending if f.done()]:  # a serial executor runs at submit
                collect(done)
        for future in iter_completed(list(pending)):
            collect(future)
    except BaseException:
        if owned:
            pool.shutdown(wait=False, cancel_futures=True)
        raise
    finally:
        bar.close()
    if owned:
        pool.shutdown(wait=True)

    ordered = [records[n] for n in names]
    summary = summary_frame(ordered, cfg.metric, ascending=cfg.sort_ascending, root=out)
    seconds = time.perf_counter() - started
    from tcp_lab import __version__

    manifest = {
        "name": cfg.batch_name,
        "description": cfg.description,
        "notebook": str(notebook),
        "output_dir": str(out),
        "metric": cfg.metric,
        "ascending": cfg.sort_ascending,
        "executor": kind,
        "cluster": cluster,
        "settings": settings.redacted(),  # where the runs read and wrote (no passwords)
        "max_workers": workers,
        "started_at": started_at.isoformat(),
        "seconds": seconds,
        "n_runs": len(ordered),
        "n_failed": sum(not r.ok for r in ordered),
        "tcp_lab_version": __version__,
        "config_file": str(cfg.source) if cfg.source else None,
        "config": cfg.model_dump(mode="json"),
    }
    csv, page = write_summary(summary, out, manifest, ordered)
    return BatchResult(name=cfg.batch_name, output_dir=out, records=ordered, summary=summary,
                       summary_csv=csv, summary_html=page, seconds=seconds)
