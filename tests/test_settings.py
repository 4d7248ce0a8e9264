"""Settings: defaults, precedence, validation and redaction."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tcp_lab.errors import ConfigError
from tcp_lab.settings import load_settings, redact_url


def test_defaults_are_the_embedded_deployment(tmp_path):
    s = load_settings(env={"TCP_LAB_HOME": str(tmp_path)})
    assert s.home == tmp_path.resolve()
    assert s.database_url == f"duckdb:///{tmp_path.resolve() / 'tcp_lab.duckdb'}"
    assert s.redis_url == "memory://"
    assert s.scheduler is None
    assert s.is_embedded


def test_home_defaults_to_data_in_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    s = load_settings(env={})
    assert s.home == (tmp_path / "data").resolve()


def _project(tmp_path: Path) -> Path:
    root = tmp_path / "lab"
    (root / "config" / "bots").mkdir(parents=True)
    (root / "notebooks" / "deep").mkdir(parents=True)
    return root


def test_every_folder_of_a_project_resolves_the_same_home_and_store(tmp_path, monkeypatch):
    root = _project(tmp_path)
    seen = []
    for cwd in (root, root / "notebooks", root / "notebooks" / "deep"):
        monkeypatch.chdir(cwd)
        s = load_settings(env={})
        seen.append((s.root, s.home, s.database_url))
    assert seen == [(root.resolve(), (root / "data").resolve(),
                     f"duckdb:///{(root / 'data' / 'tcp_lab.duckdb').resolve()}")] * 3


def test_relative_paths_in_the_settings_file_are_taken_from_the_root(tmp_path, monkeypatch):
    root = _project(tmp_path)
    (root / "config" / "settings.json").write_text(json.dumps(
        {"home": "var/lab", "database_url": "duckdb:///var/db/lab.duckdb"}))
    monkeypatch.chdir(root / "notebooks")
    s = load_settings(env={})
    assert s.home == (root / "var" / "lab").resolve()
    assert s.database_url == f"duckdb:///{(root / 'var' / 'db' / 'lab.duckdb').resolve()}"
    # an explicit settings file in a project gets that project's root, wherever we run
    monkeypatch.chdir(tmp_path)
    s2 = load_settings(env={"TCP_LAB_SETTINGS_FILE": str(root / "config" / "settings.json")})
    assert (s2.root, s2.home, s2.database_url) == (s.root, s.home, s.database_url)


def test_urls_that_are_not_relative_files_are_kept(tmp_path):
    for url in ("duckdb:///:memory:", f"duckdb:///{tmp_path}/x.duckdb",
                "postgresql://u@db:5432/lab"):
        assert load_settings(env={"TCP_LAB_HOME": str(tmp_path)},
                             database_url=url).database_url == url


def test_environment_wins_over_settings_file(tmp_path):
    f = tmp_path / "settings.json"
    f.write_text(json.dumps({"redis_url": "redis://file:6379/0", "scheduler": "local"}))
    env = {"TCP_LAB_REDIS_URL": "redis://env:6379/1", "TCP_LAB_HOME": str(tmp_path)}
    s = load_settings(env=env, settings_file=f)
    assert s.redis_url == "redis://env:6379/1"
    assert s.scheduler == "local"


def test_overrides_win_over_environment(tmp_path):
    env = {"TCP_LAB_DATABASE_URL": "postgresql://a@h/db", "TCP_LAB_HOME": str(tmp_path)}
    s = load_settings(env=env, database_url="duckdb:///:memory:")
    assert s.database_url == "duckdb:///:memory:"


def test_settings_file_from_environment_variable(tmp_path):
    f = tmp_path / "s.json"
    f.write_text(json.dumps({"database_url": "postgresql://u@db:5432/lab"}))
    s = load_settings(env={"TCP_LAB_SETTINGS_FILE": str(f)})
    assert s.database_url == "postgresql://u@db:5432/lab"
    assert not s.database_url.startswith("duckdb")


def test_unknown_key_in_settings_file_names_it_and_suggests(tmp_path):
    f = tmp_path / "settings.json"
    f.write_text(json.dumps({"databse_url": "duckdb:///x.duckdb"}))
    match = r"unknown key 'databse_url'.*did you mean 'database_url'"
    with pytest.raises(ConfigError, match=match):
        load_settings(env={}, settings_file=f)


def test_invalid_json_names_file_and_line(tmp_path):
    f = tmp_path / "settings.json"
    f.write_text('{\n  "home": "x",\n}')
    with pytest.raises(ConfigError, match=r"settings\.json: invalid JSON at line 3"):
        load_settings(env={}, settings_file=f)


def test_missing_explicit_settings_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(env={"TCP_LAB_SETTINGS_FILE": str(tmp_path / "nope.json")})


@pytest.mark.parametrize(
    ("var", "value", "expected"),
    [
        ("TCP_LAB_DATABASE_URL", "mysql://root@h/db", "unknown scheme 'mysql'"),
        ("TCP_LAB_DATABASE_URL", "postgresq://u@h/db", "did you mean postgresql://"),
        ("TCP_LAB_DATABASE_URL", "just-a-path.duckdb", "has no scheme"),
        ("TCP_LAB_DATABASE_URL", "postgresql://u@h:99999999/db", "not a valid URL"),
        ("TCP_LAB_REDIS_URL", "http://localhost:6379", "unknown scheme 'http'"),
        ("TCP_LAB_SCHEDULER", "localhost:8786", "has no scheme"),
    ],
)
def test_malformed_urls_give_one_line_naming_the_variable(var, value, expected, tmp_path):
    with pytest.raises(ConfigError) as info:
        load_settings(env={var: value, "TCP_LAB_HOME": str(tmp_path)})
    msg = str(info.value)
    assert expected in msg
    assert var in msg
    assert "\n" not in msg


def test_passwords_are_redacted_everywhere(tmp_path):
    env = {
        "TCP_LAB_DATABASE_URL": "postgresql://bob:hunter2@db:5432/lab",
        "TCP_LAB_REDIS_URL": "redis://:hunter2@cache:6379/0",
        "TCP_LAB_HOME": str(tmp_path),
    }
    s = load_settings(env=env)
    assert s.database_url.endswith("@db:5432/lab")  # the real value is kept for use
    for text in (repr(s), str(s), json_dump(s.redacted())):
        assert "hunter2" not in text
        assert "***" in text


def test_bad_url_error_does_not_leak_password(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_settings(env={"TCP_LAB_DATABASE_URL": "mysql://bob:hunter2@h/db"})
    assert "hunter2" not in str(info.value)


def json_dump(obj) -> str:
    return json.dumps(obj)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://bob:pw@db:5432/lab", "postgresql://bob:***@db:5432/lab"),
        ("redis://:pw@cache:6379/0", "redis://:***@cache:6379/0"),
        ("postgresql://bob@db/lab", "postgresql://bob@db/lab"),
        ("duckdb:////tmp/x.duckdb", "duckdb:////tmp/x.duckdb"),
        ("postgresql://db/lab?password=pw&sslmode=require",
         "postgresql://db/lab?password=***&sslmode=require"),
        ("postgresql://bob@db/lab?sslpassword=pw&sslkey=/k.pem&passfile=/p",
         "postgresql://bob@db/lab?sslpassword=***&sslkey=/k.pem&passfile=/p"),
        ("redis://cache:6379/0?prefix=lab:&Password=pw", "redis://cache:6379/0?prefix=lab:&Password=***"),
        ("rediss://u:a@b@cache/0?token=t&client_secret=s#f",
         "rediss://u:***@cache/0?token=***&client_secret=***#f"),
        ("unix://:pw@/run/redis.sock?db=0", "unix://:***@/run/redis.sock?db=0"),
        ("redis://cache/0?password=", "redis://cache/0?password="),  # nothing to hide
        ("http://[::1", "<unparseable URL>"),
        (None, None),
    ],
)
def test_redact_url(url, expected):
    assert redact_url(url) == expected


# -- redaction for all inputs ---------------------------------------------------------------
SECRET = "Zq9x"  # starts every generated secret, so a leak is found whatever follows
SECRET_PARAMS = ("password", "sslpassword", "PASSWORD", "token", "auth_token", "client_secret",
                 "api_key")
PLAIN_PARAMS = ("sslmode", "prefix", "schema", "passfile", "sslkey", "application_name",
                "connect_timeout", "db")
secrets = st.text(min_size=0, max_size=12).map(lambda s: SECRET + s)
plain_values = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789/_.:-", max_size=10)
users = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_.-", max_size=8)
hosts = st.sampled_from(["db", "127.0.0.1", "[::1]", "cache.example.org", ""])
schemes = st.sampled_from(["postgresql", "postgres", "postgresql+psycopg2", "redis", "rediss",
                           "unix"])
paths = st.sampled_from(["", "/lab", "/0", "/run/redis.sock"])
plain_query = st.lists(st.tuples(st.sampled_from(PLAIN_PARAMS), plain_values), max_size=3)


def build_url(scheme, user, password, host, port, path, query) -> str:
    """A URL as written in TCP_LAB_*_URL: user info and query values percent-encoded."""
    userinfo = ""
    if password is not None:
        userinfo = f"{quote(user, safe='')}:{quote(password, safe='')}@"
    elif user:
        userinfo = f"{quote(user, safe='')}@"
    netloc = f"{userinfo}{host}{'' if port is None else f':{port}'}"
    text = "&".join(f"{k}={quote(v, safe='')}" for k, v in query)
    return f"{scheme}://{netloc}{path}" + (f"?{text}" if text else "")


def leaks(secret: str, text: str) -> bool:
    return any(form in text for form in (secret, quote(secret, safe=""), quote(secret)))


@given(scheme=schemes, user=users, host=hosts, port=st.none() | st.integers(1, 65535),
       path=paths, plain=plain_query, position=st.sampled_from(["user", "query", "both"]),
       secret=secrets, param=st.sampled_from(SECRET_PARAMS), at=st.integers(0, 3))
def test_no_secret_survives_in_either_position(scheme, user, host, port, path, plain,
                                                position, secret, param, at):
    query = list(plain)
    if position in ("query", "both"):
        query.insert(min(at, len(query)), (param, secret))
    url = build_url(scheme, user, secret if position in ("user", "both") else None, host,
                    port, path, query)
    shown = redact_url(url)
    assert not leaks(secret, shown), (url, shown)
    parts, original = urlsplit(shown), urlsplit(url)
    assert parts.password == ("***" if position in ("user", "both") else None)
    assert (parts.hostname, parts.port, parts.path) == (original.hostname, original.port,
                                                        original.path)
    shown_query = parse_qsl(parts.query, keep_blank_values=True)
    expected = [(k, "***" if k == param and v == secret else v)
                for k, v in parse_qsl(original.query, keep_blank_values=True)]
    assert shown_query == expected  # every other parameter kept, in order
    assert redact_url(shown) == shown  # idempotent


@given(scheme=schemes, user=users, host=hosts, port=st.none() | st.integers(1, 65535),
       path=paths, plain=plain_query)
def test_a_url_without_secrets_is_unchanged(scheme, user, host, port, path, plain):
    url = build_url(scheme, user, None, host, port, path, plain)
    assert redact_url(url) == url


@pytest.mark.parametrize("url", [
    "postgresql://db:5432/lab?password=hunter2",
    "postgresql://db:5432/lab?sslmode=prefer&sslpassword=hunter2",
    "redis://cache:6379/0?password=hunter2",
])
def test_query_passwords_are_redacted_by_config_show_and_errors(tmp_path, url):
    key = "TCP_LAB_DATABASE_URL" if url.startswith("postgresql") else "TCP_LAB_REDIS_URL"
    s = load_settings(env={key: url, "TCP_LAB_HOME": str(tmp_path)})
    for text in (repr(s), str(s), json_dump(s.redacted())):
        assert "hunter2" not in text and "=***" in text
    bad = url.replace("postgresql://", "mysql://").replace("redis://", "rdis://")
    with pytest.raises(ConfigError) as info:
        load_settings(env={key: bad, "TCP_LAB_HOME": str(tmp_path)})
    assert "hunter2" not in str(info.value) and "***" in str(info.value)


def test_settings_are_immutable(tmp_path):
    s = load_settings(env={"TCP_LAB_HOME": str(tmp_path)})
    with pytest.raises(Exception):  # noqa: B017 - pydantic's frozen-instance error
        s.redis_url = "redis://x"  # type: ignore[misc]


def test_update_settings_file_keeps_other_keys_and_validates(tmp_path):
    from tcp_lab.settings import update_settings_file

    f = tmp_path / "config" / "settings.json"
    assert update_settings_file({"redis_url": "redis://127.0.0.1:16379/0"}, f) == f  # created
    f.write_text(json.dumps({"scheduler": "local", "redis_url": "memory://"}))
    update_settings_file({"redis_url": "redis://127.0.0.1:16379/0"}, f)
    assert json.loads(f.read_text()) == {"scheduler": "local",
                                         "redis_url": "redis://127.0.0.1:16379/0"}
    before = f.read_text()
    with pytest.raises(ConfigError, match=f"invalid setting redis_url .*{f}"):
        update_settings_file({"redis_url": "http://nope"}, f)
    with pytest.raises(ConfigError, match="unknown key 'redis'"):
        update_settings_file({"redis": "redis://x"}, f)
    assert f.read_text() == before  # a rejected update leaves the file as it was
    assert [p.name for p in f.parent.iterdir()] == ["settings.json"]


def test_update_settings_file_writes_the_file_in_use(tmp_path):
    from tcp_lab.settings import settings_file_path, update_settings_file

    f = tmp_path / "mine.json"
    env = {"TCP_LAB_SETTINGS_FILE": str(f)}
    assert settings_file_path(env) == f
    assert settings_file_path({}) == Path.cwd().resolve() / "config" / "settings.json"
    update_settings_file({"database_url": "postgresql://postgres@127.0.0.1:15432/tcp_lab"},
                         env=env)
    assert load_settings(env=env).database_url == "postgresql://postgres@127.0.0.1:15432/tcp_lab"
