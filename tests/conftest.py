"""Shared fixtures: backends parametrised over DuckDB/PostgreSQL and fakeredis/Redis.

Service tests use their own PostgreSQL schema and Redis key prefix and remove
them afterwards, so they never touch a user's data. Where a server is not
reachable they skip with the reason; with ``TCP_LAB_REQUIRE_SERVICES=1`` (set by
``.ci/run``) they fail instead.

Servers default to the local ones and can be moved with
``TCP_LAB_TEST_POSTGRES_URL`` and ``TCP_LAB_TEST_REDIS_URL``.
"""

from __future__ import annotations

import os
import uuid

import pytest
from hypothesis import settings

# CI replays the same examples every run (a red run is reproducible); locally each run
# draws new ones, so property tests keep exploring.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

REQUIRE_SERVICES = os.environ.get("TCP_LAB_REQUIRE_SERVICES") == "1"
POSTGRES_URL = os.environ.get("TCP_LAB_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("TCP_LAB_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _unavailable(what: str, url: str, reason: str, env: str) -> None:
    msg = f"{what} not reachable at {url}: {reason}"
    if REQUIRE_SERVICES:
        pytest.fail(f"{msg} (TCP_LAB_REQUIRE_SERVICES=1: a missing server is a failure)")
    pytest.skip(f"{msg}; start it or point {env} at one")


@pytest.fixture(autouse=True)
def _isolated_settings(tmp_path, monkeypatch):
    """No test reads the user's settings, environment URLs or ./data."""
    for var in ("TCP_LAB_DATABASE_URL", "TCP_LAB_REDIS_URL", "TCP_LAB_SCHEDULER",
                "TCP_LAB_SETTINGS_FILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("TCP_LAB_HOME", str(tmp_path / "home"))
    empty = tmp_path / "empty_settings.json"
    empty.write_text("{}")
    monkeypatch.setenv("TCP_LAB_SETTINGS_FILE", str(empty))


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """URL of a reachable PostgreSQL server (skips, or fails in CI, when absent)."""
    import psycopg2

    try:
        psycopg2.connect(POSTGRES_URL, connect_timeout=3).close()
    except psycopg2.Error as e:
        _unavailable("PostgreSQL", POSTGRES_URL, str(e).strip().splitlines()[0],
                     "TCP_LAB_TEST_POSTGRES_URL")
    return POSTGRES_URL


@pytest.fixture
def postgres_url(postgres_server: str):
    """A ``postgresql://…?schema=tcp_lab_test_<hex>`` URL; the schema is dropped afterwards."""
    import psycopg2

    schema = f"tcp_lab_test_{uuid.uuid4().hex[:12]}"
    sep = "&" if "?" in postgres_server else "?"
    yield f"{postgres_server}{sep}schema={schema}"
    conn = psycopg2.connect(postgres_server, connect_timeout=3)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    conn.close()


@pytest.fixture(scope="session")
def redis_server() -> str:
    """URL of a reachable Redis server (skips, or fails in CI, when absent)."""
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3)
    try:
        client.ping()
    except redis.RedisError as e:
        _unavailable("Redis", REDIS_URL, str(e), "TCP_LAB_TEST_REDIS_URL")
    finally:
        client.close()
    return REDIS_URL


@pytest.fixture
def redis_url(redis_server: str):
    """A ``redis://…?prefix=tcp_lab_test_<hex>:`` URL; its keys are deleted afterwards."""
    import redis

    prefix = f"tcp_lab_test_{uuid.uuid4().hex[:12]}:"
    sep = "&" if "?" in redis_server else "?"
    yield f"{redis_server}{sep}prefix={prefix}"
    client = redis.Redis.from_url(redis_server, socket_connect_timeout=3)
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def duckdb_url(tmp_path) -> str:
    """A DuckDB file in the test's own temporary directory."""
    return f"duckdb:///{tmp_path / 'store.duckdb'}"


@pytest.fixture
def memory_bus_url() -> str:
    """A named in-process fakeredis server private to this test."""
    return f"memory://test-{uuid.uuid4().hex[:12]}"


@pytest.fixture(params=["duckdb", pytest.param("postgresql", marks=pytest.mark.services)])
def store_url(request) -> str:
    """Every store backend in turn: DuckDB, then PostgreSQL."""
    fixture = "duckdb_url" if request.param == "duckdb" else "postgres_url"
    return request.getfixturevalue(fixture)


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.services)])
def bus_url(request) -> str:
    """Every bus backend in turn: in-process fakeredis, then Redis."""
    fixture = "memory_bus_url" if request.param == "memory" else "redis_url"
    return request.getfixturevalue(fixture)
