"""Throughput of the heuristic agent in points per second, with and without plotting.

Runs the full workflow (all five roles, detector prompts built, trajectories kept in
memory, no file output) over a set of series, once with the locator's plotting off and
once with it on (every window rendered as a PNG, as a VLM locator would be shown), and
writes a Markdown table with the exact command, machine and data.

    python scripts/bench_heuristic_throughput.py --data synthetic:8 \
        --out benchmarks/heuristic_agent/throughput.md
    python scripts/bench_heuristic_throughput.py --data ../shared/data/tsbad/dev --limit 5 ...
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from anomamind.envs.detectors import make_heuristic_agent
from anomamind.provenance import command_line, header_lines
from anomamind.types import Series


def load_data(spec: str, limit: int | None, datasets: list[str] | None) -> list[Series]:
    """``synthetic:N`` (N generated series of 5,000 points) or a folder of TSB-AD-U CSVs."""
    if spec.startswith("synthetic"):
        from anomamind.envs.synthetic import generate_dataset

        n = int(spec.split(":", 1)[1]) if ":" in spec else 8
        return generate_dataset(n_series=n, seed=0)
    from anomamind.envs.loaders import load_directory

    series = load_directory(spec, datasets=datasets).series
    if limit:
        kept: dict[str, list[Series]] = {}
        for s in series:
            kept.setdefault(s.dataset, [])
            if len(kept[s.dataset]) < limit:
                kept[s.dataset].append(s)
        series = [s for group in kept.values() for s in group]
    return series


def measure(series: list[Series], plot: bool, max_points: int | None) -> tuple[int, float, int]:
    """(points, seconds, windows) of one pass of the agent over ``series``."""
    agent = make_heuristic_agent(plot=plot)
    points = windows = 0
    start = time.perf_counter()
    for s in series:
        if max_points is not None and points >= max_points:
            break
        outcome = agent.run(s)
        points += len(s)
        windows += len(outcome.trajectories)
    return points, time.perf_counter() - start, windows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="synthetic:8", help="synthetic:N or a folder of TSB-AD-U CSVs")
    parser.add_argument("--datasets", nargs="+", default=None)
    parser.add_argument("--limit", type=int, default=None, help="series per dataset")
    parser.add_argument("--plot-points", type=int, default=20000, help="stop the plotting pass after this many points")
    parser.add_argument("--out", default=None, help="Markdown file to write the table to")
    args = parser.parse_args(argv)

    series = load_data(args.data, args.limit, args.datasets)
    if not series:
        print(f"error: no series found in {args.data}", file=sys.stderr)
        return 2
    rows = []
    for plot in (False, True):
        points, seconds, windows = measure(series, plot, args.plot_points if plot else None)
        rows.append((plot, points, windows, seconds, points / seconds))
        print(f"plot={plot}: {points} points, {windows} windows in {seconds:.2f} s -> {points / seconds:,.0f} points/s")
    if args.out:
        data = (f"{args.data}" + (f", datasets {args.datasets}" if args.datasets else "")
                + (f", first {args.limit} series per dataset" if args.limit else "") + f" ({len(series)} series)")
        lines = [
            "# Heuristic agent throughput",
            "",
            *header_lines(command_line(argv=argv), split=data),
            "",
            "Window 100, stride 100, all five roles, evaluator on, one process.",
            "",
            "| plotting | points | windows | seconds | points/s |",
            "| --- | ---: | ---: | ---: | ---: |",
        ]
        for plot, points, windows, seconds, rate in rows:
            lines.append(f"| {'on' if plot else 'off'} | {points} | {windows} | {seconds:.2f} | {rate:,.0f} |")
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text("\n".join(lines) + "\n")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
