"""Can a Dask cluster run this strategy? Ask before submitting anything.

A strategy class travels to the Dask workers in one of two ways: a class
defined in the notebook or script itself (``__main__``) travels by value
(cloudpickle), and any other one by reference (its module and name), which the
scheduler and every worker must then be able to import. When they cannot,
Dask fails with "Error during deserialization of the task graph", naming
neither the module nor the fix, and a worker that cannot import it may exit
altogether. :func:`check_importable` asks the scheduler and the workers to
import the module first (``Client.run``) and fails with one line that names
the module, where it is missing and what to do.
"""

from __future__ import annotations

import importlib
from typing import Any

from tcp_lab.errors import ConfigError

__all__ = ["check_importable"]

_ALWAYS_THERE = ("tcp_lab", "builtins")  # installed wherever tcp_lab runs


def _try_import(module: str) -> str | None:
    """Run on the scheduler and on each worker: None, or why ``module`` cannot be imported."""
    try:
        importlib.import_module(module)
    except BaseException as e:  # noqa: BLE001 - report any failure as text
        return f"{type(e).__name__}: {e}"
    return None


def check_importable(client: Any, cls: type) -> None:
    """Raise a one-line :class:`ConfigError` unless the scheduler and every worker of
    ``client`` can import the module of ``cls`` (nothing to check for ``__main__``).

    Examples
    --------
    >>> check_importable(client, MyCross)  # doctest: +SKIP
    """
    module = cls.__module__
    if module == "__main__" or module.split(".")[0] in _ALWAYS_THERE:
        return
    problems: dict[str, str] = {}
    try:
        error = client.run_on_scheduler(_try_import, module)
    except Exception as e:  # noqa: BLE001 - a scheduler that cannot even run this
        error = f"{type(e).__name__}: {e}"
    if error:
        problems["the scheduler"] = error
    answers = client.run(_try_import, module, on_error="return")
    for worker, answer in sorted(answers.items()):
        if isinstance(answer, BaseException):
            answer = f"{type(answer).__name__}: {answer}"
        if answer:
            problems[f"worker {worker}"] = answer
    if not problems:
        return
    where, why = next(iter(problems.items()))
    others = f" and {len(problems) - 1} more" if len(problems) > 1 else ""
    raise ConfigError(
        f"strategy {module}.{cls.__qualname__}: module {module!r} cannot be imported on "
        f"{where}{others} ({why})",
        hint=f"install it on the scheduler and every worker, upload it with "
        f"client.upload_file('{module.replace('.', '/')}.py'), or define the class in the "
        "notebook or script itself")
