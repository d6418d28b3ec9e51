"""``anomamind sweep``: run an ablation sweep file and write its table."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from anomamind.cli_options import add_set_option


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "sweep",
        help="run the variants of a sweep file (configs/sweeps/*.yaml) and tabulate them",
        description="Run each variant of a sweep (inference variants through the benchmark "
        "runner, training variants through the training entry point), skip finished ones, "
        "and write OUT/table.md and OUT/table.csv.",
    )
    p.add_argument("sweep_file", help="a sweep YAML file, e.g. configs/sweeps/smoke.yaml")
    p.add_argument("--out", required=True, help="output folder (one sub-folder per variant)")
    p.add_argument("--data", help="override the data source of every variant (a folder or synthetic[:N])")
    p.add_argument("--datasets", nargs="+", help="override the datasets of every variant")
    p.add_argument("--limit", type=int, help="at most K series per dataset")
    p.add_argument("--workers", type=int, help="parallel processes for the benchmark runner")
    p.add_argument("--only", nargs="+", help="run only these variants (by name)")
    add_set_option(
        p,
        "override an entry of the sweep's base (every variant): workers=2, sample_plots=0, "
        "detector_options.window=50, train.eval_options.max_tokens=64. Repeatable; value parsed as YAML",
    )
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from anomamind.config import ConfigError, apply_overrides
    from anomamind.rl.sweep import load_sweep, run_sweep
    from anomamind.run_log import log_to_file

    overrides = {k: v for k, v in {"data": args.data, "datasets": args.datasets, "limit": args.limit,
                                   "workers": args.workers}.items() if v is not None}
    try:
        sweep = load_sweep(args.sweep_file, apply_overrides(overrides, args.set))
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    with log_to_file(Path(args.out) / "sweep.log"):
        records = run_sweep(sweep, args.out, only=args.only, command=args.command_line)
    print((Path(args.out) / "table.md").read_text())
    print(f"full log: {Path(args.out) / 'sweep.log'}")
    failed = [r["name"] for r in records if r["status"] != "ok"]
    if failed:
        print(f"{len(failed)} variant(s) failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed and len(failed) == len(records) else 0
