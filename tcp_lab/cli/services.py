"""``tcp-lab services up|down|status|env``: a private PostgreSQL and Redis under TCP_LAB_HOME."""

from __future__ import annotations

import argparse
import os
import shlex
import sys


def _table(statuses, *, action: bool) -> None:
    rows = [(s.name, s.action if action else ("running" if s.running else "stopped"),
             str(s.pid or "-"), s.address, s.user, str(s.data_dir)) for s in statuses]
    head = ("service", "state", "pid", "address", "user", "data")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    for row in [head, *rows]:
        cells = [f"{cell:<{w}}" for cell, w in zip(row, widths, strict=True)]
        print("  ".join(cells).rstrip())


def _exports(env: dict[str, str]) -> list[str]:
    return [f"export {var}={shlex.quote(url)}" for var, url in env.items()]


def _up(args: argparse.Namespace) -> int:
    from tcp_lab.services import service_env, services_dir, start_services
    from tcp_lab.settings import ENV_VARS, update_settings_file

    statuses = start_services(postgres_port=args.postgres_port, redis_port=args.redis_port)
    _table(statuses, action=True)
    env = service_env()
    print(f"data and logs in {services_dir()} (kept between runs); "
          "stop them with `tcp-lab services down`")
    if os.geteuid() == 0:
        print("PostgreSQL refuses to run as root: it runs as the OS user shown above")
    if args.write_settings:
        key_of = {var: key for key, var in ENV_VARS.items()}
        path = update_settings_file({key_of[var]: url for var, url in env.items()})
        print(f"wrote database_url and redis_url to {path} (other keys kept)")
        overridden = [var for var in env if os.environ.get(var)]
        if overridden:
            print(f"note: {' and '.join(overridden)} set in this environment win over {path}; "
                  "unset them or export the lines below", file=sys.stderr)
    else:
        print('in each shell that runs tcp_lab, export these (or `eval "$(tcp-lab services env)"`,'
              " or `tcp-lab services up --write-settings` to put them in the settings file):")
    for line in _exports(env):
        print(line)
    return 0


def _down(args: argparse.Namespace) -> int:
    from tcp_lab.services import stop_services

    _table(stop_services(), action=True)
    return 0


def _status(args: argparse.Namespace) -> int:
    from tcp_lab.services import list_services

    statuses = list_services()
    _table(statuses, action=False)
    return 0 if all(s.running for s in statuses) else 1


def _env(args: argparse.Namespace) -> int:
    from tcp_lab.services import list_services, service_env

    for line in _exports(service_env()):
        print(line)
    stopped = [s.name for s in list_services() if not s.running]
    if stopped:
        print(f"tcp-lab: note: {' and '.join(stopped)} not running; start with "
              "`tcp-lab services up`", file=sys.stderr)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "services", help="a private PostgreSQL and Redis for several processes (no root, "
                         "no docker)",
        description="Start, stop and show a private PostgreSQL and Redis under "
                    "$TCP_LAB_HOME/services, bound to 127.0.0.1, from the services extra "
                    "(pip install 'tcp_lab[services]'). The embedded default (DuckDB, "
                    "in-process bus) serves one process; with these, the collector, bots and "
                    "notebooks can run as separate processes.")
    cmds = p.add_subparsers(dest="services_command", metavar="ACTION")
    cmds.required = True
    up = cmds.add_parser("up", help="start them (safe to repeat) and print the URLs to export")
    up.add_argument("--postgres-port", type=int, metavar="N",
                    help="PostgreSQL's port (default: the last one, else 15432 or the next free)")
    up.add_argument("--redis-port", type=int, metavar="N",
                    help="Redis's port (default: the last one, else 16379 or the next free)")
    up.add_argument("--write-settings", action="store_true",
                    help="also write both URLs to the settings file (config/settings.json or "
                         "$TCP_LAB_SETTINGS_FILE), keeping its other keys")
    up.set_defaults(handler=_up)
    down = cmds.add_parser("down", help="stop them; their data is kept")
    down.set_defaults(handler=_down)
    status = cmds.add_parser("status", help="what runs where (exit status 1 unless both run)")
    status.set_defaults(handler=_status)
    env = cmds.add_parser("env", help='print the export lines (eval "$(tcp-lab services env)")')
    env.set_defaults(handler=_env)
