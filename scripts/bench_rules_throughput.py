"""Rule inference throughput in points per second, for trained rule sets.

Runs each dataset's rule set (``benchmarks/rules/<DS>/``) through the benchmark runner's
detector (``rules:PATH``: one long-lived sandbox worker) over every series of that
dataset, once with one call per series (``detect``, what ``anomamind bench`` does) and
once with one call per rule for all series (``detect_many``), after one warm-up series so the worker's start-up
(importing numpy/scipy, about a second) is not counted, and reports the median of
``--repeats`` passes. Writes a markdown table with the exact command and machine.

    python scripts/bench_rules_throughput.py --rules benchmarks/rules \
        --data ../shared/data/tsbad/dev --datasets YAHOO TODS IOPS WSD \
        --out benchmarks/rules/throughput.md
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from anomamind.provenance import command_line, header_lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rules", required=True, help="folder with one rule set per dataset")
    parser.add_argument("--data", required=True, help="data folder (TSB-AD-U CSVs)")
    parser.add_argument("--datasets", nargs="+", required=True)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=None, help="write the markdown table here")
    args = parser.parse_args(argv)

    from anomamind.envs.loaders import load_directory
    from anomamind.rules.detector import make_rule_detector

    rows = []
    for dataset in args.datasets:
        series = load_directory(args.data, datasets=[dataset]).series
        detector = make_rule_detector(Path(args.rules) / dataset)
        n_points = sum(len(s) for s in series)
        try:
            detector.detect(series[0])  # warm-up: starts the sandbox worker
            for mode, run in (("per series (detect)", lambda: [detector.detect(s) for s in series]),
                              ("batched (detect_many)", lambda: detector.detect_many(series))):
                passes = []
                for _ in range(args.repeats):
                    start = time.perf_counter()
                    run()
                    passes.append(time.perf_counter() - start)
                seconds = statistics.median(passes)
                rows.append((dataset, mode, len(series), n_points, len(detector.rule_set.rules), seconds))
                print(f"{dataset} {mode}: {n_points} points, {len(detector.rule_set.rules)} rules, "
                      f"{seconds:.2f} s, {n_points / seconds:,.0f} points/s", flush=True)
        finally:
            detector.close()

    lines = [
        "# Rule inference throughput",
        "",
        *header_lines(command_line(argv=argv), split=f"every series of each dataset of {args.data}"),
        "",
        "Timed: all rules of the set over all series in one sandboxed worker process, with one call per series "
        "(`RuleSetDetector.detect`, what `anomamind bench` does) and with one call per rule for all series "
        f"(`detect_many`); median of {args.repeats} passes after a warm-up series (worker start-up not counted). "
        "On a shared box the numbers move with its load (see the load average above).",
        "",
        "| dataset | calls | series | points | rules | seconds | points/s |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [f"| {d} | {m} | {n} | {p} | {k} | {s:.2f} | {p / s:,.0f} |" for d, m, n, p, k, s in rows]
    for mode in dict.fromkeys(r[1] for r in rows):
        chosen = [r for r in rows if r[1] == mode]
        points, seconds = sum(r[3] for r in chosen), sum(r[5] for r in chosen)
        lines.append(f"| all | {mode} | {sum(r[2] for r in chosen)} | {points} | | {seconds:.2f} | {points / seconds:,.0f} |")
    table = "\n".join(lines) + "\n"
    print(table)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
