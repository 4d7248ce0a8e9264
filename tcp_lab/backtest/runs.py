"""Stored backtest runs: find, compare and reload a run later.

Each run lives in ``$TCP_LAB_HOME/backtests/<run_id>/``:

``meta.json``
    strategy, parameters, options, timeframe, symbol/exchange, data range,
    a hash of the candle data, metrics, creation time, tcp_lab version.
``trades.parquet``
    :attr:`BacktestResult.trades`.
``equity.parquet``
    ``equity`` and ``position`` per candle (tz-aware UTC index ``ts``).

Metrics that are ``nan`` are stored as ``null`` and ``±inf`` as the strings
``"inf"``/``"-inf"`` (strict JSON), and come back as floats.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tcp_lab.backtest._folders import META, read_meta, write_folder
from tcp_lab.backtest.result import BacktestResult
from tcp_lab.errors import ConfigError, DataError
from tcp_lab.settings import load_settings

__all__ = ["runs_dir", "candles_hash", "save_run", "list_runs", "load_run"]

_META = META
_TRADES = "trades.parquet"
_EQUITY = "equity.parquet"
_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def runs_dir(home: str | os.PathLike[str] | None = None) -> Path:
    """``<home>/backtests`` (``home`` defaults to ``load_settings().home``)."""
    base = Path(home) if home is not None else load_settings().home
    return base / "backtests"


def candles_hash(candles: pd.DataFrame) -> str:
    """A 16-hex-digit SHA-256 prefix of the candle times and OHLCV values.

    Equal for equal data regardless of extra columns or memory layout, so two
    runs can be checked to have used the same candles.
    """
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(candles.index.asi8).tobytes())
    for col in ("open", "high", "low", "close", "volume"):
        h.update(np.ascontiguousarray(candles[col].to_numpy(dtype=np.float64)).tobytes())
    return h.hexdigest()[:16]


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if value is pd.NaT:
        return None
    if isinstance(value, pd.Timedelta):
        return value.isoformat()  # ISO 8601 ("P0DT3H12M0S"), read back by _metric
    return value


def _metric(value: Any, name: str = "") -> Any:
    if name.endswith("_duration"):  # stored as ISO 8601 (or None: no trade)
        return pd.NaT if value is None else pd.Timedelta(value)
    if value is None:
        return math.nan
    if value in ("inf", "-inf"):
        return float(value)
    return value


def save_run(
    result: BacktestResult,
    *,
    home: str | os.PathLike[str] | None = None,
    run_id: str | None = None,
    note: str | None = None,
) -> str:
    """Store a backtest run and return its id (also set as ``result.run_id``).

    Parameters
    ----------
    result
        The result of :func:`~tcp_lab.backtest.run_backtest`.
    home
        tcp_lab home directory (default ``load_settings().home``).
    run_id
        Id to use; default ``<UTC time>-<strategy>-<6 hex digits>``.
    note
        Free text stored in ``meta.json``.

    Raises
    ------
    ConfigError
        The run id exists already or the directory cannot be written.

    Examples
    --------
    >>> run_id = save_run(result)            # doctest: +SKIP
    >>> load_run(run_id).metrics["sharpe"]   # doctest: +SKIP
    """
    from tcp_lab import __version__

    now = datetime.now(UTC)
    if run_id is None:
        run_id = f"{now:%Y%m%dT%H%M%S}-{result.strategy_name}-{os.urandom(3).hex()}"
    run_id = _SAFE.sub("_", run_id)
    root = runs_dir(home)
    target = root / run_id
    if target.exists():
        raise ConfigError(
            f"backtest run {run_id!r} exists already in {root}", hint="pick another id"
        )
    eq = result.equity
    meta = {
        "run_id": run_id,
        "created_at": now.isoformat(),
        "tcp_lab_version": __version__,
        "strategy": result.strategy_name,
        "parameters": result.parameters,
        "options": result.options,
        "exchange": result.exchange,
        "symbol": result.symbol,
        "timeframe": result.timeframe.name,
        "data": {
            "start": eq.index[0].isoformat() if len(eq) else None,
            "end": eq.index[-1].isoformat() if len(eq) else None,
            "n_candles": len(eq),
            "hash": candles_hash(result.candles) if result.candles is not None else None,
        },
        "metrics": result.metrics,
        "note": note,
    }
    frame = pd.DataFrame({"equity": eq})
    if result.position is not None:
        frame["position"] = result.position
    def write(folder: Path) -> None:
        result.trades.to_parquet(folder / _TRADES)
        frame.to_parquet(folder / _EQUITY)

    write_folder(root, run_id, _jsonable(meta), write, "backtest run")
    result.run_id = run_id
    return run_id


def _read_meta(path: Path) -> dict[str, Any]:
    return read_meta(path, "backtest run")


def list_runs(home: str | os.PathLike[str] | None = None) -> pd.DataFrame:
    """One row per stored run, oldest first: id, strategy, data, options and metrics.

    Columns: ``run_id created_at strategy parameters exchange symbol timeframe
    start end n_candles data_hash`` then the options and the metrics. Runs
    with an unreadable ``meta.json`` are skipped.

    Examples
    --------
    >>> list_runs().sort_values("sharpe").tail()   # doctest: +SKIP
    """
    root = runs_dir(home)
    rows = []
    for path in sorted(root.iterdir()) if root.is_dir() else []:
        if path.name.startswith(".") or not (path / _META).is_file():
            continue
        try:
            meta = _read_meta(path)
        except DataError:
            continue
        data = meta.get("data", {})
        rows.append(
            {
                "run_id": meta["run_id"],
                "created_at": pd.Timestamp(meta["created_at"]),
                "strategy": meta["strategy"],
                "parameters": json.dumps(meta["parameters"], sort_keys=True),
                "exchange": meta.get("exchange"),
                "symbol": meta.get("symbol"),
                "timeframe": meta.get("timeframe"),
                "start": pd.Timestamp(data["start"]) if data.get("start") else pd.NaT,
                "end": pd.Timestamp(data["end"]) if data.get("end") else pd.NaT,
                "n_candles": data.get("n_candles"),
                "data_hash": data.get("hash"),
                **meta.get("options", {}),
                **{k: _metric(v, k) for k, v in meta.get("metrics", {}).items()},
            }
        )
    if not rows:
        return pd.DataFrame(columns=["run_id", "created_at", "strategy", "parameters"])
    return pd.DataFrame(rows).sort_values(["created_at", "run_id"]).reset_index(drop=True)


def load_run(run_id: str, *, home: str | os.PathLike[str] | None = None) -> BacktestResult:
    """Reload a stored run (metrics, trades, equity; no candles or indicators).

    ``run_id`` may be a unique prefix of the id.

    Raises
    ------
    DataError
        No run (or several runs) match, or its files are unreadable.
    """
    root = runs_dir(home)
    ids = sorted(p.name for p in root.iterdir() if not p.name.startswith(".")) \
        if root.is_dir() else []
    matches = [i for i in ids if i == run_id] or [i for i in ids if i.startswith(run_id)]
    if len(matches) != 1:
        if matches:
            raise DataError(f"backtest run id {run_id!r} is ambiguous: {', '.join(matches[:5])}")
        guess = difflib.get_close_matches(run_id, ids, n=1)
        dym = f"; did you mean {guess[0]!r}?" if guess else ""
        raise DataError(
            f"no backtest run {run_id!r} in {root}{dym}",
            hint="list them with tcp_lab.backtest.runs.list_runs()",
        )
    path = root / matches[0]
    meta = _read_meta(path)
    try:
        trades = pd.read_parquet(path / _TRADES)
        frame = pd.read_parquet(path / _EQUITY)
    except (OSError, ValueError) as e:
        raise DataError(f"backtest run {path.name}: unreadable data files ({e})") from e
    return BacktestResult(
        strategy_name=meta["strategy"],
        parameters=meta["parameters"],
        options=meta["options"],
        timeframe=meta["timeframe"],
        metrics={k: _metric(v, k) for k, v in meta["metrics"].items()},
        trades=trades,
        equity=frame["equity"],
        position=frame["position"] if "position" in frame else None,
        symbol=meta.get("symbol"),
        exchange=meta.get("exchange"),
        run_id=meta["run_id"],
    )
