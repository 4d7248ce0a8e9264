"""Where batch runs execute: anything with a ``concurrent.futures``-like ``submit``.

:func:`make_executor` builds the two built-in kinds:

``"process"``
    A :class:`~concurrent.futures.ProcessPoolExecutor` (``spawn`` start
    method: safe when the caller has threads, e.g. a bus subscription in a
    Jupyter kernel). Each run also starts its own Jupyter kernel.
``"serial"``
    :class:`SerialExecutor`: each run executes at ``submit`` time, in this
    process (for debugging, and the benchmark's baseline).

:func:`tcp_lab.batch.run_batch` also takes an executor object: any object
whose ``submit(fn, *args)`` returns a future with ``done()`` and ``result()``
— e.g. a ``dask.distributed.Client`` — so runs can move to a cluster without
changing the batch code. :func:`iter_completed` waits on such futures;
:func:`is_cluster` tells a Dask client (whose runs execute on other
processes, maybe other machines, with their own working directory) from the
executors of this machine.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol, runtime_checkable

from tcp_lab.errors import ConfigError

__all__ = ["EXECUTORS", "Executor", "SerialExecutor", "make_executor", "iter_completed",
           "is_cluster"]

#: Names accepted by :func:`make_executor`.
EXECUTORS = ("process", "serial")


@runtime_checkable
class Executor(Protocol):
    """What the batch needs from an executor (``concurrent.futures`` and Dask both fit)."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """Schedule ``fn(*args, **kwargs)``; return a future (``done()``, ``result()``)."""
        ...


class SerialExecutor(cf.Executor):
    """Runs each call at ``submit`` time and returns an already finished future.

    Examples
    --------
    >>> with SerialExecutor() as ex:
    ...     ex.submit(pow, 2, 10).result()
    1024
    """

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> cf.Future:
        future: cf.Future = cf.Future()
        if future.set_running_or_notify_cancel():
            try:
                future.set_result(fn(*args, **kwargs))
            except BaseException as e:  # noqa: BLE001 - delivered through the future
                if isinstance(e, KeyboardInterrupt | SystemExit):
                    raise
                future.set_exception(e)
        return future


def make_executor(kind: str = "process", max_workers: int | None = None) -> cf.Executor:
    """Build a built-in executor.

    Parameters
    ----------
    kind
        ``"process"`` or ``"serial"``.
    max_workers
        Process pool size (default: the number of cores).

    Raises
    ------
    ConfigError
        An unknown kind or a ``max_workers`` below 1.

    Examples
    --------
    >>> ex = make_executor("serial")
    >>> ex.submit(sum, [1, 2]).result()
    3
    """
    if kind not in EXECUTORS:
        raise ConfigError(f"unknown executor {kind!r}, expected one of {EXECUTORS}",
                          hint="use 'process' (parallel) or 'serial'")
    if kind == "serial":
        return SerialExecutor()
    workers = max_workers or os.cpu_count() or 1
    if workers < 1:
        raise ConfigError(f"max_workers={max_workers!r} must be at least 1")
    return cf.ProcessPoolExecutor(max_workers=workers,
                                  mp_context=multiprocessing.get_context("spawn"))


def is_cluster(executor: Any) -> bool:
    """Whether ``executor`` is a Dask client (its runs execute on the cluster's workers).

    Tested by the class's module, so that Dask is not imported for the check.

    Examples
    --------
    >>> is_cluster(SerialExecutor()), is_cluster(None)
    (False, False)
    """
    return type(executor).__module__.partition(".")[0] == "distributed"


def iter_completed(futures: Iterable[Any], *, poll: float = 0.1) -> Iterator[Any]:
    """Yield futures as they finish (any order).

    ``concurrent.futures`` futures are waited on directly; other futures
    (e.g. Dask's) are polled through ``done()`` every ``poll`` seconds.
    """
    pending = list(futures)
    if all(isinstance(f, cf.Future) for f in pending):
        yield from cf.as_completed(pending)
        return
    while pending:
        still = []
        for f in pending:
            if f.done():
                yield f
            else:
                still.append(f)
        pending = still
        if pending:
            time.sleep(poll)
