"""Exceptions that tell the user what to do.

Every error tcp_lab raises on purpose derives from :class:`TcpLabError`. The
subclass says *whose move it is*:

============================  ==================================================
class                         what the user should do
============================  ==================================================
:class:`ConfigError`          fix a setting, a URL or a JSON config file
:class:`DataError`            fix (or repair) the data that was passed in
:class:`ServiceError`         a server is down or unreachable: start it, retry
:class:`DatabaseLockedError`  another process holds the DuckDB file: use one
                              process, or ``tcp-lab services up`` for several
:class:`StrategyError`        the strategy code or its parameters are wrong
============================  ==================================================

Messages follow one shape: what failed, for which object, actual vs expected,
and how to fix it. The CLI prints ``str(error)`` on one line and exits with 2;
notebooks see the exception; widgets show the message in place.
"""

from __future__ import annotations

__all__ = [
    "TcpLabError",
    "ConfigError",
    "DataError",
    "ServiceError",
    "DatabaseLockedError",
    "StrategyError",
]


class TcpLabError(Exception):
    """Base class of every error tcp_lab raises deliberately.

    Parameters
    ----------
    message
        What failed, for which object, actual vs expected.
    hint
        How to fix it (a command, a setting, a file to edit). Appended to the
        message after ``" — "`` so the CLI can print it on one line.
    """

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(f"{message} — {hint}" if hint else message)


class ConfigError(TcpLabError):
    """A setting, URL or configuration file is invalid: edit it and try again."""


class DataError(TcpLabError, ValueError):
    """Input data is malformed (NaN prices, high < low, duplicate keys, naive times…)."""


class ServiceError(TcpLabError):
    """A server (database, Redis, exchange, Dask scheduler) could not be reached.

    Retry later, or start the server; the message names which one.
    """


class DatabaseLockedError(ServiceError):
    """Another process holds the embedded DuckDB file (a DuckDB file admits one process).

    The default hint says how to run several processes: a private PostgreSQL and
    Redis from ``tcp-lab services up``.
    """

    HINT = ("a DuckDB file admits one process: to run the collector, bots and notebooks as "
            "separate processes, run `tcp-lab services up` and export the two URLs it prints "
            "(or `tcp-lab services up --write-settings`)")

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint or self.HINT)


class StrategyError(TcpLabError):
    """A strategy's parameters are invalid or its code misbehaved."""
