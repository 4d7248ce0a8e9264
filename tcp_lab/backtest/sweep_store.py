"""Saved sweeps: a sweep's table and its attributes under ``<home>/sweeps/<id>/``.

A sweep is what :func:`~tcp_lab.backtest.sweep` returns: one row per combination
and, in ``df.attrs``, the strategy, the metric, the segments and the deflated Sharpe
ratio's inputs. :func:`save_sweep` keeps both (``table.parquet`` and ``meta.json``)
so that a sweep can be looked at later (the dashboard shows the newest one);
:func:`load_sweep` gives the frame back with its attributes.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from tcp_lab.backtest._folders import META, read_meta, write_folder
from tcp_lab.backtest.runs import _jsonable
from tcp_lab.errors import ConfigError, DataError
from tcp_lab.settings import load_settings

__all__ = ["save_sweep", "load_sweep", "list_sweeps", "sweeps_dir"]

_META = META
_TABLE = "table.parquet"
_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def sweeps_dir(home: str | os.PathLike[str] | None = None) -> Path:
    """``<home>/sweeps`` (``home`` defaults to ``load_settings().home``)."""
    base = Path(home) if home is not None else load_settings().home
    return base / "sweeps"


def _plain(value: Any) -> Any:
    """``df.attrs`` as JSON: options objects as their fields, anything else as text."""
    if hasattr(value, "model_dump"):
        value = value.model_dump(mode="json")
    value = _jsonable(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def save_sweep(
    df: pd.DataFrame,
    *,
    home: str | os.PathLike[str] | None = None,
    label: str | None = None,
    series: str | None = None,
) -> str:
    """Store a sweep and return its id (``<UTC time>-<strategy>``).

    Parameters
    ----------
    df
        The frame :func:`~tcp_lab.backtest.sweep` returned.
    home
        tcp_lab home (default ``load_settings().home``).
    label
        Free text shown beside the sweep (e.g. what it was for).
    series
        The candles it ran on, e.g. ``"binance BTC/USDT 1m"``.

    Raises
    ------
    ConfigError
        ``df`` is not a sweep (no ``strategy`` in its attributes) or the folder
        cannot be written.

    Examples
    --------
    >>> sweep_id = save_sweep(df, series="binance BTC/USDT 1m")   # doctest: +SKIP
    >>> load_sweep(sweep_id).attrs["metric"]                      # doctest: +SKIP
    'sharpe'
    """
    strategy = df.attrs.get("strategy")
    if not strategy:
        raise ConfigError("save_sweep: the frame has no sweep attributes (df.attrs['strategy'])",
                          hint="pass the DataFrame that sweep() returned, before reshaping it")
    now = datetime.now(UTC)
    sweep_id = _SAFE.sub("_", f"{now:%Y%m%dT%H%M%S%f}-{strategy}")
    root = sweeps_dir(home)
    meta = {"sweep_id": sweep_id, "created_at": now.isoformat(), "label": label,
            "series": series, "attrs": _plain(dict(df.attrs))}
    def write(folder: Path) -> None:
        table = df.copy()
        table.attrs = {}
        table.to_parquet(folder / _TABLE)

    write_folder(root, sweep_id, meta, write, "the sweep")
    return sweep_id


def _read_meta(path: Path) -> dict[str, Any]:
    return read_meta(path, "sweep")


def list_sweeps(home: str | os.PathLike[str] | None = None) -> pd.DataFrame:
    """One row per saved sweep, newest first.

    Columns: ``sweep_id created_at strategy metric series n_combos label``. A folder
    without a readable ``meta.json`` is skipped.
    """
    root = sweeps_dir(home)
    rows = []
    for path in sorted(root.iterdir(), reverse=True) if root.is_dir() else []:
        if path.name.startswith(".") or not (path / _META).is_file():
            continue
        try:
            meta = _read_meta(path)
        except DataError:
            continue
        attrs = meta.get("attrs") or {}
        rows.append({"sweep_id": meta["sweep_id"], "created_at": meta["created_at"],
                     "strategy": attrs.get("strategy"), "metric": attrs.get("metric"),
                     "series": meta.get("series"), "n_combos": attrs.get("n_combos"),
                     "label": meta.get("label")})
    return pd.DataFrame(rows, columns=["sweep_id", "created_at", "strategy", "metric",
                                       "series", "n_combos", "label"])


def load_sweep(sweep_id: str | None = None, *,
               home: str | os.PathLike[str] | None = None) -> pd.DataFrame:
    """A saved sweep's frame with its attributes (default: the newest sweep).

    Raises
    ------
    DataError
        No such sweep (the message lists the newest ids), or none saved yet.
    """
    root = sweeps_dir(home)
    if sweep_id is None:
        saved = list_sweeps(home)
        if saved.empty:
            raise DataError(f"no saved sweeps in {root}",
                            hint="save one with tcp_lab.backtest.save_sweep(df)")
        sweep_id = saved["sweep_id"].iat[0]
    path = root / sweep_id
    if not (path / _META).is_file():
        known = list_sweeps(home)["sweep_id"].head(5).tolist()
        raise DataError(f"no sweep {sweep_id!r} in {root}",
                        hint="newest: " + (", ".join(known) or "(none)"))
    meta = _read_meta(path)
    df = pd.read_parquet(path / _TABLE)
    df.attrs = dict(meta.get("attrs") or {}, sweep_id=sweep_id, series=meta.get("series"),
                    label=meta.get("label"))
    return df
