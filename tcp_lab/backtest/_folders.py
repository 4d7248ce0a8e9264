"""Stored folders (backtest runs, sweeps): written in one step, read with their ``meta.json``."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tcp_lab.errors import ConfigError, DataError

__all__ = ["META", "write_folder", "read_meta"]

META = "meta.json"


def write_folder(root: Path, name: str, meta: dict[str, Any], write: Callable[[Path], None],
                 what: str) -> None:
    """Write ``root/name``: ``meta.json`` and what ``write(folder)`` adds, all or nothing.

    The files go to a hidden sibling first, renamed into place at the end, so a reader
    never sees half a folder. ``what`` names the thing in errors ("the sweep").
    """
    try:
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=root))
        try:
            (tmp / META).write_text(json.dumps(meta, indent=2, allow_nan=False),
                                    encoding="utf-8")
            write(tmp)
            tmp.rename(root / name)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    except OSError as e:
        raise ConfigError(f"cannot store {what} in {root}: {e}") from e


def read_meta(path: Path, what: str) -> dict[str, Any]:
    """``path/meta.json``; :class:`DataError` naming ``what`` and the folder when unreadable."""
    try:
        return json.loads((path / META).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise DataError(f"{what} {path.name}: unreadable {META} ({e})") from e
