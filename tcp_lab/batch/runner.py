"""One batch run: execute a notebook with papermill, export it to HTML, read its metrics.

:func:`run_one` is a pure function of picklable arguments that never raises
for a failing notebook: whatever happens comes back as a :class:`RunRecord`,
so any executor (a process pool today, Dask later) can run it.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tcp_lab.batch.config import METRICS_PARAMETER
from tcp_lab.batch.record import read_metrics
from tcp_lab.errors import DataError

__all__ = ["RunRecord", "run_one", "failed_record"]

log = logging.getLogger("tcp_lab.batch")

#: Keeps the kernel's own log (start-up warnings, the interrupt jupyter_client sends
#: before a shutdown) out of the batch's terminal output; cell errors reach the record.
_KERNEL_ARGS = ["--IPKernelApp.log_level=CRITICAL"]
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


@dataclass(frozen=True)
class RunRecord:
    """What one run left behind.

    Attributes
    ----------
    name
        Run folder name, e.g. ``run-003``.
    parameters
        The parameters the notebook was given (without ``metrics_path``).
    status
        ``"ok"`` or ``"failed"``.
    error
        For a failed run: ``"StrategyError: ... (cell 7)"``; else ``None``.
    notebook
        The executed notebook (papermill marks the failing cell), or ``None``
        when execution never started.
    html
        Its HTML export, or ``None``.
    metrics
        What the notebook recorded (:func:`~tcp_lab.batch.record.record_metrics`).
    info
        The other facts it recorded (data source, candle count…).
    seconds
        Wall-clock time of the run.
    note
        Anything else worth knowing (e.g. the HTML export failed).
    """

    name: str
    parameters: dict[str, Any]
    status: str
    error: str | None = None
    notebook: str | None = None
    html: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    note: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the notebook ran to the end."""
        return self.status == "ok"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict of the record."""
        return asdict(self)


def failed_record(name: str, parameters: dict[str, Any], error: BaseException | str,
                  seconds: float = 0.0) -> RunRecord:
    """A record for a run that could not even start (or whose worker died)."""
    text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    return RunRecord(name=name, parameters=dict(parameters), status="failed",
                     error=_first_line(text), seconds=seconds)


def _first_line(text: str) -> str:
    text = _ANSI.sub("", str(text)).strip()
    return text.splitlines()[0] if text else text


def _export_html(notebook: Path, assets_dir: Path) -> tuple[Path | None, str | None]:
    try:
        from tcp_lab.reports.notebook_html import export_notebook_html

        return export_notebook_html(notebook, assets_dir=assets_dir), None
    except Exception as e:  # noqa: BLE001 - a failed export must not lose the run
        log.warning("HTML export of %s failed: %s", notebook, e)
        return None, f"HTML export failed: {type(e).__name__}: {_first_line(str(e))}"


def _kernel_manager_class(env: Mapping[str, str]) -> type:
    """A Jupyter kernel manager whose kernels start with ``env`` over this process's environment.

    nbclient starts the kernel through ``kernel_manager_class``; papermill has no other way
    to give the kernel an environment, and changing ``os.environ`` would race with the
    other runs a Dask worker executes in its threads.
    """
    from jupyter_client.manager import AsyncKernelManager

    extra = {str(k): str(v) for k, v in env.items()}

    class _KernelManager(AsyncKernelManager):
        async def start_kernel(self, **kw: Any) -> None:  # type: ignore[override]
            kw["env"] = {**os.environ, **(kw.get("env") or {}), **extra}
            await super().start_kernel(**kw)

    return _KernelManager


def run_one(
    notebook: str | os.PathLike[str],
    params: dict[str, Any],
    out_dir: str | os.PathLike[str],
    *,
    kernel_name: str | None = None,
    timeout: float | None = None,
    html: bool = True,
    metrics_parameter: str | None = METRICS_PARAMETER,
    cwd: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    assets_dir: str | os.PathLike[str] | None = None,
) -> RunRecord:
    """Execute ``notebook`` with ``params`` into ``out_dir``; never raises for a failing run.

    Parameters
    ----------
    notebook
        The notebook to run (it needs a cell tagged ``parameters``).
    params
        Parameter values (JSON-able) papermill injects after that cell.
    out_dir
        The run's own folder (created): it receives the executed notebook,
        its HTML export and ``metrics.json``. Its name names the run.
    kernel_name
        Jupyter kernel (default: the notebook's).
    timeout
        Seconds one cell may run (default: no limit).
    html
        Export the executed notebook to HTML (also when it failed).
    metrics_parameter
        Notebook parameter set to ``out_dir/metrics.json`` (``None``: set none).
    cwd
        Working directory of the kernel (default: this process's).
    env
        Environment variables the kernel gets over this process's, e.g. the
        client's resolved ``TCP_LAB_*`` settings when the run executes on a
        Dask worker (see :func:`tcp_lab.batch.preflight.kernel_environment`).
    assets_dir
        Folder of the ``plotly.min.js`` the HTML export loads with a relative ``src``
        (default: ``out_dir``); a batch passes its own folder, so its runs share one copy.

    Returns
    -------
    RunRecord
        ``status="failed"`` with the error and the failing cell when the
        notebook raised, timed out or its kernel died.

    Examples
    --------
    >>> rec = run_one("notebooks/02_backtest.ipynb", {"strategy": "sma_cross"},
    ...               "/tmp/batch/run-000")              # doctest: +SKIP
    >>> rec.status, rec.metrics["sharpe"]                # doctest: +SKIP
    """
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    started = time.perf_counter()
    src = Path(notebook)
    out = Path(out_dir)
    name = out.name
    out.mkdir(parents=True, exist_ok=True)
    executed = out / src.name
    metrics_file = out / "metrics.json"
    injected = dict(params)
    if metrics_parameter:
        injected[metrics_parameter] = str(metrics_file)
    error: str | None = None
    engine: dict[str, Any] = {}
    if env:
        engine["kernel_manager_class"] = _kernel_manager_class(env)
    try:
        pm.execute_notebook(
            str(src), str(executed), parameters=injected, kernel_name=kernel_name,
            progress_bar=False, execution_timeout=timeout, cwd=None if cwd is None else str(cwd),
            extra_arguments=_KERNEL_ARGS, **engine,
            store_widget_state=False,  # MBs of widget models no export can use
        )
    except PapermillExecutionError as e:
        where = f" (cell {e.exec_count})" if e.exec_count is not None else ""
        error = f"{e.ename}: {_first_line(e.evalue)}{where}"
    except Exception as e:  # noqa: BLE001 - timeouts, dead kernels, missing kernels…
        error = f"{type(e).__name__}: {_first_line(str(e))}"
    note = None
    html_path = None
    if html and executed.is_file():
        html_path, note = _export_html(executed, Path(assets_dir) if assets_dir else out)
    recorded: dict[str, Any] = {}
    if metrics_file.is_file():
        try:
            recorded = read_metrics(metrics_file)
        except DataError as e:
            note = "; ".join(filter(None, [note, str(e)]))
    elif error is None and metrics_parameter:
        note = "; ".join(filter(None, [note, "the notebook recorded no metrics"]))
    metrics = recorded.pop("metrics", {})
    return RunRecord(
        name=name,
        parameters=dict(params),
        status="failed" if error else "ok",
        error=error,
        notebook=str(executed) if executed.is_file() else None,
        html=str(html_path) if html_path else None,
        metrics=metrics,
        info=recorded,
        seconds=time.perf_counter() - started,
        note=note,
    )
