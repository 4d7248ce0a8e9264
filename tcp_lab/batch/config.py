"""Batch configuration: which notebook, where the output goes, which parameter sets.

A batch config is a JSON object (``config/batches/<name>.json``)::

    {
      "notebook": "notebooks/02_backtest.ipynb",
      "parameters": {"strategy": "sma_cross", "timeframe": "1m"},
      "grid": {"parameters.fast": [5, 10], "parameters.slow": [30, 60]},
      "metric": "sharpe"
    }

``parameters`` are shared by every run; ``runs`` (a list of parameter sets)
and ``grid`` (values per parameter, every combination) add to them. With both,
every run is combined with every grid point. Grid keys may be dotted to reach
into a dict parameter (``"parameters.fast"`` sets ``parameters["fast"]``).
Unknown keys are rejected, and every parameter name is checked against the
notebook's ``parameters`` cell before anything runs.

Candles: a notebook that declares the parameter ``source`` (02 and 03 do) reads
``"store"`` candles in a batch unless the config says ``"source": "synthetic"``
(in ``parameters``, a ``runs`` entry or the ``grid``, like any other notebook
parameter); ``"auto"`` is refused, so a batch never falls back to synthetic
candles. :mod:`tcp_lab.batch.preflight` checks, before any run starts, that the
store holds every series the runs read and that every run's strategy parameters
are valid.
"""

from __future__ import annotations

import copy
import difflib
import itertools
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    PrivateAttr,
    ValidationError,
    field_validator,
)

from tcp_lab.errors import ConfigError

__all__ = [
    "DEFAULT_NOTEBOOK",
    "METRICS_PARAMETER",
    "BatchConfig",
    "load_batch_config",
    "resolve_path",
]

#: The notebook a config without ``"notebook"`` runs.
DEFAULT_NOTEBOOK = "notebooks/02_backtest.ipynb"
#: Notebook parameter the batch sets to the path where the run writes its ``metrics.json``.
METRICS_PARAMETER = "metrics_path"
_NAME_CHARS = "A-Za-z0-9_.-"


class BatchConfig(BaseModel):
    """A validated batch config (immutable; build with :func:`load_batch_config`).

    Attributes
    ----------
    name
        Batch name (default: the config file's stem, else ``"batch"``); names
        the output folder ``$TCP_LAB_HOME/batches/<name>/<timestamp>/``.
    description
        Free text.
    notebook
        Notebook to run (relative paths: see :func:`resolve_path`).
    output_dir
        Where the runs go (default under ``$TCP_LAB_HOME/batches``).
    parameters
        Notebook parameters shared by every run. For notebooks 02 and 03 (and
        any notebook declaring ``source``): ``"source": "store"`` (the default in
        a batch: the series must be in the store) or ``"synthetic"``.
    runs
        Parameter sets, one run each (merged over ``parameters``).
    grid
        Values per parameter; one run per combination (dotted keys reach into
        dict parameters).
    metric
        Metric the summary is sorted by, best first.
    ascending
        Sort ascending (default: only for ``max_drawdown``, where lower is better).
    max_workers
        Runs at the same time (default: the number of cores).
    executor
        ``"process"`` (a process pool) or ``"serial"`` (one after another, in
        this process: for debugging).
    timeout
        Seconds one cell may run before the run fails (default: no limit).
    kernel
        Jupyter kernel name (default: the notebook's, normally ``python3``).
    html
        Export each executed notebook to HTML.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str | None = Field(default=None, pattern=rf"^[{_NAME_CHARS}]+$")
    description: str = ""
    notebook: str = DEFAULT_NOTEBOOK
    output_dir: str | None = None
    parameters: dict[str, JsonValue] = Field(default_factory=dict)
    runs: list[dict[str, JsonValue]] | None = Field(default=None, min_length=1)
    grid: dict[str, list[JsonValue]] | None = Field(default=None, min_length=1)
    metric: str = "sharpe"
    ascending: bool | None = None
    max_workers: int | None = Field(default=None, ge=1)
    executor: Literal["process", "serial"] = "process"
    timeout: float | None = Field(default=None, gt=0)
    kernel: str | None = None
    html: bool = True

    _source: Path | None = PrivateAttr(default=None)

    @field_validator("grid")
    @classmethod
    def _grid_values(cls, v: dict[str, list[JsonValue]] | None) -> dict | None:
        for key, values in (v or {}).items():
            if not values:
                raise ValueError(f"grid {key!r} has no values")
            if not key or any(not part for part in key.split(".")):
                raise ValueError(f"grid key {key!r} is not a parameter name or dotted path")
        return v

    # -- where it came from --------------------------------------------------------------
    @property
    def source(self) -> Path | None:
        """The config file (``None`` for a config built from a dict)."""
        return self._source

    @property
    def where(self) -> str:
        """``batch config <file>`` (or ``batch config`` without a file), for messages."""
        return f"batch config {self._source}" if self._source else "batch config"

    @property
    def batch_name(self) -> str:
        """:attr:`name`, else the config file's stem, else ``"batch"``."""
        return self.name or (self._source.stem if self._source else "batch")

    @property
    def sort_ascending(self) -> bool:
        """Whether smaller values of :attr:`metric` are better."""
        if self.ascending is not None:
            return self.ascending
        return self.metric.removeprefix("oos_").removeprefix("is_") == "max_drawdown"

    # -- parameter sets ---------------------------------------------------------------
    def parameter_sets(self) -> list[dict[str, Any]]:
        """Every run's full parameter dict, in order: runs outer, grid inner.

        Raises
        ------
        ConfigError
            A dotted grid key reaches into a parameter that is not a dict.

        Examples
        --------
        >>> cfg = BatchConfig(parameters={"strategy": "sma_cross", "parameters": {"fast": 5}},
        ...                   grid={"parameters.slow": [20, 40]})
        >>> [s["parameters"] for s in cfg.parameter_sets()]
        [{'fast': 5, 'slow': 20}, {'fast': 5, 'slow': 40}]
        """
        return [params for _, params in self.labelled_parameter_sets()]

    def labelled_parameter_sets(self) -> list[tuple[str, dict[str, Any]]]:
        """:meth:`parameter_sets`, each with where it comes from in the config, for messages.

        The label names the ``runs`` entry (when there are several) and the grid
        values of the combination; it is ``""`` for a config with one run.

        Examples
        --------
        >>> cfg = BatchConfig(runs=[{"fees": 0.0}, {"fees": 0.001}],
        ...                   grid={"parameters.fast": [5]})
        >>> [label for label, _ in cfg.labelled_parameter_sets()]
        ['runs[0], parameters.fast=5', 'runs[1], parameters.fast=5']
        """
        runs = self.runs or [{}]
        grid = self.grid or {}
        keys = list(grid)
        out = []
        for i, run in enumerate(runs):
            merged = _merge(self.parameters, run)
            where_run = f"runs[{i}]" if self.runs else ""
            for combo in itertools.product(*(grid[k] for k in keys)):
                params = copy.deepcopy(merged)
                for key, value in zip(keys, combo, strict=True):
                    _set_dotted(params, key, value, self.where, where_run)
                parts = [where_run] if len(runs) > 1 else []
                parts += [f"{k}={json.dumps(v)}" for k, v in zip(keys, combo, strict=True)]
                out.append((", ".join(parts), params))
        return out

    def check_parameters(self, declared: Mapping[str, Any], notebook: Path | str) -> None:
        """Check every parameter name against the notebook's ``parameters`` cell.

        Parameters
        ----------
        declared
            Names the notebook declares (``papermill.inspect_notebook``).
        notebook
            The notebook, for messages.

        Raises
        ------
        ConfigError
            An unknown name (with a did-you-mean) or the reserved ``metrics_path``;
            the message names the config file and the field.
        """
        fields: list[tuple[str, Any]] = [("parameters", self.parameters)]
        fields += [(f"runs[{i}]", run) for i, run in enumerate(self.runs or [])]
        fields += [("grid", {k.split(".", 1)[0]: None for k in self.grid or {}})]
        names = sorted(declared)
        for field, values in fields:
            for key in values:
                if key == METRICS_PARAMETER:
                    raise ConfigError(
                        f"{self.where}: field {field!r} sets {key!r}, which the batch sets "
                        "itself (each run writes its metrics.json in its own folder)",
                        hint=f"remove {key!r} from the config",
                    )
                if key not in declared:
                    guess = difflib.get_close_matches(key, names, n=1)
                    dym = f"; did you mean {guess[0]!r}?" if guess else ""
                    raise ConfigError(
                        f"{self.where}: field {field!r} sets {key!r}, which notebook "
                        f"{notebook} does not declare{dym}",
                        hint="its parameters: " + (", ".join(names) or "(none)"),
                    )


def _merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` updated by ``override``; dicts present in both are merged key by key."""
    out = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _set_dotted(params: dict[str, Any], key: str, value: Any, where: str, run: str) -> None:
    parts = key.split(".")
    node = params
    for depth, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            path = ".".join(parts[: depth + 1])
            ctx = f" (with {run})" if run else ""
            raise ConfigError(
                f"{where}: field 'grid' key {key!r}: parameter {path!r} is "
                f"{type(child).__name__} {child!r}{ctx}, not a dict",
                hint=f"use a plain key, or make {path!r} a JSON object",
            )
        node = child
    node[parts[-1]] = value


def _describe(errors: list[dict[str, Any]], model_fields: list[str]) -> str:
    parts = []
    for err in errors[:3]:
        loc = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"])
        loc = loc.lstrip(".") or "(top level)"
        if err["type"] == "extra_forbidden":
            guess = difflib.get_close_matches(str(err["loc"][-1]), model_fields, n=1)
            dym = f"; did you mean {guess[0]!r}?" if guess and len(err["loc"]) == 1 else ""
            parts.append(f"unknown field {loc!r}{dym}")
        else:
            msg = err["msg"].removeprefix("Value error, ")
            got = json.dumps(err.get("input"), default=str)
            got = got if len(got) <= 60 else got[:57] + "..."
            parts.append(f"field {loc!r}: {msg} (got {got})")
    more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
    return "; ".join(parts) + more


def load_batch_config(
    config: str | os.PathLike[str] | Mapping[str, Any] | BatchConfig,
) -> BatchConfig:
    """Read and validate a batch config.

    Parameters
    ----------
    config
        A JSON file, a dict with the same keys, or a :class:`BatchConfig`.

    Returns
    -------
    BatchConfig

    Raises
    ------
    ConfigError
        A missing or malformed file, an unknown key (with a did-you-mean) or a
        value of the wrong type; the message names the file and the field.

    Examples
    --------
    >>> cfg = load_batch_config({"parameters": {"strategy": "sma_cross"},
    ...                          "runs": [{"fees": 0.0}, {"fees": 0.001}]})
    >>> len(cfg.parameter_sets())
    2
    """
    if isinstance(config, BatchConfig):
        return config
    source: Path | None = None
    if isinstance(config, Mapping):
        data: Any = dict(config)
    else:
        source = Path(config)
        try:
            data = json.loads(source.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"batch config {source} does not exist",
                              hint="e.g. tcp-lab batch config/batches/sma_demo.json") from None
        except OSError as e:
            raise ConfigError(f"batch config {source}: cannot read it ({e.strerror})") from None
        except json.JSONDecodeError as e:
            raise ConfigError(
                f"batch config {source}: invalid JSON at line {e.lineno} column {e.colno} "
                f"({e.msg})"
            ) from None
    where = f"batch config {source}" if source else "batch config"
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a JSON object, got {type(data).__name__}",
                          hint='e.g. {"parameters": {"strategy": "sma_cross"}, "runs": [...]}')
    try:
        cfg = BatchConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(
            f"{where}: " + _describe(e.errors(), list(BatchConfig.model_fields)),
            hint="fields: " + ", ".join(BatchConfig.model_fields),
        ) from None
    cfg._source = source
    return cfg


def resolve_path(path: str | os.PathLike[str], config: BatchConfig, what: str) -> Path:
    """An existing file named in a config: absolute, else relative to the working directory,
    else to the project the config file belongs to (its nearest folder with ``pyproject.toml``).

    Raises
    ------
    ConfigError
        No such file in any of those places (the message lists them).
    """
    p = Path(path).expanduser()
    if p.is_absolute():
        candidates = [p]
    else:
        candidates = [Path.cwd() / p]
        if config.source is not None:
            folder = config.source.resolve().parent
            root = next((d for d in (folder, *folder.parents)
                         if (d / "pyproject.toml").is_file()), None)
            for base in (folder, root):
                if base is not None and base / p not in candidates:
                    candidates.append(base / p)
    for c in candidates:
        if c.is_file():
            return c.resolve()
    raise ConfigError(
        f"{config.where}: {what} {str(path)!r} does not exist (looked for "
        + ", ".join(str(c) for c in candidates) + ")",
        hint="relative paths are taken from the working directory or the project root",
    )
