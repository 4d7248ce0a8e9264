"""How a notebook hands its results to the batch: a ``metrics.json`` file.

A notebook run by :func:`tcp_lab.batch.run_batch` gets the parameter
``metrics_path`` (a file in its run folder) and, as its last step, calls
:func:`record_metrics` with it. Outside a batch ``metrics_path`` is empty and
nothing is written. A file (rather than output scraped from the notebook)
survives any output format, kernel or executor, and is readable on its own.

The file is one JSON object: ``{"metrics": {...}, ...info}``. Non-finite
numbers are written as ``NaN``/``Infinity`` (Python's JSON dialect, which
:func:`read_metrics` and pandas read back).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tcp_lab.errors import DataError

__all__ = ["record_metrics", "read_metrics"]


def _plain(value: Any) -> Any:
    """numpy/pandas scalars and timestamps as JSON-able Python values."""
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def record_metrics(
    path: str | os.PathLike[str] | None, metrics: Mapping[str, Any], **info: Any
) -> Path | None:
    """Write a run's metrics (and anything else worth a column) for the batch summary.

    Parameters
    ----------
    path
        The notebook's ``metrics_path`` parameter; empty or ``None``: do nothing.
    metrics
        Metric name -> number (e.g. ``BacktestResult.metrics``).
    **info
        Extra JSON-able facts about the run (data source, candle count…).

    Returns
    -------
    Path or None
        The file written.

    Raises
    ------
    DataError
        A value that cannot be written as JSON.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "metrics.json"
    >>> record_metrics(p, {"sharpe": 1.5}, source="synthetic") == p
    True
    >>> read_metrics(p)["metrics"]
    {'sharpe': 1.5}
    >>> record_metrics("", {"sharpe": 1.5}) is None
    True
    """
    if not path:
        return None
    p = Path(path)
    payload = {"metrics": dict(metrics), **info}
    try:
        text = json.dumps(payload, default=_plain, indent=2)
    except (TypeError, ValueError) as e:
        raise DataError(f"record_metrics: cannot write the run's metrics as JSON: {e}",
                        hint="pass numbers, strings, lists and dicts") from e
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(p)  # a reader never sees half a file
    return p


def read_metrics(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a ``metrics.json`` written by :func:`record_metrics`.

    Raises
    ------
    DataError
        The file is missing, not JSON, or not an object with a ``metrics`` object.
    """
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"run metrics {p} do not exist",
                        hint="the notebook must call record_metrics(metrics_path, ...)") from None
    except (OSError, json.JSONDecodeError) as e:
        raise DataError(f"run metrics {p}: unreadable ({e})") from e
    if not isinstance(data, dict) or not isinstance(data.get("metrics"), dict):
        raise DataError(f"run metrics {p}: expected an object with a 'metrics' object")
    data["metrics"] = {k: (math.nan if v is None else v) for k, v in data["metrics"].items()}
    return data
