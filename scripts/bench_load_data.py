"""How long does loading a TSB-AD-U folder take? Writes a Markdown report (target: < 10 s).

Example (the numbers in benchmarks/data_load.md):

    python scripts/bench_load_data.py --root ../shared/data/tsbad/dev --out benchmarks/data_load.md

Each repeat loads the whole folder with ``load_directory`` (read, hash, parse, validate
every file); the first repeat may include cold disk reads, so the median is reported next
to the first. The embedded synthetic set and the paper preprocessing are timed too.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from anomamind.envs.datasets import resolve_data
from anomamind.envs.loaders import load_directory
from anomamind.envs.preprocess import preprocess
from anomamind.provenance import command_line, header_lines


def timed(fn, repeats: int) -> tuple[list[float], object]:
    seconds, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        seconds.append(time.perf_counter() - start)
    return seconds, result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True, help="folder of TSB-AD-U CSVs (dataset subfolders allowed)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--split", default="dev", help="name of the split, for the report")
    parser.add_argument("--out", help="Markdown file to write (default: print only)")
    args = parser.parse_args(argv)

    load_times, result = timed(lambda: load_directory(args.root), args.repeats)
    series = result.series
    points = sum(len(s) for s in series)
    prep_times, _ = timed(lambda: [preprocess(s.values, mode="paper") for s in series], 1)
    synth_times, synth = timed(lambda: resolve_data("synthetic"), 1)

    rows = []
    for name in result.datasets:
        group = [s for s in series if s.dataset == name]
        rows.append(f"| {name} | {len(group)} | {sum(len(s) for s in group):,} |")
    median = statistics.median(load_times)
    verdict = "meets" if median < 10 else "MISSES"
    report = "\n".join(
        [
            "# Data loading benchmark",
            "",
            *header_lines(command_line(argv=argv), split=f"{args.split} (`{args.root}`)"),
            f"- Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
            "",
            "| what | seconds |",
            "| --- | --- |",
            f"| load_directory, first of {args.repeats} | {load_times[0]:.2f} |",
            f"| load_directory, median of {args.repeats} | {median:.2f} |",
            f"| preprocess (paper mode) of every series | {prep_times[0]:.2f} |",
            f"| generate the embedded synthetic set ({len(synth.series)} series) | {synth_times[0]:.2f} |",
            "",
            f"Loaded {len(series)} series, {points:,} points; {len(result.failures)} file(s) skipped. "
            f"Median load time {median:.2f} s {verdict} the 10 s target.",
            "",
            "| dataset | series | points |",
            "| --- | --- | --- |",
            *rows,
            "",
            *(["Skipped files:", ""] + [f"- {message}" for _, message in result.failures] if result.failures else []),
        ]
    )
    print(report)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(report + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
