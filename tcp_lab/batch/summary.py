"""The batch summary: one row per run, best first; written as CSV, HTML and ``batch.json``.

``batch.json`` keeps every :class:`~tcp_lab.batch.runner.RunRecord` exactly;
:func:`load_batch` rebuilds the summary from it, so a notebook reading a batch
back gets the same table :func:`~tcp_lab.batch.run_batch` returned.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from tcp_lab.batch.runner import RunRecord
from tcp_lab.errors import DataError

if TYPE_CHECKING:  # pragma: no cover
    from tcp_lab.reports.html import Report

__all__ = ["summary_frame", "write_summary", "load_batch", "MANIFEST", "SUMMARY_CSV",
           "SUMMARY_HTML"]

MANIFEST = "batch.json"
SUMMARY_CSV = "summary.csv"
SUMMARY_HTML = "summary.html"
_LEAD = ["run", "status"]
_TAIL = ["error", "note", "seconds", "notebook", "html"]


def _flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(_flatten(value, f"{name}."))
        elif isinstance(value, list | tuple | Mapping):
            out[name] = json.dumps(value)
        else:
            out[name] = value
    return out


def _relative(path: str | None, root: Path | None) -> str | None:
    if path is None or root is None:
        return path
    try:
        return str(Path(path).relative_to(root))
    except ValueError:
        return path


def summary_frame(
    records: Sequence[RunRecord],
    metric: str,
    *,
    ascending: bool = False,
    root: str | os.PathLike[str] | None = None,
) -> pd.DataFrame:
    """One row per run: parameters, metrics, recorded facts, error; best first.

    Parameters
    ----------
    records
        The runs.
    metric
        Column to sort successful runs by; failed runs follow, in run order.
        Runs without the metric (NaN) come after those with it.
    ascending
        Smaller is better (e.g. ``max_drawdown``).
    root
        Batch folder; notebook and HTML paths are shown relative to it.

    Returns
    -------
    DataFrame
        Columns ``run status``, the parameters (nested ones dotted:
        ``parameters.fast``), the metrics, the other recorded facts, then
        ``error note seconds notebook html``. ``attrs["metric"]`` names the
        sort column.
    """
    base = Path(root) if root is not None else None
    rows, params, metrics, infos = [], [], [], []
    for rec in records:
        p, m = _flatten(rec.parameters), dict(rec.metrics)
        i = {k: (json.dumps(v) if isinstance(v, list | dict) else v) for k, v in rec.info.items()}
        for cols, new in ((params, p), (metrics, m), (infos, i)):
            cols.extend(k for k in new if k not in cols)
        rows.append({"run": rec.name, "status": rec.status, **p, **m, **i,
                     "error": rec.error, "note": rec.note, "seconds": rec.seconds,
                     "notebook": _relative(rec.notebook, base), "html": _relative(rec.html, base)})
    taken = set(_LEAD) | set(_TAIL)
    metrics = [c for c in metrics if c not in taken]
    params = [c for c in params if c not in taken and c not in metrics]
    infos = [c for c in infos if c not in taken | set(params) | set(metrics)]
    columns = [*_LEAD, *params, *metrics, *infos, *_TAIL]
    df = pd.DataFrame(rows, columns=columns)
    if len(df):
        ok = df["status"] == "ok"
        if metric in df.columns:
            good = df[ok].sort_values(metric, ascending=ascending, na_position="last",
                                      kind="stable")
        else:
            good = df[ok]
        df = pd.concat([good, df[~ok]]).reset_index(drop=True)
    df.attrs["metric"] = metric
    df.attrs["ascending"] = ascending
    df.attrs["parameter_columns"] = params
    df.attrs["metric_columns"] = metrics
    if base is not None:  # what notebook and html paths are relative to (reports link them)
        df.attrs["root"] = str(base)
    return df


def _page(df: pd.DataFrame, title: str, subtitle: str) -> Report:
    """The summary page: the table in its scroll box, failed runs highlighted, files linked."""
    from tcp_lab.reports.html import Report

    failed = (df["status"] != "ok").tolist() if len(df) else None
    return Report(title).paragraph(subtitle).table(df, index=False, failed=failed,
                                                   fold_constant=True)


def write_summary(
    df: pd.DataFrame, root: str | os.PathLike[str], manifest: Mapping[str, Any],
    records: Sequence[RunRecord],
) -> tuple[Path, Path]:
    """Write ``summary.csv``, ``summary.html`` and ``batch.json`` into ``root``.

    Returns
    -------
    (Path, Path)
        The CSV and HTML files.
    """
    base = Path(root)
    csv, page = base / SUMMARY_CSV, base / SUMMARY_HTML
    df.to_csv(csv, index=False)
    n_failed = int((df["status"] != "ok").sum()) if len(df) else 0
    order = "ascending" if df.attrs.get("ascending") else "descending"
    subtitle = (f"{len(df)} run(s), {n_failed} failed; sorted by {df.attrs.get('metric')} "
                f"({order}); {manifest.get('notebook', '')}")
    _page(df, f"batch {manifest.get('name', '')}", subtitle).write(page)
    payload = {**manifest, "records": [r.to_dict() for r in records]}
    tmp = base / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=str), encoding="utf-8")
    tmp.replace(base / MANIFEST)
    return csv, page


def _find_manifest(path: Path) -> Path:
    if path.is_file():
        return path if path.name == MANIFEST else path.parent / MANIFEST
    if (path / MANIFEST).is_file():
        return path / MANIFEST
    if path.is_dir():  # batches/<name>/: the newest run of that batch
        found = sorted(p for p in path.glob(f"*/{MANIFEST}"))
        if found:
            return found[-1]
    return path / MANIFEST


def load_batch(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a batch's summary back (e.g. in a notebook).

    Parameters
    ----------
    path
        The batch folder (or any file in it), or ``batches/<name>/`` for the
        newest batch of that name.

    Returns
    -------
    DataFrame
        The summary :func:`~tcp_lab.batch.run_batch` returned (best first);
        ``attrs`` holds the batch's name, notebook, metric, folder and timing.

    Raises
    ------
    DataError
        No ``batch.json`` there, or an unreadable one.

    Examples
    --------
    >>> df = load_batch("data/batches/sma_demo")     # doctest: +SKIP
    >>> df[["run", "status", "sharpe"]].head()       # doctest: +SKIP
    """
    p = Path(path)
    manifest = _find_manifest(p)
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"no batch at {p}: {manifest} does not exist",
                        hint="pass the folder run_batch() or `tcp-lab batch` reported") from None
    except (OSError, json.JSONDecodeError) as e:
        raise DataError(f"batch manifest {manifest}: unreadable ({e})") from e
    try:
        records = [RunRecord(**r) for r in data["records"]]
    except (KeyError, TypeError) as e:
        raise DataError(f"batch manifest {manifest}: malformed records ({e})") from e
    df = summary_frame(records, data.get("metric", "sharpe"),
                       ascending=bool(data.get("ascending")), root=manifest.parent)
    df.attrs.update({k: v for k, v in data.items() if k not in ("records", "config")})
    return df
