"""Channel names: one definition, helpers and patterns agree, bad names are refused."""

from __future__ import annotations

from fnmatch import fnmatchcase

import pytest

from tcp_lab.bus import (
    SYSTEM_EVENTS,
    market_channel,
    market_pattern,
    signals_channel,
    signals_pattern,
    status_channel,
    status_pattern,
    system_channel,
    trades_channel,
    trades_pattern,
)
from tcp_lab.bus.channels import CHANNEL_MESSAGE_TYPES, channel_family, check_channel
from tcp_lab.errors import DataError


def test_channel_names():
    assert market_channel("BTC/USDT") == "market:BTC/USDT"
    assert trades_channel("BTC/USDT") == "trades:BTC/USDT"
    assert signals_channel("sma-1") == "signals:sma-1"
    assert status_channel("sma-1") == "status:sma-1"
    assert system_channel() == SYSTEM_EVENTS == "system:events"


@pytest.mark.parametrize("make, pattern, other", [
    (market_channel, market_pattern(), status_channel),
    (trades_channel, trades_pattern(), market_channel),
    (signals_channel, signals_pattern(), status_channel),
    (status_channel, status_pattern(), signals_channel),
])
def test_patterns_match_their_family_only(make, pattern, other):
    for name in ("BTC/USDT", "bot-1", "ETH/USDT:USDT"):
        assert fnmatchcase(make(name), pattern)
        assert not fnmatchcase(other(name), pattern)


def test_every_family_has_a_message_type():
    channels = [market_channel("A/B"), trades_channel("A/B"), signals_channel("b"),
                status_channel("b"), system_channel()]
    assert {channel_family(c) for c in channels} == set(CHANNEL_MESSAGE_TYPES)
    assert set(CHANNEL_MESSAGE_TYPES.values()) == {"candle", "trades", "signal", "status",
                                                   "event"}


@pytest.mark.parametrize("bad", ["", "a b", "bot*", "bot?", "[x]", "a\\b", "tab\t", "nl\n", 3])
def test_bad_names_are_refused(bad):
    with pytest.raises(DataError, match="channel name"):
        status_channel(bad)


def test_glob_in_a_concrete_channel_points_to_patterns():
    with pytest.raises(DataError, match="patterns="):
        check_channel("status:*")
