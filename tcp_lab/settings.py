"""One validated, immutable settings object.

Settings come from, in increasing priority: built-in defaults, the JSON file
``config/settings.json`` (or the file named by ``TCP_LAB_SETTINGS_FILE``), and
environment variables:

=========================  ===================  ==========================================
environment variable       settings-file key    default
=========================  ===================  ==========================================
``TCP_LAB_HOME``           ``home``             ``<project root>/data``
``TCP_LAB_DATABASE_URL``   ``database_url``     ``duckdb:///<home>/tcp_lab.duckdb``
``TCP_LAB_REDIS_URL``      ``redis_url``        ``memory://`` (in-process fakeredis)
``TCP_LAB_SCHEDULER``      ``scheduler``        unset: run in this process
=========================  ===================  ==========================================

Every entry point (the CLI, a notebook kernel in ``notebooks/``, a panel, a batch run)
resolves them the same way, wherever it runs from: the **project root** is the nearest
folder, from the working directory upwards, that holds ``config/settings.json`` or one
of ``config/bots``, ``config/strategies``, ``config/batches`` (the working directory
when none does); the default settings file is ``<root>/config/settings.json``, and a
relative ``home`` or DuckDB file (``duckdb:///data/lab.duckdb``) is taken from the root,
never from the working directory.

Nothing is read at import time: call :func:`load_settings`. Passwords in URLs
(``user:password@`` or ``?password=…``) are redacted by ``repr``/``str`` and
:meth:`Settings.redacted` (see :func:`redact_url`).
"""

from __future__ import annotations

import difflib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus, urlsplit

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from tcp_lab.errors import ConfigError

__all__ = [
    "DATABASE_SCHEMES",
    "BUS_SCHEMES",
    "Settings",
    "load_settings",
    "project_root",
    "redact_url",
    "settings_file_path",
    "update_settings_file",
]

#: URL schemes a store can be opened from (see ``tcp_lab.store``).
DATABASE_SCHEMES = ("duckdb", "postgresql", "postgresql+psycopg2", "postgres")
#: URL schemes a bus can be opened from (see ``tcp_lab.bus``).
BUS_SCHEMES = ("memory", "redis", "rediss", "unix")

ENV_VARS = {
    "home": "TCP_LAB_HOME",
    "database_url": "TCP_LAB_DATABASE_URL",
    "redis_url": "TCP_LAB_REDIS_URL",
    "scheduler": "TCP_LAB_SCHEDULER",
}
SETTINGS_FILE_ENV = "TCP_LAB_SETTINGS_FILE"
DEFAULT_SETTINGS_FILE = Path("config") / "settings.json"
DEFAULT_DB_FILE = "tcp_lab.duckdb"
#: A folder holding one of these is a tcp_lab project (its root).
PROJECT_MARKERS = (DEFAULT_SETTINGS_FILE, Path("config") / "bots",
                   Path("config") / "strategies", Path("config") / "batches")
_DUCKDB_PREFIX = "duckdb:///"


def project_root(start: str | os.PathLike[str] | None = None) -> Path:
    """The project root: the nearest folder from ``start`` upwards that holds a marker.

    Markers are ``config/settings.json``, ``config/bots``, ``config/strategies`` and
    ``config/batches``. A notebook in ``<root>/notebooks/`` and a shell in ``<root>``
    get the same root, hence the same store.

    Parameters
    ----------
    start
        Where to start looking (default: the working directory).

    Returns
    -------
    Path
        The root (absolute); ``start`` itself when no folder above it is a project.
    """
    here = Path(start if start is not None else Path.cwd()).expanduser().resolve()
    return next((d for d in (here, *here.parents)
                 if any((d / m).exists() for m in PROJECT_MARKERS)), here)


def _from_root(path: str | os.PathLike[str], root: Path) -> Path:
    p = Path(path).expanduser()
    return (p if p.is_absolute() else root / p).resolve()


def _absolute_duckdb_url(url: str, root: Path) -> str:
    """``duckdb:///relative/file`` taken from the project root (other URLs unchanged)."""
    if not url.startswith(_DUCKDB_PREFIX):
        return url
    rest = url[len(_DUCKDB_PREFIX):]
    if not rest or rest.startswith(("/", ":memory:", "~")) or "?" in rest:
        return url
    return f"{_DUCKDB_PREFIX}{_from_root(rest, root)}"


#: A query parameter whose (lower-cased) name contains one of these holds a secret:
#: ``password`` and ``sslpassword`` (libpq, redis-py), ``token``, ``secret``,
#: ``api_key``… (``passfile`` and ``sslkey`` name files: they are kept).
SECRET_PARAM_WORDS = ("password", "passwd", "secret", "token", "apikey", "api_key", "api-key")
REDACTED = "***"


def _is_secret_param(name: str) -> bool:
    name = unquote_plus(name).lower()
    return any(word in name for word in SECRET_PARAM_WORDS)


def _redact_query(query: str) -> str:
    items = []
    for item in query.split("&"):
        name, eq, value = item.partition("=")
        items.append(f"{name}={REDACTED}" if eq and value and _is_secret_param(name) else item)
    return "&".join(items)


def redact_url(url: str | None) -> str | None:
    """Return ``url`` with every password and other secret replaced by ``***``.

    Both places a URL can carry a password are redacted: the user info
    (``user:password@host``) and query parameters whose name contains
    ``password``, ``secret``, ``token`` or ``api_key`` (``?password=…`` and
    ``?sslpassword=…`` are read by libpq and redis-py). Everything else is
    kept as written; a URL without secrets is returned unchanged.

    Parameters
    ----------
    url
        Any URL, or None.

    Returns
    -------
    str or None
        The redacted URL (None and ``""`` unchanged; ``"<unparseable URL>"``
        when it cannot be split).

    Examples
    --------
    >>> redact_url("postgresql://bob:s3cret@db:5432/lab")
    'postgresql://bob:***@db:5432/lab'
    >>> redact_url("redis://cache:6379/0?password=s3cret&prefix=lab:")
    'redis://cache:6379/0?password=***&prefix=lab:'
    """
    if not url:
        return url
    try:
        urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    # Split as urlsplit does (fragment, then query, then authority) but keep the text as
    # written, so that only the secrets change.
    head, hash_, fragment = url.partition("#")
    base, qmark, query = head.partition("?")
    scheme, sep, rest = base.partition("://")
    if sep:
        authority, slash, path = rest.partition("/")
        userinfo, at, hostport = authority.rpartition("@")
        user, colon, _ = userinfo.partition(":")  # the first ':' ends the user name
        if at and colon:
            base = f"{scheme}://{user}:{REDACTED}@{hostport}{slash}{path}"
    if query:
        query = _redact_query(query)
    return f"{base}{qmark}{query}{hash_}{fragment}"


def _check_url(value: str, schemes: tuple[str, ...], field: str) -> str:
    value = value.strip()
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError as e:
        raise ValueError(f"{field}={redact_url(value)!r} is not a valid URL ({e})") from None
    if not parts.scheme or "://" not in value:
        raise ValueError(
            f"{field}={redact_url(value)!r} has no scheme; expected one of "
            + ", ".join(f"{s}://" for s in schemes)
        )
    if parts.scheme not in schemes:
        guess = difflib.get_close_matches(parts.scheme, schemes, n=1)
        did_you_mean = f" (did you mean {guess[0]}://?)" if guess else ""
        raise ValueError(
            f"{field}={redact_url(value)!r}: unknown scheme {parts.scheme!r}{did_you_mean}; "
            "expected one of " + ", ".join(f"{s}://" for s in schemes)
        )
    return value


class Settings(BaseModel):
    """Resolved tcp_lab settings (immutable; build with :func:`load_settings`).

    Attributes
    ----------
    home
        Directory for the embedded database, reports and run artefacts.
    database_url
        ``duckdb:///relative/file.duckdb``, ``duckdb:////abs/file.duckdb`` or
        ``postgresql://user@host:5432/db``.
    redis_url
        ``memory://`` (in-process fakeredis) or ``redis://host:6379/0``.
    scheduler
        ``None`` (in process), ``"local"`` (a Dask LocalCluster) or
        ``tcp://host:8786`` (an existing Dask scheduler).
    root
        The project root relative paths were taken from (see :func:`project_root`);
        bot configs are looked up in ``<root>/config/bots``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    home: Path
    database_url: str
    redis_url: str = "memory://"
    scheduler: str | None = None
    root: Path = Path(".")

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, v: str) -> str:
        return _check_url(v, DATABASE_SCHEMES, "database_url")

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, v: str) -> str:
        return _check_url(v, BUS_SCHEMES, "redis_url")

    @field_validator("scheduler")
    @classmethod
    def _scheduler(cls, v: str | None) -> str | None:
        if v is None or v.strip() in ("", "none"):
            return None
        v = v.strip()
        if v == "local":
            return v
        try:
            return _check_url(v, ("tcp", "tls", "ws", "wss", "inproc"), "scheduler")
        except ValueError as e:
            raise ValueError(f"{e}, or local (a Dask cluster on this machine)") from None

    @property
    def is_embedded(self) -> bool:
        """True when storage is a DuckDB file and the bus is in-process (one process only)."""
        return self.database_url.startswith("duckdb") or self.redis_url.startswith("memory")

    def redacted(self) -> dict[str, Any]:
        """The settings as a plain dict with passwords in URLs replaced by ``***``."""
        return {
            "home": str(self.home),
            "database_url": redact_url(self.database_url),
            "redis_url": redact_url(self.redis_url),
            "scheduler": redact_url(self.scheduler),
            "root": str(self.root),
        }

    def __repr_args__(self):  # used by repr() and str()
        return list(self.redacted().items())


def _read_settings_file(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ConfigError(
            f"settings file {path}: invalid JSON at line {e.lineno} column {e.colno} ({e.msg})",
            hint="fix the file or remove it to use the defaults",
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(
            f"settings file {path}: expected a JSON object, got {type(data).__name__}",
            hint='write e.g. {"database_url": "duckdb:///data/tcp_lab.duckdb"}',
        )
    known = set(ENV_VARS)
    for key in data:
        if key not in known:
            guess = difflib.get_close_matches(key, sorted(known), n=1)
            did_you_mean = f"; did you mean {guess[0]!r}?" if guess else ""
            raise ConfigError(
                f"settings file {path}: unknown key {key!r}{did_you_mean}",
                hint="known keys: " + ", ".join(sorted(known)),
            )
    return data


def settings_file_path(env: Mapping[str, str] | None = None) -> Path:
    """The settings file read: ``$TCP_LAB_SETTINGS_FILE``, else ``<root>/config/settings.json``."""
    env = os.environ if env is None else env
    explicit = env.get(SETTINGS_FILE_ENV)
    return Path(explicit) if explicit else project_root() / DEFAULT_SETTINGS_FILE


def update_settings_file(
    values: Mapping[str, Any],
    settings_file: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
) -> Path:
    """Set keys of the settings file, keeping its other keys (the file is created if missing).

    Parameters
    ----------
    values
        Settings-file keys and their new values, e.g. ``{"redis_url": "redis://…"}``.
    settings_file
        The file to write (default :func:`settings_file_path`).
    env
        Environment to find ``TCP_LAB_SETTINGS_FILE`` in (default ``os.environ``).

    Returns
    -------
    Path
        The file written.

    Raises
    ------
    ConfigError
        The file is not valid JSON, or a key or value is invalid; the file is left as it was.

    Examples
    --------
    >>> update_settings_file({"redis_url": "redis://127.0.0.1:16379/0"})  # doctest: +SKIP
    PosixPath('/home/me/tcp_lab/config/settings.json')
    """
    path = Path(settings_file) if settings_file is not None else settings_file_path(env)
    data = _read_settings_file(path) if path.is_file() else {}
    data.update(values)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        load_settings(env={}, settings_file=tmp)  # the same checks as every read
        os.replace(tmp, path)
    except OSError as e:
        raise ConfigError(f"settings file {path}: cannot write it ({e})") from None
    except ConfigError as e:
        raise ConfigError(str(e).replace(str(tmp), str(path))) from None
    finally:
        tmp.unlink(missing_ok=True)
    return path


def load_settings(
    env: Mapping[str, str] | None = None,
    settings_file: str | os.PathLike[str] | None = None,
    **overrides: Any,
) -> Settings:
    """Resolve and validate the settings.

    Parameters
    ----------
    env
        Environment to read ``TCP_LAB_*`` variables from (default ``os.environ``).
    settings_file
        JSON file to read (default ``$TCP_LAB_SETTINGS_FILE`` or
        ``<project root>/config/settings.json`` when it exists; see :func:`project_root`).
    **overrides
        Values that win over everything else (``database_url=...``), for tests
        and notebooks.

    Returns
    -------
    Settings

    Raises
    ------
    ConfigError
        An unknown key, a malformed URL or an invalid value; the message names
        the key and where it came from.

    Examples
    --------
    >>> s = load_settings(env={"TCP_LAB_HOME": "/tmp/lab"})
    >>> s.database_url
    'duckdb:////tmp/lab/tcp_lab.duckdb'
    """
    env = os.environ if env is None else env
    explicit = settings_file or env.get(SETTINGS_FILE_ENV)
    path = Path(explicit).expanduser().resolve() if explicit else None
    # The root of an explicit settings file is its project's (config/settings.json's
    # grandparent) when it is in one; else the working directory's.
    root = project_root(path.parent) if path is not None else project_root()
    if path is not None and not any((root / m).exists() for m in PROJECT_MARKERS):
        root = project_root()
    if path is None:
        path = root / DEFAULT_SETTINGS_FILE
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    if path.is_file():
        for key, value in _read_settings_file(path).items():
            values[key] = value
            sources[key] = f"settings file {path}"
    elif explicit:
        raise ConfigError(
            f"settings file {path} does not exist",
            hint=f"create it or unset {SETTINGS_FILE_ENV}",
        )
    for key, var in ENV_VARS.items():
        if env.get(var):
            values[key] = env[var]
            sources[key] = f"environment variable {var}"
    for key, value in overrides.items():
        if key not in ENV_VARS:
            raise ConfigError(f"unknown setting {key!r}", hint="known: " + ", ".join(ENV_VARS))
        if value is not None:
            values[key] = value
            sources[key] = "argument"

    home = _from_root(values.get("home") or "data", root)
    values["home"], values["root"] = home, root
    if not values.get("database_url"):
        values["database_url"] = f"{_DUCKDB_PREFIX}{home / DEFAULT_DB_FILE}"
    elif isinstance(values["database_url"], str):
        values["database_url"] = _absolute_duckdb_url(values["database_url"].strip(), root)
    try:
        return Settings(**values)
    except ValidationError as e:
        err = e.errors()[0]
        key = str(err["loc"][0]) if err["loc"] else "?"
        where = sources.get(key, "default")
        msg = err["msg"].removeprefix("Value error, ")
        raise ConfigError(
            f"invalid setting {key} (from {where}): {msg}",
            hint=f"fix {ENV_VARS.get(key, key)} or the settings file",
        ) from None
