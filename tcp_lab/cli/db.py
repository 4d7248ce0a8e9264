"""``tcp-lab db init`` and ``tcp-lab db info``: create the tables, show what is stored."""

from __future__ import annotations

import argparse
import json


def _open(args: argparse.Namespace):
    from tcp_lab.store import open_store

    return open_store(args.url, init=False)


def _init(args: argparse.Namespace) -> int:
    with _open(args) as store:
        before = store.info()["schema_version"]
        version = store.init_schema()
        if version == before:
            print(f"{store.url}: schema is up to date (version {version})")
        else:
            print(f"{store.url}: schema migrated from version {before} to {version}")
    return 0


def _info(args: argparse.Namespace) -> int:
    with _open(args) as store:
        info = store.info()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"backend         {info['backend']}")
    print(f"url             {info['url']}")
    for key in ("path", "schema"):
        if key in info:
            print(f"{key:<15} {info[key]}")
    version, latest = info["schema_version"], info["latest_schema_version"]
    note = "" if version == latest else "  (run `tcp-lab db init`)"
    print(f"schema version  {version} of {latest}{note}")
    if info["tables"]:
        print("tables")
        width = max(len(name) for name in info["tables"])
        for name, rows in info["tables"].items():
            print(f"  {name:<{width}}  {rows:>12,} rows")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("db", help="create the database tables, show what is stored")
    cmds = p.add_subparsers(dest="db_command", metavar="ACTION")
    cmds.required = True
    url_help = "database URL (default: the database_url setting, TCP_LAB_DATABASE_URL)"
    init = cmds.add_parser("init", help="create or migrate the tables (safe to repeat)")
    init.add_argument("--url", help=url_help)
    init.set_defaults(handler=_init)
    info = cmds.add_parser("info", help="backend, URL (password hidden), tables and row counts")
    info.add_argument("--url", help=url_help)
    info.add_argument("--json", action="store_true", help="print JSON")
    info.set_defaults(handler=_info)
