"""Run tcp_lab work on a Dask cluster: the one home of ``dask``/``distributed``.

One setting decides where sweeps and batches run (``TCP_LAB_SCHEDULER``,
settings-file key ``scheduler``):

============================  ==================================================
value                         where the work runs
============================  ==================================================
unset                         in this process, as before (numba threads, a
                              process pool for batches); Dask is not imported
``local``                     a Dask ``LocalCluster`` on this machine (one
                              single-threaded worker process per core), started
                              on first use and reused by the whole process
``tcp://host:8786``           the existing Dask scheduler at that address
============================  ==================================================

:func:`get_executor` returns the ``distributed.Client`` for the setting (or
``None``), cached per process; :func:`close_client` shuts it down.
:func:`run_tasks` runs picklable calls on the cluster with a progress bar as
they complete and re-raises the first failure with the task's description.

Every task runs with numba limited to **one thread**: Dask counts a worker
thread as one core (it sets ``OMP_NUM_THREADS=1`` and friends in its worker
processes for the same reason), so the cores a cluster uses are its worker
threads; start workers with ``--nthreads`` = cores to use them all.

>>> from tcp_lab.distributed import get_executor     # doctest: +SKIP
>>> client = get_executor()   # None when TCP_LAB_SCHEDULER is unset  # doctest: +SKIP
"""

from __future__ import annotations

import atexit
import contextlib
import os
import socket
import threading
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import CancelledError
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from tcp_lab.errors import ConfigError, ServiceError
from tcp_lab.settings import Settings, load_settings, redact_url

if TYPE_CHECKING:  # pragma: no cover
    from distributed import Client, Future

__all__ = [
    "SETTING",
    "CONNECT_TIMEOUT",
    "Task",
    "get_executor",
    "close_client",
    "worker_threads",
    "broadcast",
    "run_tasks",
    "describe_executor",
]

#: The environment variable that names the scheduler (settings-file key ``scheduler``).
SETTING = "TCP_LAB_SCHEDULER"
#: Seconds to wait for a scheduler (and for its first worker) before giving up.
CONNECT_TIMEOUT = 10.0
_DEFAULT_PORT = 8786
_HINT = (f"start a scheduler (`dask scheduler`) and workers (`dask worker tcp://HOST:8786`) "
         f"from the tcp_lab environment, fix {SETTING} (settings-file key 'scheduler'), "
         f"or unset it to run in this process")


@dataclass
class _Connection:
    target: str  # the setting's value: "local" or a URL
    client: Client
    cluster: Any  # the LocalCluster we started, or None
    pid: int


_lock = threading.Lock()
_current: _Connection | None = None  # one connection per process, reused


# -- connecting -------------------------------------------------------------------------
def get_executor(settings: Settings | None = None, *,
                 timeout: float = CONNECT_TIMEOUT) -> Client | None:
    """The Dask client for the ``scheduler`` setting, or ``None`` to run in this process.

    The client is created on first use and reused by every later call in the
    same process (a different setting replaces it). It has at least one
    worker when returned.

    Parameters
    ----------
    settings
        Resolved settings (default :func:`~tcp_lab.settings.load_settings`).
    timeout
        Seconds to wait for the scheduler and for a first worker.

    Returns
    -------
    distributed.Client or None
        ``None`` when no scheduler is set. The client's ``submit``/``map``/
        ``scatter`` follow ``concurrent.futures``.

    Raises
    ------
    ConfigError
        The address is malformed (the message names ``TCP_LAB_SCHEDULER``).
    ServiceError
        The scheduler cannot be reached, or has no worker, within ``timeout``.

    Examples
    --------
    >>> get_executor(load_settings(env={})) is None
    True
    """
    global _current
    settings = settings if settings is not None else load_settings()
    target = settings.scheduler
    if target is None:
        return None
    with _lock:
        conn = _current if _current is not None and _current.pid == os.getpid() else None
        if conn is not None and conn.target == target and conn.client.status == "running":
            return conn.client
        if conn is not None:  # another setting, or the scheduler went away
            with contextlib.suppress(Exception):
                _close(conn)
        _current = None
        conn = _start_local(timeout) if target == "local" else _connect(target, timeout)
        _current = conn
        worker_threads(conn.client, timeout=timeout)
    return conn.client


def close_client() -> None:
    """Close this process's cached client (and the ``local`` cluster it started, if any).

    Safe to call when nothing is open; the next :func:`get_executor` reconnects.
    """
    global _current
    with _lock:
        conn, _current = _current, None
    if conn is not None and conn.pid == os.getpid():
        _close(conn)


atexit.register(close_client)  # a local cluster stops with the process


def _close(conn: _Connection) -> None:
    try:
        conn.client.close()
    finally:
        if conn.cluster is not None:
            conn.cluster.close()


def _address(target: str) -> tuple[str, int] | None:
    """``(host, port)`` to probe for a scheduler URL (``None`` for in-process ``inproc://``)."""
    parts = urlsplit(target)
    if parts.scheme == "inproc":
        return None
    try:
        port = parts.port or _DEFAULT_PORT
    except ValueError:
        port = -1
    if not parts.hostname or port <= 0:
        raise ConfigError(
            f"{SETTING}={redact_url(target)!r} is not a scheduler address "
            "(expected tcp://HOST:PORT)", hint="e.g. TCP_LAB_SCHEDULER=tcp://10.0.0.5:8786")
    return parts.hostname, port


def _probe(target: str, where: tuple[str, int], timeout: float) -> None:
    """Fail at once on a refused port, and in ``timeout`` on a server that is not Dask's.

    A Dask scheduler speaks first on a plain ``tcp://`` connection (its
    handshake); ``distributed`` itself waits for that handshake without a
    timeout, so a silent listener would hang the client forever.
    """
    shown = redact_url(target)
    try:
        sock = socket.create_connection(where, timeout=min(timeout, 5.0))
    except OSError as e:
        reason = e.strerror or str(e) or type(e).__name__
        raise ServiceError(f"Dask scheduler {shown} ({SETTING}) is unreachable: {reason}",
                           hint=_HINT) from e
    with sock:
        if urlsplit(target).scheme != "tcp":  # TLS/websocket: the client speaks first
            return
        sock.settimeout(timeout)
        try:
            greeting = sock.recv(1)
        except OSError as e:
            greeting, error = b"", e
        else:
            error = None
        if not greeting:
            said = (f"did not answer within {timeout:g} s" if error is not None
                    else "closed the connection without a word")
            raise ServiceError(f"Dask scheduler {shown} ({SETTING}) {said}: something "
                               "listens there, but not a Dask scheduler", hint=_HINT) from error


def _connect(target: str, timeout: float) -> _Connection:
    where = _address(target)
    shown = redact_url(target)
    if where is not None:
        _probe(target, where, timeout)
    from distributed import Client

    try:
        client = Client(target, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError) as e:
        raise ServiceError(
            f"Dask scheduler {shown} ({SETTING}) did not answer within {timeout:g} s: {e}",
            hint=_HINT) from e
    return _Connection(target, client, None, os.getpid())


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


def _start_local(timeout: float) -> _Connection:
    import logging

    from distributed import Client, LocalCluster

    # the scheduler and nannies live in this process: keep their INFO chatter out of it
    logging.getLogger("distributed").setLevel(logging.WARNING)
    try:
        cluster = LocalCluster(
            n_workers=_cores(), threads_per_worker=1, processes=True, host="127.0.0.1",
            dashboard_address=":0",  # a free port (the dashboard needs bokeh)
            silence_logs=logging.WARNING,  # the workers' logs
        )
    except Exception as e:  # noqa: BLE001 - distributed raises RuntimeError, OSError...
        raise ServiceError(f"could not start a local Dask cluster ({SETTING}=local): {e}",
                           hint="scripts need `if __name__ == '__main__':` around their "
                           f"code; or unset {SETTING} to run in this process") from e
    client = Client(cluster, timeout=timeout, set_as_default=False)
    return _Connection("local", client, cluster, os.getpid())


def worker_threads(client: Client, *, timeout: float = CONNECT_TIMEOUT) -> int:
    """Worker threads of the cluster (waits up to ``timeout`` s for a first worker).

    Raises
    ------
    ServiceError
        No worker joined within ``timeout``.
    """
    threads = sum(client.nthreads().values())
    if threads:
        return threads
    try:
        client.wait_for_workers(1, timeout=timeout)
    except (TimeoutError, OSError) as e:
        raise ServiceError(
            f"Dask scheduler {describe_executor(client)} has no worker (waited {timeout:g} s)",
            hint="start one with `dask worker SCHEDULER_ADDRESS` from the tcp_lab environment",
        ) from e
    return max(1, sum(client.nthreads().values()))


def describe_executor(client: Client | None) -> str | None:
    """The scheduler address, redacted (``None`` for in-process)."""
    return None if client is None else redact_url(client.scheduler.address)


# -- running tasks ----------------------------------------------------------------------
@dataclass(frozen=True)
class Task:
    """One call for :func:`run_tasks`.

    Attributes
    ----------
    args
        Positional arguments (picklable; Dask futures from :func:`broadcast`
        are replaced by their value on the worker).
    description
        What the task is, for progress and errors (e.g. the parameters of a chunk).
    weight
        Progress-bar steps the task is worth (e.g. combinations in a chunk).
    """

    args: tuple[Any, ...]
    description: str
    weight: int = 1


def broadcast(client: Client, value: Any) -> Future:
    """Ship ``value`` to every worker once; pass the returned future as a task argument.

    Examples
    --------
    >>> shared = broadcast(client, {"close": close})          # doctest: +SKIP
    >>> run_tasks(client, fn, [Task((shared, 1), "one")])     # doctest: +SKIP
    """
    [future] = client.scatter([value], broadcast=True, hash=False)
    return future


def _single_threaded(fn: Callable[..., Any], *args: Any) -> Any:
    """Run ``fn(*args)`` on a worker with numba's parallel regions on one thread."""
    import numba

    previous = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        return fn(*args)
    finally:
        numba.set_num_threads(previous)


def run_tasks(
    client: Client,
    fn: Callable[..., Any],
    tasks: Sequence[Task],
    *,
    desc: str = "tasks",
    unit: str = "task",
    progress: bool = True,
) -> list[Any]:
    """Run ``fn(*task.args)`` for each task on the cluster; results in task order.

    A ``tqdm`` bar advances by each task's ``weight`` as tasks complete. The
    first failure cancels the tasks still pending and is re-raised.

    Parameters
    ----------
    client
        From :func:`get_executor`.
    fn
        An importable function (it is pickled by reference).
    tasks
        The calls.
    desc, unit, progress
        Progress-bar label, unit and whether to show it.

    Returns
    -------
    list
        ``fn``'s results, in the order of ``tasks``.

    Raises
    ------
    ServiceError
        A worker died or the cluster went away during a task (the message
        names the task).
    Exception
        The exception a task raised, unchanged in type and message (tcp_lab
        errors already name what failed), with a note naming the task.

    Examples
    --------
    >>> run_tasks(client, pow, [Task((2, k), f"2**{k}") for k in range(3)])  # doctest: +SKIP
    [1, 2, 4]
    """
    from distributed import as_completed
    from tqdm.auto import tqdm

    token = uuid.uuid4().hex[:8]
    prefix = "".join(ch if ch.isalnum() else "-" for ch in desc)
    futures = [client.submit(_single_threaded, fn, *t.args, key=f"{prefix}-{token}-{i}",
                             pure=False) for i, t in enumerate(tasks)]
    position = {f.key: i for i, f in enumerate(futures)}
    results: list[Any] = [None] * len(tasks)
    try:
        with tqdm(total=sum(t.weight for t in tasks), unit=unit, desc=desc,
                  disable=not progress) as bar:
            for future in as_completed(futures, loop=client.loop):
                i = position[future.key]
                results[i] = _result(client, future, tasks[i])
                future.release()
                bar.update(tasks[i].weight)
    finally:
        pending = [f for f in futures if not f.done()]
        if pending:
            client.cancel(pending)
    return results


def _result(client: Client, future: Future, task: Task) -> Any:
    from distributed import KilledWorker

    try:
        return future.result()
    except (KilledWorker, CancelledError) as e:
        raise ServiceError(
            f"Dask cluster {describe_executor(client)}: {task.description} did not finish "
            f"({type(e).__name__}: {e})",
            hint="a worker died (out of memory?) or the scheduler went away; check the "
            "workers' logs and retry",
        ) from e
    except Exception as e:  # the task's own error: same type and message as in process
        e.add_note(f"raised on the Dask cluster by {task.description}")
        raise
