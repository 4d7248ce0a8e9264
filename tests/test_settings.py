"""Settings: defaults, precedence, validation and redaction."""

from __future__ import annotations

import json

import pytest

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
        (None, None),
    ],
)
def test_redact_url(url, expected):
    assert redact_url(url) == expected


def test_settings_are_immutable(tmp_path):
    s = load_settings(env={"TCP_LAB_HOME": str(tmp_path)})
    with pytest.raises(Exception):  # noqa: B017 - pydantic's frozen-instance error
        s.redis_url = "redis://x"  # type: ignore[misc]
