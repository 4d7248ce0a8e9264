"""The CLI's top-level behaviour: errors are one line and exit 2."""

from __future__ import annotations

import json
import subprocess
import sys

from tcp_lab.cli import main


def test_config_show_prints_redacted_settings(capsys, monkeypatch):
    monkeypatch.setenv("TCP_LAB_DATABASE_URL", "postgresql://bob:hunter2@db:5432/lab")
    assert main(["config", "show"]) == 0
    out = capsys.readouterr().out
    shown = json.loads(out)
    assert shown["database_url"] == "postgresql://bob:***@db:5432/lab"
    assert "hunter2" not in out


def test_config_show_redacts_passwords_given_as_query_parameters(capsys, monkeypatch):
    monkeypatch.setenv("TCP_LAB_DATABASE_URL", "postgresql://db/lab?password=hunter2")
    monkeypatch.setenv("TCP_LAB_REDIS_URL", "redis://cache:6379/0?password=hunter2&prefix=lab:")
    assert main(["config", "show"]) == 0
    out = capsys.readouterr().out
    shown = json.loads(out)
    assert shown["database_url"] == "postgresql://db/lab?password=***"
    assert shown["redis_url"] == "redis://cache:6379/0?password=***&prefix=lab:"
    assert "hunter2" not in out


def test_config_error_is_one_line_and_exit_2(capsys, monkeypatch):
    monkeypatch.setenv("TCP_LAB_REDIS_URL", "http://nope")
    assert main(["config", "show"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tcp-lab: error: invalid setting redis_url")
    assert err.count("\n") == 1


def test_console_script_runs_as_module():
    proc = subprocess.run([sys.executable, "-m", "tcp_lab", "--help"], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0
    assert "config" in proc.stdout


def test_a_duckdb_url_without_a_file_is_an_error(capsys, monkeypatch):
    monkeypatch.setenv("TCP_LAB_DATABASE_URL", "duckdb://")
    assert main(["db", "info"]) == 2
    err = capsys.readouterr().err
    assert "'duckdb://' names no file" in err and "duckdb:///:memory:" in err


def test_the_scheduler_error_lists_local(capsys, monkeypatch):
    monkeypatch.setenv("TCP_LAB_SCHEDULER", "bogus")
    assert main(["config", "show"]) == 2
    assert "or local (a Dask cluster on this machine)" in capsys.readouterr().err


def test_every_command_has_a_description():
    import argparse

    from tcp_lab.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    def has_actions(p):  # a group of subcommands lists them instead
        return any(isinstance(a, argparse._SubParsersAction) for a in p._actions)

    missing = [name for name, p in sub.choices.items()
               if not has_actions(p) and not (p.description or "").strip()]
    assert missing == []


def test_strategy_list_reads_as_plain_text(capsys):
    assert main(["strategy", "list"]) == 0
    assert "``" not in capsys.readouterr().out
