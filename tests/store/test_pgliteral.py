"""The fast literal renderer writes the bytes psycopg2's ``mogrify`` writes, for any values."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tcp_lab.store import JsonText
from tcp_lab.store._pgliteral import render

pytestmark = pytest.mark.services

values = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True),
    st.datetimes(timezones=st.sampled_from([dt.UTC, dt.timezone(dt.timedelta(hours=5,
                                                                           minutes=30))])),
    st.datetimes(),  # naive
    st.text(max_size=20),  # quoting: psycopg2's own, unless there is nothing to quote
    st.text(alphabet="ab'\\\"{}:\x00é ", max_size=12),
    st.builds(JsonText, st.text(alphabet='{}":1a ', max_size=12)),
    st.sampled_from([np.float64(1.5), pd.Timestamp("2024-01-01", tz="UTC"), b"x\x00y",
                     '{"a": "it\'s"}']),
)


@pytest.fixture(scope="module")
def cursor(postgres_server):
    import psycopg2

    conn = psycopg2.connect(postgres_server)
    yield conn.cursor()
    conn.close()


def outcome(fn, *args):
    """The bytes, or the error (type and message) they fail with (NUL in text, say)."""
    try:
        return fn(*args)
    except Exception as e:  # noqa: BLE001 - compared, not handled
        return type(e), str(e)


@settings(max_examples=300, deadline=None)
@given(st.lists(values, max_size=8), st.sampled_from(["", " LIKE 'a%%'", " -- %% "]))
def test_positional_matches_mogrify(cursor, params, tail):
    sql = "INSERT INTO t VALUES (" + ", ".join(["%s"] * len(params)) + ")" + tail
    assert outcome(render, cursor, sql, params) == outcome(cursor.mogrify, sql, params)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True), values,
                       min_size=1, max_size=6))
def test_named_matches_mogrify(cursor, params):
    names = list(params)
    sql = "SELECT " + ", ".join(f"%({n})s" for n in names + names[:1]) + " WHERE x LIKE '%%'"
    assert outcome(render, cursor, sql, params) == outcome(cursor.mogrify, sql, params)


def test_missing_and_extra_parameters_fail_like_mogrify(cursor):
    with pytest.raises(KeyError):
        render(cursor, "SELECT %(a)s", {"b": 1})
    with pytest.raises(IndexError):
        render(cursor, "SELECT %s, %s", [1])
    with pytest.raises(TypeError):
        render(cursor, "SELECT %s", [1, 2])
    assert render(cursor, "SELECT 'a%%'", None) == cursor.mogrify("SELECT 'a%%'", None)
