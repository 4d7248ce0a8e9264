"""Process plumbing shared by the private servers: ports, pid files, owners, OS users."""

from __future__ import annotations

import errno
import os
import pwd
import socket
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tcp_lab.errors import ConfigError, ServiceError

HOST = "127.0.0.1"
#: How many ports above the default ``up`` tries on first start.
PORT_SCAN = 100


@dataclass(frozen=True)
class OSUser:
    """The OS account a server runs as."""

    name: str
    uid: int
    gid: int

    @classmethod
    def current(cls) -> OSUser:
        uid = os.geteuid()
        try:
            name = pwd.getpwuid(uid).pw_name
        except KeyError:
            name = str(uid)
        return cls(name, uid, os.getegid())

    @classmethod
    def of_uid(cls, uid: int) -> OSUser:
        try:
            entry = pwd.getpwuid(uid)
        except KeyError:
            return cls(str(uid), uid, uid)
        return cls(entry.pw_name, uid, entry.pw_gid)

    def subprocess_kwargs(self) -> dict[str, object]:
        """``subprocess`` arguments that run a child as this user (nothing if it is us)."""
        if self.uid == os.geteuid():
            return {}
        return {"user": self.uid, "group": self.gid, "extra_groups": []}


def port_is_free(port: int, host: str = HOST) -> bool:
    """True when a server could listen on ``host:port`` now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers do
        try:
            sock.bind((host, port))
        except OSError as e:
            if e.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def pick_port(preferred: int, what: str, host: str = HOST) -> int:
    """The first free port from ``preferred`` on (at most :data:`PORT_SCAN` tried)."""
    for port in range(preferred, min(preferred + PORT_SCAN, 65536)):
        if port_is_free(port, host):
            return port
    raise ServiceError(f"no free port for the private {what} in {preferred}–"
                       f"{preferred + PORT_SCAN - 1} on {host}",
                       hint="choose one with `tcp-lab services up --postgres-port N "
                            "--redis-port N`")


def check_port(port: int, what: str, flag: str, host: str = HOST) -> None:
    """Raise a one-line error when ``port`` is taken by another program."""
    if not port_is_free(port, host):
        raise ServiceError(
            f"port {port} on {host}, chosen for the private {what}, is in use by another program",
            hint=f"stop that program, or choose another port: `tcp-lab services up {flag} N`")


def pid_running(pid: int | None, name: str) -> bool:
    """True when process ``pid`` exists and its name contains ``name`` (guards reused pids)."""
    if not pid or pid <= 0:
        return False
    import psutil

    try:
        proc = psutil.Process(pid)
        return name in proc.name() and proc.status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def wait_for(check: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """Poll ``check`` until it is true or ``timeout`` seconds pass; return its last value."""
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def read_lines(path: Path) -> list[str]:
    """The lines of a small text file, or ``[]`` when it is missing or unreadable."""
    try:
        return path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []


def last_line(path: Path, default: str = "no log") -> str:
    """The last non-empty line of a log file (what a failed start said)."""
    lines = [line.strip() for line in read_lines(path) if line.strip()]
    return lines[-1] if lines else default


def check_owner(path: Path, owner: OSUser, what: str) -> None:
    """Raise a one-line error when ``path`` exists and belongs to someone other than ``owner``."""
    if path.is_dir():
        uid = path.stat().st_uid
        if uid != owner.uid:
            actual = OSUser.of_uid(uid).name
            raise ConfigError(
                f"{what} data directory {path} is owned by {actual}, but the server runs as "
                f"{owner.name}",
                hint=f"run tcp-lab as {actual}, or set TCP_LAB_HOME to a directory of your own")


def ensure_dir(path: Path, owner: OSUser, what: str) -> None:
    """Create ``path`` (mode 0700) owned by ``owner``, or check that it already is.

    Raises
    ------
    ConfigError
        The directory exists and belongs to someone else.
    """
    if path.is_dir():
        check_owner(path, owner, what)
        return
    path.mkdir(parents=True, mode=0o700)
    if owner.uid != os.geteuid():
        os.chown(path, owner.uid, owner.gid)


def check_reachable(path: Path, user: OSUser, what: str) -> None:
    """Check that ``user`` may enter every directory above ``path`` (a server run as ``user``).

    Raises
    ------
    ConfigError
        Names the first directory that ``user`` cannot enter and how to fix it.
    """
    for parent in reversed(path.resolve().parents):
        st = parent.stat()
        if st.st_uid == user.uid:
            bit = stat.S_IXUSR
        elif st.st_gid == user.gid:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not st.st_mode & bit:
            raise ConfigError(
                f"the private {what} runs as OS user {user.name} (it refuses to run as root), "
                f"who cannot enter {parent}",
                hint=f"`chmod o+x {parent}`, or set TCP_LAB_HOME to a directory outside it")
