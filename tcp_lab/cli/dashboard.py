"""``tcp-lab dashboard``: the workbench's panels on one page, served by Voila on 127.0.0.1."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys


def _dashboard(args: argparse.Namespace) -> int:
    from tcp_lab.errors import ConfigError
    from tcp_lab.settings import load_settings
    from tcp_lab.ui.dashboard import NOTEBOOK, ROOT_ENV

    settings = load_settings()
    try:
        import voila  # noqa: F401 - only to say what is missing
    except ImportError:
        raise ConfigError("tcp-lab dashboard needs Voila, which is not installed",
                          hint="pip install voila (or the dev extra: pip install -e '.[dev]')"
                          ) from None
    env = dict(os.environ)
    env[ROOT_ENV] = str(settings.root)
    # The page runs in its own kernel: it gets the settings this command resolved.
    env.update({"TCP_LAB_HOME": str(settings.home), "TCP_LAB_DATABASE_URL": settings.database_url,
                "TCP_LAB_REDIS_URL": settings.redis_url})
    cmd = [sys.executable, "-m", "voila", str(NOTEBOOK), "--no-browser", f"--port={args.port}",
           "--Voila.ip=127.0.0.1", "--Voila.port_retries=0",
           "--VoilaConfiguration.show_tracebacks=False", "--Voila.log_level=WARN"]
    urls = settings.redacted()
    print(f"dashboard: http://127.0.0.1:{args.port}/  (store {urls['database_url']}, bus "
          f"{urls['redis_url']}; Ctrl-C stops it)", flush=True)
    server = subprocess.Popen(cmd, env=env, cwd=settings.root)
    # `kill` of this command stops Voila too (it shuts its kernels down): without this the
    # server and its kernels outlived the command that started them
    previous = signal.signal(signal.SIGTERM, lambda *_: server.terminate())
    try:
        while True:
            try:
                code = server.wait()
                return 128 - code if code < 0 else code  # killed by signal N: 128 + N
            except KeyboardInterrupt:  # Ctrl-C reached Voila as well; let it finish
                continue
    finally:
        signal.signal(signal.SIGTERM, previous)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "dashboard", help="serve the dashboard page on 127.0.0.1",
        description="Serve one page with the bot panel (live status, start/stop), the market "
        "chart, the backtest panel and the heatmap of the newest saved sweep, with Voila on "
        "127.0.0.1 (open the printed URL). On the embedded default the page runs the bots it "
        "starts in its own kernel; with PostgreSQL + Redis it sends requests to `tcp-lab bots "
        "serve`.")
    p.add_argument("--port", type=int, default=8866, help="port on 127.0.0.1 (default: 8866)")
    p.set_defaults(handler=_dashboard)
