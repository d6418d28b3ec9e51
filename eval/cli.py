"""``anomamind bench`` (run detectors over labelled series, write the report) and
``anomamind detectors`` (the registered detectors, one line each).

Exit codes: 0 when the run finished; 1 when some detector failed on every series (the
reason is printed: CI and scripts must not take such a run for a result); 2 for bad input
(unknown dataset or detector, an empty or missing folder, a malformed ``--set``), with one
clear line on stderr; 75 (EX_TEMPFAIL) when another run holds the lock of ``--out``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from anomamind.cli_options import add_deprecated_alias, add_set_option, set_to_set

#: Exit code when a detector failed on every series.
ALL_FAILED = 1
#: Exit code for bad command-line input.
USAGE_ERROR = 2
#: Exit code when another run writes the same --out (sysexits' EX_TEMPFAIL: try later).
OUT_LOCKED = 75


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``bench`` and ``detectors`` subcommands."""
    bench = subparsers.add_parser(
        "bench",
        help="run detectors over series; write summary.csv, per_series.csv, table.md, plots (metrics need labels)",
        description="Run every detector on every series (resumable: finished pairs are cached under --out). "
        "Series without a label column are run but not scored.",
    )
    bench.add_argument("--data", required=True, help="'synthetic', 'synthetic:N', a CSV file, or a folder of them")
    bench.add_argument("--column", default=None, help="the value column of the CSV files (a name or a 0-based position)")
    bench.add_argument("--datasets", nargs="+", default=None, metavar="NAME", help="keep only these datasets (e.g. YAHOO TODS IOPS WSD)")
    bench.add_argument("--detector", action="append", required=True, metavar="NAME", help="a registered detector (repeatable); see `anomamind detectors`")
    bench.add_argument("--out", required=True, help="output folder (also the cache: re-running resumes)")
    bench.add_argument("--workers", type=int, default=1, help="parallel worker processes (default 1: in-process)")
    bench.add_argument("--limit", type=int, default=None, metavar="K", help="first K series of each dataset")
    add_set_option(
        bench,
        "an option of one detector, prefixed by its --detector name: sr.score_window=21, "
        "heuristic-agent.disable=[localization], heuristic-agent.evaluator=false; for the agents any "
        "other key overrides their config file. Repeatable; the value is parsed as YAML",
    )
    add_deprecated_alias(bench, "--detector-option", "--set NAME.key=value", set_to_set, metavar="NAME.key=value")
    bench.add_argument("--sample-plots", type=int, default=6, help="series plotted per detector (default 6; existing plots are kept)")
    bench.add_argument("--seed", type=int, default=0, help="seed of the synthetic data (default 0)")
    bench.add_argument("--no-progress", action="store_true", help="no progress bar")
    bench.add_argument("--trusted-rules", action="store_true",
                       help="rules:PATH detectors run even where the OS sandbox is unavailable (only for rules you trust)")
    bench.set_defaults(func=run_bench_command)

    listing = subparsers.add_parser(
        "detectors", help="list the registered detectors with a one-line description each",
        description="The names --detector takes in bench and detect; detectors whose optional "
        "dependency is missing are marked with the extra that installs it.",
    )
    listing.set_defaults(func=run_detectors_command)


def _fail(message: str) -> int:
    print(f"anomamind bench: error: {message}", file=sys.stderr)
    return USAGE_ERROR


def run_bench_command(args: argparse.Namespace) -> int:
    import pandas as pd

    from anomamind.cli_options import options_per_detector
    from anomamind.config import ConfigError
    from anomamind.envs.datasets import resolve_data
    from anomamind.eval.bench import BenchAborted, failed_everywhere, run_benchmark
    from anomamind.eval.registry import UnknownDetectorError, available_detectors
    from anomamind.folder_lock import FolderLocked
    from anomamind.types import DataError

    if args.workers < 1:
        return _fail(f"--workers must be at least 1, got {args.workers}")
    detectors = list(dict.fromkeys(args.detector))
    try:
        options = options_per_detector(args.set, detectors)
    except ConfigError as err:
        return _fail(str(err))
    if args.trusted_rules:
        for name in detectors:
            if name.startswith("rules:"):
                options.setdefault(name, {})["trusted_rules"] = True
    known = set(available_detectors())
    for name in detectors:
        prefix = name.split(":", 1)[0] + ":ARG" if ":" in name else name
        if name not in known and prefix not in known:
            return _fail(f"unknown detector {name!r}; registered: {', '.join(sorted(known))}")
    try:
        loaded = resolve_data(args.data, datasets=args.datasets, limit=args.limit, seed=args.seed, column=args.column)
    except DataError as err:
        return _fail(str(err))
    for _, message in loaded.failures:
        print(f"warning: skipped {message}", file=sys.stderr)
    if not loaded.series:
        return _fail(f"--data {args.data!r}: no series could be loaded")
    try:
        run_benchmark(
            loaded.series,
            detectors,
            args.out,
            workers=args.workers,
            detector_options=options,
            sample_plots=args.sample_plots,
            progress=not args.no_progress,
            data_label=f"--data {args.data}" + (f" --datasets {' '.join(args.datasets)}" if args.datasets else ""),
            load_failures=loaded.failures,
            command=args.command_line,
        )
    except FolderLocked as err:
        print(f"anomamind bench: {err}", file=sys.stderr)
        return OUT_LOCKED
    except (UnknownDetectorError, DataError, ValueError) as err:
        return _fail(str(err))
    except BenchAborted as err:
        print(f"anomamind bench: error: {err}", file=sys.stderr)
        return 1
    print(Path(args.out, "table.md").read_text())
    print(f"results in {args.out}/ (summary.csv, per_series.csv, table.md, plots/)")
    failed = failed_everywhere(pd.read_csv(Path(args.out, "per_series.csv"), keep_default_na=False))
    for name, reason in failed.items():
        print(f"anomamind bench: error: detector {name!r} failed on every series: {reason}", file=sys.stderr)
    return ALL_FAILED if failed else 0


def run_detectors_command(args: argparse.Namespace) -> int:
    from anomamind.eval.registry import describe_detectors

    rows = describe_detectors()
    width = max(len(name) for name, _, _ in rows)
    for name, summary, note in rows:
        print(f"{name:<{width}}  {summary}" + (f"  [{note}]" if note else ""))
    return 0
