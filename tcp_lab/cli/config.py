"""``tcp-lab config show``: the resolved settings, secrets redacted."""

from __future__ import annotations

import argparse
import json

from tcp_lab.settings import load_settings


def _show(args: argparse.Namespace) -> int:
    settings = load_settings()
    print(json.dumps(settings.redacted(), indent=2))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("config", help="show the resolved settings")
    cmds = p.add_subparsers(dest="config_command", metavar="ACTION")
    cmds.required = True
    show = cmds.add_parser("show", help="print the resolved settings (passwords redacted)")
    show.set_defaults(handler=_show)
