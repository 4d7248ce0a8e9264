"""Faults injected on command: the next ``count`` matching requests misbehave.

========================  =========  ==========================================================
kind                      applies to what happens (parameters, defaults)
========================  =========  ==========================================================
``rate_limit``            REST       HTTP 429 (``status=418`` for a ban) with ``Retry-After``
                                     seconds (``retry_after=1``) and Binance's -1003 body
``server_error``          REST       HTTP 5xx (``status=503``); ``body="html"`` (a proxy error
                                     page, what ccxt maps to ExchangeNotAvailable) or
                                     ``body="json"`` (Binance's -1001 body, OperationFailed)
``timeout``               REST       the response is held ``seconds=30`` (longer than the
                                     client's timeout), then sent normally
``malformed``             REST       HTTP 200 with a body that is not valid JSON:
                                     ``mode="truncated"`` (the real body cut in half) or
                                     ``mode="html"``
``drop_ws``               websocket  the next ``count`` websocket connections are closed
                                     (``code=1001``)
``trade_gap``             websocket  ``size=5`` consecutive trade ids are left out of the
                                     trade streams (still served by REST); ``count`` gaps
========================  =========  ==========================================================

REST faults take an optional ``path`` (e.g. ``"/api/v3/klines"``): only requests whose
path starts with it match. ``trade_gap`` takes an optional ``symbol`` (``"BTC/USDT"``).
The control endpoints under ``/_emulator`` never match.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from tcp_lab.errors import ConfigError

__all__ = ["FAULT_KINDS", "Fault", "FaultBoard"]

#: kind -> (channel, {parameter: default})
FAULT_KINDS: dict[str, tuple[str, dict[str, Any]]] = {
    "rate_limit": ("rest", {"retry_after": 1, "status": 429, "path": None}),
    "server_error": ("rest", {"status": 503, "body": "html", "path": None}),
    "timeout": ("rest", {"seconds": 30.0, "path": None}),
    "malformed": ("rest", {"mode": "truncated", "path": None}),
    "drop_ws": ("ws", {"code": 1001}),
    "trade_gap": ("ws", {"size": 5, "symbol": None}),
}
_CHOICES = {"status": None, "body": ("html", "json"), "mode": ("truncated", "html")}


@dataclass
class Fault:
    """One injected fault; ``remaining`` counts down as requests consume it."""

    kind: str
    remaining: int
    params: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "remaining": self.remaining, **self.params}


def _check(kind: str, params: dict[str, Any]) -> dict[str, Any]:
    if kind not in FAULT_KINDS:
        raise ConfigError(f"unknown fault kind {kind!r}",
                          hint="use one of " + ", ".join(FAULT_KINDS))
    defaults = FAULT_KINDS[kind][1]
    unknown = sorted(set(params) - set(defaults))
    if unknown:
        raise ConfigError(f"fault {kind!r} has no parameter(s) {', '.join(unknown)}",
                          hint="its parameters are: " + (", ".join(defaults) or "none"))
    out = {**defaults, **params}
    if kind == "rate_limit" and out["status"] not in (418, 429):
        raise ConfigError(f"rate_limit status must be 429 or 418, got {out['status']!r}")
    status = out.get("status")
    if kind == "server_error" and not (isinstance(status, int) and 500 <= status <= 599):
        raise ConfigError(f"server_error status must be 500..599, got {out['status']!r}")
    for name in ("body", "mode"):
        if name in out and out[name] not in _CHOICES[name]:
            raise ConfigError(f"fault {kind!r}: {name}={out[name]!r} is not one of "
                              + ", ".join(_CHOICES[name]))
    for name in ("seconds", "retry_after", "size"):
        if name in out and not (isinstance(out[name], int | float) and out[name] >= 0):
            raise ConfigError(f"fault {kind!r}: {name} must be a number >= 0, got {out[name]!r}")
    return out


class FaultBoard:
    """Thread-safe queue of pending faults (injected from any thread, consumed by the server)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: list[Fault] = []
        self.applied: Counter[str] = Counter()

    def inject(self, kind: str, count: int = 1, **params: Any) -> Fault:
        """Queue a fault for the next ``count`` matching requests; see the module docs."""
        if not (isinstance(count, int) and count >= 1):
            raise ConfigError(f"fault count must be an integer >= 1, got {count!r}")
        fault = Fault(kind, count, _check(kind, params))
        with self._lock:
            self._pending.append(fault)
        return fault

    def take(self, kinds: tuple[str, ...], *, path: str | None = None,
             symbol: str | None = None) -> Fault | None:
        """Consume one use of the first pending fault of ``kinds`` matching path/symbol."""
        with self._lock:
            for fault in self._pending:
                if fault.kind not in kinds:
                    continue
                want_path = fault.params.get("path")
                if want_path and (path is None or not path.startswith(want_path)):
                    continue
                want_symbol = fault.params.get("symbol")
                if want_symbol and symbol != want_symbol:
                    continue
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._pending.remove(fault)
                self.applied[fault.kind] += 1
                return Fault(fault.kind, fault.remaining, dict(fault.params))
            return None

    def has(self, kind: str) -> bool:
        """Whether a fault of ``kind`` is pending."""
        with self._lock:
            return any(f.kind == kind for f in self._pending)

    def pending(self) -> list[dict[str, Any]]:
        """The pending faults, oldest first."""
        with self._lock:
            return [f.as_dict() for f in self._pending]

    def clear(self) -> None:
        """Drop every pending fault."""
        with self._lock:
            self._pending.clear()
