"""What :func:`~tcp_lab.batch.run_batch` checks and prepares before any run starts.

A batch's runs are Jupyter kernels that start seconds apart, on this machine or
on a Dask cluster. What can be known from the config, the notebook's declared
parameters, the strategies and the store is checked here, once, in the process
that runs the batch, so a mistake is one line before anything runs rather than
one failed notebook per run:

- **which candles** (:func:`choose_sources`): a notebook that declares the
  parameter ``source`` (02 and 03 do) reads ``"store"`` candles unless the
  config asks for ``"synthetic"``; the notebook's interactive ``"auto"``
  (synthetic when the store lacks the series) is refused;
- **the store holds them** (:func:`check_series`): one look at the store for
  every series (and ``start``/``end`` range) the ``"store"`` runs read;
- **the strategy parameters** (:func:`check_strategies`): every run's
  strategy is built with its parameters, so the strategy's own rules
  (unknown names, ranges, ``fast < slow``) reject a bad combination;
- **on a Dask cluster** (:func:`check_cluster`): the runs must reach the
  client's store, so an embedded DuckDB file is refused; and every run's kernel
  gets the client's resolved settings (:func:`kernel_environment`), whatever the
  worker's working directory, settings file or environment say.
"""

from __future__ import annotations

import ast
import contextlib
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from tcp_lab.errors import ConfigError, StrategyError, TcpLabError
from tcp_lab.settings import ENV_VARS, redact_url

if TYPE_CHECKING:  # pragma: no cover
    from tcp_lab.batch.config import BatchConfig
    from tcp_lab.settings import Settings

__all__ = [
    "SOURCE_PARAMETER",
    "SOURCES",
    "DEFAULT_SOURCE",
    "PlannedRun",
    "plan_runs",
    "notebook_defaults",
    "choose_sources",
    "check_strategies",
    "check_series",
    "reads_store",
    "check_cluster",
    "kernel_environment",
]

#: The notebook parameter that says which candles a run reads.
SOURCE_PARAMETER = "source"
#: Values of ``source`` a batch accepts.
SOURCES = ("store", "synthetic")
#: ``source`` of a run whose config does not set it.
DEFAULT_SOURCE = "store"
_SERIES = ("exchange", "symbol", "timeframe")
_SHOWN = 3  # run names listed in a message
_UNKNOWN = object()  # a parameter neither the run nor the notebook gives a literal value


@dataclass(frozen=True)
class PlannedRun:
    """One run of a batch before it starts.

    Attributes
    ----------
    name
        ``run-NNN``, the run's folder.
    label
        Where its parameters come from in the config (``"parameters.fast=5"``),
        ``""`` for a batch of one run.
    params
        The parameters the notebook gets.
    """

    name: str
    label: str
    params: dict[str, Any]

    @property
    def title(self) -> str:
        """``run-003 (parameters.fast=50, parameters.slow=20)``, for messages."""
        return f"{self.name} ({self.label})" if self.label else self.name


def plan_runs(cfg: BatchConfig) -> list[PlannedRun]:
    """The config's runs, named ``run-000``, ``run-001``… in order."""
    return [PlannedRun(f"run-{i:03d}", label, params)
            for i, (label, params) in enumerate(cfg.labelled_parameter_sets())]


def notebook_defaults(declared: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The literal default values of a notebook's parameters (papermill gives source text).

    A default that is not a Python literal (an expression) is left out.

    Examples
    --------
    >>> notebook_defaults({"fast": {"default": "10"}, "now": {"default": "time.time()"}})
    {'fast': 10}
    """
    out: dict[str, Any] = {}
    for name, info in declared.items():
        try:
            out[name] = ast.literal_eval(str(info.get("default")))
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue
    return out


def _value(run: PlannedRun, defaults: Mapping[str, Any], name: str) -> Any:
    """The value the run's notebook will see (papermill replaces a parameter whole)."""
    return run.params[name] if name in run.params else defaults.get(name, _UNKNOWN)


def _which(runs: Sequence[PlannedRun], total: int | None = None) -> str:
    """``every run`` (all ``total`` of them), else up to three run names."""
    if len(runs) == total and total > 1:
        return "every run"
    names = ", ".join(r.name for r in runs[:_SHOWN])
    more = f" and {len(runs) - _SHOWN} more" if len(runs) > _SHOWN else ""
    return names + more


# -- source ------------------------------------------------------------------------------
def choose_sources(cfg: BatchConfig, runs: Sequence[PlannedRun],
                   declared: Mapping[str, Any]) -> None:
    """Give every run a ``source`` (default ``"store"``) and refuse anything but store/synthetic.

    Only for notebooks that declare ``source``; the runs' parameters are updated
    in place, so the executed notebooks and the summary show the source used.

    Raises
    ------
    ConfigError
        A run asks for ``"auto"`` or an unknown source (the message names the run).
    """
    if SOURCE_PARAMETER not in declared:
        return
    bad = []
    for run in runs:
        run.params.setdefault(SOURCE_PARAMETER, DEFAULT_SOURCE)
        if run.params[SOURCE_PARAMETER] not in SOURCES:
            bad.append(run)
    if bad:
        value = bad[0].params[SOURCE_PARAMETER]
        why = ("a batch never falls back to synthetic candles"
               if value == "auto" else f"expected one of {SOURCES}")
        raise ConfigError(
            f"{cfg.where}: {_which(bad, len(runs))}: source={value!r}: {why}",
            hint="use \"source\": \"store\" (the default: the series must be in the store) or "
            "\"source\": \"synthetic\" in the config's parameters")


# -- strategy parameters ---------------------------------------------------------------
@contextlib.contextmanager
def _importable_from_cwd() -> Iterator[None]:
    """Import as a run's kernel would: IPython puts its working directory (ours) on sys.path."""
    cwd = os.getcwd()
    added = cwd not in sys.path and "" not in sys.path
    if added:
        sys.path.insert(0, cwd)
    try:
        yield
    finally:
        if added:
            with contextlib.suppress(ValueError):
                sys.path.remove(cwd)


def check_strategies(cfg: BatchConfig, runs: Sequence[PlannedRun], declared: Mapping[str, Any],
                     defaults: Mapping[str, Any]) -> None:
    """Build every run's strategy with its parameters; the strategy's own checks decide.

    For notebooks that declare ``strategy`` (and ``parameters``, the strategy's
    parameter dict, which papermill replaces whole: keys a run leaves out take the
    strategy's defaults, not the notebook's).

    Raises
    ------
    ConfigError
        An unknown strategy, an unknown parameter, a value out of range or a
        rule between parameters broken: one line naming the first such run, its
        grid values and the parameter, and how many others fail.
    """
    if "strategy" not in declared:
        return
    from tcp_lab.strategies import get_strategy

    bad: list[tuple[PlannedRun, StrategyError]] = []
    with _importable_from_cwd():
        for run in runs:
            name = _value(run, defaults, "strategy")
            params = _value(run, defaults, "parameters") if "parameters" in declared else {}
            if name is _UNKNOWN or params is _UNKNOWN:
                continue
            try:
                get_strategy(name, params)
            except StrategyError as e:
                bad.append((run, e))
    if bad:
        run, error = bad[0]
        more = (f"; {len(bad) - 1} other run(s) fail too: {_which([r for r, _ in bad[1:]])}"
                if len(bad) > 1 else "")
        fix = "fix the config's parameters, runs or grid (no run was started)"
        raise ConfigError(f"{cfg.where}: {run.title}: {error.message}{more}",
                          hint=f"{error.hint}; {fix}" if error.hint else fix) from error


# -- the store holds the series --------------------------------------------------------
def _duckdb_file(url: str) -> Path | None:
    """The file behind ``duckdb:///…`` (``None`` for other URLs and ``:memory:``)."""
    if not url.startswith("duckdb:///"):
        return None
    path = url[len("duckdb:///"):].split("?", 1)[0]
    return None if path in ("", ":memory:") else Path(path).expanduser()


def _stored_series(cfg: BatchConfig, url: str) -> tuple[pd.DataFrame, str]:
    """The store's series (``exchange symbol timeframe candles first last``) and its name."""
    shown = str(redact_url(url))
    empty = pd.DataFrame(columns=["exchange", "symbol", "timeframe", "candles", "first", "last"])
    file = _duckdb_file(url)
    if url.startswith("duckdb:///") and file is None:
        return empty, f"{shown} (in memory: every run gets an empty one)"
    if file is not None and not file.exists():
        return empty, f"{shown} (no database file yet)"
    from tcp_lab.store import open_store

    try:
        with open_store(url) as store:
            return store.list_series(), shown
    except TcpLabError as e:
        raise type(e)(f"{cfg.where}: cannot look up the runs' candles: {e.message}",
                      hint=e.hint) from e


def _span(first: pd.Timestamp, last: pd.Timestamp) -> str:
    return f"{first:%Y-%m-%d %H:%M} – {last:%Y-%m-%d %H:%M} UTC"


def _at(t: pd.Timestamp | None) -> str:
    return "…" if t is None else f"{t:%Y-%m-%d %H:%M} UTC"


def check_series(cfg: BatchConfig, runs: Sequence[PlannedRun], defaults: Mapping[str, Any],
                 database_url: str) -> None:
    """Check that the store holds every series the ``"store"`` runs read, in their range.

    The store is opened once, here (a DuckDB file that does not exist is not
    created). Runs whose series the notebook does not declare as literals are
    left to the notebook.

    Raises
    ------
    ConfigError
        A series (exchange, symbol, timeframe) missing from the store, or with
        no candles between the run's ``start`` and ``end``; one line naming each
        such series, the runs that need it and what the store holds. Also a
        malformed timeframe or time in a run.
    ServiceError
        The store cannot be reached.
    """
    from tcp_lab.timeframes import parse_timeframe, to_utc_timestamp

    wanted: dict[tuple[Any, ...], list[PlannedRun]] = {}
    for run in runs:
        if run.params.get(SOURCE_PARAMETER) != "store":
            continue
        exchange, symbol, timeframe = (_value(run, defaults, k) for k in _SERIES)
        if _UNKNOWN in (exchange, symbol, timeframe):
            continue
        bounds = [_value(run, defaults, k) for k in ("start", "end")]
        try:
            tf = parse_timeframe(str(timeframe)).name
            t0, t1 = (None if b in (None, "", _UNKNOWN) else to_utc_timestamp(b, name=k)
                      for b, k in zip(bounds, ("start", "end"), strict=True))
        except TcpLabError as e:
            raise ConfigError(f"{cfg.where}: {run.title}: {e.message}", hint=e.hint) from e
        wanted.setdefault((str(exchange), str(symbol), tf, t0, t1), []).append(run)
    if not wanted:
        return
    stored, where = _stored_series(cfg, database_url)
    problems: list[str] = []
    missing: list[tuple[str, str, str]] = []
    for (exchange, symbol, tf, t0, t1), needing in wanted.items():
        rows = stored[(stored["exchange"] == exchange) & (stored["symbol"] == symbol)
                      & (stored["timeframe"] == tf)]
        series, who = f"{exchange} {symbol} {tf}", _which(needing, len(runs))
        if rows.empty:
            problems.append(f"no {series} candles (needed by {who})")
        else:
            first, last = rows["first"].iloc[0], rows["last"].iloc[0]
            if (t1 is None or first <= t1) and (t0 is None or last >= t0):
                continue  # candles in the run's range
            problems.append(f"no {series} candles between {_at(t0)} and {_at(t1)} (it holds "
                            f"{_span(first, last)}; needed by {who})")
        missing.append((exchange, symbol, tf))
    if not problems:
        return
    held = [f"{r.exchange} {r.symbol} {r.timeframe}" for r in stored.itertuples()]
    more = f" and {len(held) - 6} more" if len(held) > 6 else ""
    holds = f"it holds {', '.join(held[:6])}{more}" if held else "it holds no candles"
    exchange, symbol, tf = missing[0]
    raise ConfigError(
        f"{cfg.where}: the store {where} has " + "; ".join(problems) + f"; {holds}",
        hint=f"collect them first (`tcp-lab collect --exchange {exchange} --symbols {symbol} "
        f"--timeframes {tf} --since DATE`), point TCP_LAB_DATABASE_URL at the store that has "
        "them, or ask for synthetic candles with \"source\": \"synthetic\" in the config's "
        "parameters")


# -- on a Dask cluster -------------------------------------------------------------------
def reads_store(runs: Sequence[PlannedRun], declared: Mapping[str, Any]) -> bool:
    """Whether any run may read the store (a notebook without ``source``: assume it does)."""
    if SOURCE_PARAMETER not in declared:
        return True
    return any(r.params.get(SOURCE_PARAMETER) != "synthetic" for r in runs)


def check_cluster(cfg: BatchConfig, runs: Sequence[PlannedRun], declared: Mapping[str, Any],
                  settings: Settings, cluster: str) -> None:
    """Refuse an embedded DuckDB store for runs on a Dask cluster (before anything is submitted).

    Runs on a cluster execute in the workers' processes, possibly on other machines:
    they cannot share the client's DuckDB file (a file admits one process, and other
    machines do not see it). Runs that all use synthetic candles do not read it.

    Raises
    ------
    ConfigError
        The database is a DuckDB file and a run reads the store.
    """
    if not settings.database_url.startswith("duckdb") or not reads_store(runs, declared):
        return
    raise ConfigError(
        f"{cfg.where}: the runs would execute on the Dask cluster {cluster} "
        f"({ENV_VARS['scheduler']}) and read the embedded DuckDB database "
        f"{redact_url(settings.database_url)}, which its workers cannot open: use PostgreSQL, "
        "or run the batch locally",
        hint=f"set {ENV_VARS['database_url']}=postgresql://… (a server every worker reaches; "
        f"`tcp-lab services up` starts one), or unset {ENV_VARS['scheduler']} "
        "(`tcp-lab batch --serial` also runs here)")


def kernel_environment(settings: Settings, *, cluster: bool) -> dict[str, str]:
    """The client's resolved settings as ``TCP_LAB_*`` variables for every run's kernel.

    Environment variables win over a settings file and the defaults, so a run
    reads the client's store and writes under the client's home wherever its
    kernel starts (a Dask worker's working directory, settings file and
    environment are its own). Values are absolute (``home`` is resolved). A run
    on a cluster gets no scheduler (``none``): its notebook computes in its own
    kernel instead of submitting work back to the cluster its worker belongs to.

    The URLs may hold passwords: the mapping goes to the runs only, never into
    ``batch.json`` or a log.

    Examples
    --------
    >>> from tcp_lab.settings import load_settings
    >>> env = kernel_environment(load_settings(env={"TCP_LAB_HOME": "/tmp/lab"}), cluster=True)
    >>> env["TCP_LAB_HOME"], env["TCP_LAB_SCHEDULER"]
    ('/tmp/lab', 'none')
    """
    scheduler = None if cluster else settings.scheduler
    return {
        ENV_VARS["home"]: str(Path(settings.home).resolve()),
        ENV_VARS["database_url"]: settings.database_url,
        ENV_VARS["redis_url"]: settings.redis_url,
        ENV_VARS["scheduler"]: scheduler or "none",
    }
