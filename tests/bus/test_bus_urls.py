"""Opening a bus: schemes, prefixes, named in-process servers, unreachable servers."""

from __future__ import annotations

import pandas as pd
import pytest

from tcp_lab.bus import StatusMessage, backend_schemes, backends, open_bus, status_channel
from tcp_lab.errors import ConfigError, ServiceError

MSG = StatusMessage(bot_id="b", status="running", ts=pd.Timestamp("2024-01-01", tz="UTC"))


def test_default_url_comes_from_settings(monkeypatch, memory_bus_url):
    with open_bus() as bus:
        assert bus.url == "memory://" and bus.prefix == ""
    monkeypatch.setenv("TCP_LAB_REDIS_URL", memory_bus_url + "?prefix=p:")
    with open_bus() as bus:
        assert bus.url == memory_bus_url + "?prefix=p:" and bus.prefix == "p:"


@pytest.mark.parametrize("url, match", [
    ("redsi://localhost:6379/0", "did you mean redis://"),
    ("kafka://localhost:9092", "unknown scheme 'kafka'"),
    ("localhost:6379", "no scheme"),
    ("memory://x?prefix=a:&prefix=b:", "more than one prefix"),
    ("memory://x?prefix=a*", "glob"),
    ("memory://x/path", "only a server name"),
    ("memory://x?db=1", "only a server name"),
    ("redis://localhost:6379/0?socket_timeout=soon", "invalid"),
])
def test_bad_urls_raise_config_error(url, match):
    with pytest.raises(ConfigError, match=match):
        open_bus(url)


def test_schemes_match_the_settings_list():
    from tcp_lab.settings import BUS_SCHEMES

    assert set(BUS_SCHEMES) <= set(backend_schemes())


@pytest.mark.timeout(20)  # a guard: port 1 refuses at once, no retry loop may hide that
def test_unreachable_redis_raises_service_error_with_redacted_url():
    with pytest.raises(ServiceError) as info:
        open_bus("redis://bob:s3cret@127.0.0.1:1/0?prefix=x:")
    text = str(info.value)
    assert "redis://bob:***@127.0.0.1:1/0" in text and "s3cret" not in text
    assert "unreachable" in text and "\n" not in text
    assert info.value.hint and "TCP_LAB_REDIS_URL" in info.value.hint


@pytest.mark.timeout(20)
def test_unreachable_redis_hides_a_password_given_as_a_query_parameter():
    with pytest.raises(ServiceError) as info:
        open_bus("redis://127.0.0.1:1/0?password=s3cret&prefix=x:")
    text = str(info.value)
    assert "redis://127.0.0.1:1/0?password=***&prefix=x:" in text and "s3cret" not in text


def test_named_memory_servers_are_isolated_and_shared_by_name(memory_bus_url):
    other = memory_bus_url + "-other"
    with open_bus(memory_bus_url) as a, open_bus(memory_bus_url) as a2, open_bus(other) as b:
        with a.subscribe(status_channel("b")) as sub_a, b.subscribe(status_channel("b")) as sub_b:
            assert a2.publish(status_channel("b"), MSG) == 1
            assert sub_a.get(timeout=2.0) == MSG
            assert sub_b.get(timeout=0.2) is None
        a.set_json("k", 1)
        assert a2.get_json("k") == 1 and b.get_json("k") is None


def test_registered_scheme_is_used(monkeypatch, memory_bus_url):
    seen = []

    def factory(url):
        seen.append(url)
        return backends._memory_client("memory://" + url.split("://", 1)[1])

    monkeypatch.setitem(backends._FACTORIES, "testbus", factory)
    with open_bus("testbus://x?prefix=p:") as bus:
        assert bus.prefix == "p:"
        bus.set_json("k", [1, 2])
        assert bus.get_json("k") == [1, 2]
    assert seen == ["testbus://x"]


@pytest.mark.services
def test_refused_credentials_are_a_config_error(own_redis_factory):
    server = own_redis_factory("--requirepass", "right-pw")
    url = server.url.replace("redis://", "redis://:wrong-pw@")
    with pytest.raises(ConfigError, match="refused the credentials") as info:
        open_bus(url)
    assert "wrong-pw" not in str(info.value) and ":***@" in str(info.value)
    with open_bus(server.url.replace("redis://", "redis://:right-pw@")) as bus:
        bus.set_json("k", 1)
        assert bus.get_json("k") == 1
