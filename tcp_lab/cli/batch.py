"""``tcp-lab batch``: run a notebook once per parameter set of a batch config."""

from __future__ import annotations

import argparse

_SHOWN = 20  # summary rows printed


def _run(args: argparse.Namespace) -> int:
    from tcp_lab.batch import load_batch_config, run_batch
    from tcp_lab.reports.html import format_metric

    cfg = load_batch_config(args.config)
    result = run_batch(
        cfg,
        output_dir=args.output_dir,
        max_workers=args.workers,
        executor="serial" if args.serial else None,
        progress=not args.no_progress,
    )
    df = result.summary
    params = _varying(df)
    source = ["source"] if "source" in df.columns and "source" not in params else []
    cols = ["run", "status", *params, *source,
            *([cfg.metric] if cfg.metric in df.columns else []), "error"]
    shown = df[cols].head(_SHOWN).copy()
    if cfg.metric in shown.columns:
        shown[cfg.metric] = [format_metric(cfg.metric, v) for v in shown[cfg.metric]]
    shown["error"] = shown["error"].fillna("")
    print(shown.to_string(index=False))
    if len(df) > _SHOWN:
        print(f"… {len(df) - _SHOWN} more in the summary")
    print(f"{len(result.records)} run(s), {len(result.failed)} failed, {result.seconds:.1f} s")
    print(f"summary: {result.summary_html}")
    print(f"         {result.summary_csv}")
    return 1 if result.failed else 0


def _varying(df) -> list[str]:
    """Parameter columns whose value differs between runs (the ones worth printing)."""
    return [c for c in df.attrs.get("parameter_columns", [])
            if df[c].astype(str).nunique() > 1]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "batch",
        help="run a notebook once per parameter set (papermill, in parallel)",
        description="Run the notebook a batch config names once per parameter set, in "
        "parallel, and write each executed notebook, its HTML export and a summary table "
        "(best first). Runs read the stored candles unless the config's parameters say "
        '"source": "synthetic"; a series missing from the store, an invalid strategy '
        "parameter in any run, or an embedded DuckDB store with TCP_LAB_SCHEDULER set is "
        "an error (exit 2) before anything runs. Exit status 1 when a run failed (the "
        "summary names it).",
    )
    p.add_argument("config", help="batch config, e.g. config/batches/sma_demo.json")
    p.add_argument("--output-dir", metavar="DIR",
                   help="default $TCP_LAB_HOME/batches/<name>/<UTC timestamp>/")
    p.add_argument("--workers", type=int, metavar="N", help="runs at once (default: cores)")
    p.add_argument("--serial", action="store_true", help="one run after another, in-process")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(handler=_run)
