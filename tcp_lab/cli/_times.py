"""The one parser of times given on the command line.

Every time option of ``tcp-lab`` (``backtest --start/--end``, ``collect
--since/--until``, ``emulator --genesis/--start-at``) is parsed here, as an
argparse ``type``: a bare date or a time without a zone is UTC, and a bad
value is a one-line error in command-line terms (``argument --start: …``).

>>> utc_time("2024-01-01")
Timestamp('2024-01-01 00:00:00+0000', tz='UTC')
>>> utc_time("2024-01-01T12:00+02:00")
Timestamp('2024-01-01 10:00:00+0000', tz='UTC')
"""

from __future__ import annotations

import argparse

import pandas as pd

__all__ = ["utc_time", "EXAMPLE"]

EXAMPLE = "e.g. 2024-01-01 or 2024-01-01T12:00Z (a time without a zone is UTC)"


def utc_time(text: str) -> pd.Timestamp:
    """A tz-aware UTC timestamp (µs) from ``text``; raises ``ArgumentTypeError``."""
    try:
        ts = pd.Timestamp(text.strip())
    except (ValueError, TypeError, AttributeError) as e:
        raise argparse.ArgumentTypeError(f"{text!r} is not a time ({e}); {EXAMPLE}") from None
    if ts is pd.NaT:
        raise argparse.ArgumentTypeError(f"{text!r} is not a time; {EXAMPLE}")
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return ts.as_unit("us")
