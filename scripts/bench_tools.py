"""Benchmark the agent tools: toolkit time per window and per series, PNG size and time.

Targets (issue 4): the full toolkit on one 100-point window under 5 ms, on a 100k-point
series under 1 s. Measured on a seeded synthetic series (seasonal KPI-like signal with
planted spikes, a level shift and noise), so the numbers need no data files; ``--real``
adds one real dev series (TSB-AD-U CSV) for comparison.

    nice -n 10 python scripts/bench_tools.py --out benchmarks/tools.md
"""

from __future__ import annotations

import argparse
import csv
import statistics
import time
from pathlib import Path

import numpy as np

from anomamind.provenance import command_line, header_lines, machine_summary
from anomamind.tools.context import ToolContext
from anomamind.tools.plotting import render_window
from anomamind.tools.registry import default_registry
from anomamind.types import ToolCall

#: Arguments for the tools that need some; every other tool runs with its defaults.
REQUIRED_ARGUMENTS = {
    "get_anomaly_type_definition": {"type_name": "level-shift"},
    "get_tool_semantics": {"tool_name": "global_value_zscore"},
}


def synthetic_series(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    x = 10 + 3 * np.sin(2 * np.pi * t / 288) + 0.002 * t / 100 + rng.standard_normal(n) * 0.5
    for i in rng.choice(n, size=max(1, n // 2000), replace=False):
        x[i] += rng.choice([-1, 1]) * 8
    x[n // 2 : n // 2 + 300] += 5
    return x


def toolkit_calls(start: int | None = None, end: int | None = None) -> list[ToolCall]:
    span = {} if start is None else {"start": start, "end": end}
    calls = []
    for name in default_registry().names():
        params = default_registry().get(name).params
        arguments = dict(REQUIRED_ARGUMENTS.get(name, {}))
        if "start" in params:
            arguments.update(span)
        calls.append(ToolCall(name, arguments))
    return calls


#: Errors a tool legitimately returns on some windows (counted, not fatal).
EXPECTED_ERRORS = ("no earlier period",)


class Clock:
    """Wall and CPU seconds of a block: on a shared machine the CPU time of this process
    is the figure to compare with targets, wall time shows what contention added."""

    def __enter__(self) -> "Clock":
        self.wall0, self.cpu0 = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.wall0
        self.cpu = time.process_time() - self.cpu0


def run_toolkit(ctx: ToolContext, calls: list[ToolCall]) -> tuple[float, dict[str, float]]:
    """CPU seconds for all calls, and wall seconds per tool; fails loudly on an
    unexpected error."""
    with Clock() as clock:
        results = default_registry().run_calls(ctx, calls)
    total = clock.cpu
    errors = [f"{r.error}" for r in results if not r.ok and not any(e in r.error for e in EXPECTED_ERRORS)]
    if errors:
        raise RuntimeError("tool errors during the benchmark: " + "; ".join(errors))
    return total, {r.name: r.seconds for r in results}


def bench_windows(values: np.ndarray, windows: int, causal: bool, seed: int = 1) -> dict[str, float]:
    """Toolkit time per 100-point window over random windows of one series (bundle warm)."""
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, values.size - 100, size=windows)
    first = ToolContext(values, int(starts[0]), int(starts[0]) + 100, causal=causal)
    cold, _ = run_toolkit(first, toolkit_calls())
    times, per_tool = [], {}
    for s in starts:
        ctx = ToolContext(values, int(s), int(s) + 100, causal=causal)
        total, tools = run_toolkit(ctx, toolkit_calls())
        times.append(total)
        for name, sec in tools.items():
            per_tool.setdefault(name, []).append(sec)
    times_ms = np.array(times) * 1e3
    return {
        "first_window_ms": cold * 1e3,
        "median_ms": float(np.median(times_ms)),
        "p95_ms": float(np.quantile(times_ms, 0.95)),
        "per_tool_median_ms": {k: float(np.median(v) * 1e3) for k, v in per_tool.items()},
    }


def bench_all_windows(values: np.ndarray) -> Clock:
    """Toolkit on every consecutive 100-point window of a series (contexts included)."""
    calls = toolkit_calls()
    with Clock() as clock:
        for s in range(0, values.size, 100):
            run_toolkit(ToolContext(values, s, min(s + 100, values.size)), calls)
    return clock


def bench_whole_series(values: np.ndarray) -> tuple[Clock, dict[str, float]]:
    """Every tool once over the whole series, from a cold start (fresh array, no cache)."""
    fresh = values.copy()
    with Clock() as clock:
        ctx = ToolContext(fresh, 0, fresh.size)
        _, per_tool = run_toolkit(ctx, toolkit_calls(0, fresh.size - 1))
    return clock, per_tool


def bench_png(values: np.ndarray, repeats: int) -> list[dict[str, float]]:
    rows = []
    render_window(values, 0, 100)  # font cache and imports
    for label, kwargs in (
        ("100-point window", {}),
        ("window + 50 context each side, 2 shaded intervals", {"context": 50, "shade": [(1020, 1025, "candidate"), (1060, 1061, "detected")]}),
        ("high_res (reference size)", {"high_res": True}),
    ):
        sizes, times = [], []
        for i in range(repeats):
            start = 1000 + 100 * i
            kw = dict(kwargs)
            if "shade" in kw:
                kw["shade"] = [(a + 100 * i, b + 100 * i, k) for a, b, k in kw["shade"]]
            with Clock() as clock:
                png = render_window(values, start, start + 100, **kw)
            times.append(clock.cpu)
            sizes.append(len(png))
        rows.append({"case": label, "median_ms": statistics.median(times) * 1e3, "median_kib": statistics.median(sizes) / 1024})
    # identical input must give identical bytes
    assert render_window(values, 1000, 1100) == render_window(values.copy(), 1000, 1100)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=None, help="write a markdown report (and a .csv beside it)")
    parser.add_argument("--length", type=int, default=100_000, help="points in the long series")
    parser.add_argument("--windows", type=int, default=200, help="random windows timed")
    parser.add_argument("--png-repeats", type=int, default=20)
    parser.add_argument("--real", type=Path, default=None, help="a TSB-AD-U CSV (dev split) to time as well")
    args = parser.parse_args(argv)

    values = synthetic_series(args.length)
    report: list[tuple[str, str, float, str]] = []  # (case, metric, value, target)

    win = bench_windows(values, args.windows, causal=False)
    report += [
        ("window toolkit, whole-series reference", "median CPU ms / 100-pt window", win["median_ms"], "< 5"),
        ("window toolkit, whole-series reference", "p95 CPU ms / 100-pt window", win["p95_ms"], ""),
        ("window toolkit, whole-series reference", "first window CPU ms (builds series cache)", win["first_window_ms"], ""),
    ]
    causal = bench_windows(values, max(20, args.windows // 10), causal=True)
    report.append(("window toolkit, causal (reference = prefix to window end)", "median CPU ms / 100-pt window", causal["median_ms"], ""))
    whole, whole_tools = bench_whole_series(values)
    case = f"every tool once over the whole {args.length}-pt series, cold"
    report += [(case, "CPU s", whole.cpu, "< 1"), (case, "wall s", whole.wall, "")]
    sweep = bench_all_windows(values)
    case = f"toolkit on all {-(-args.length // 100)} windows of the {args.length}-pt series"
    report += [(case, "CPU s", sweep.cpu, ""), (case, "wall s", sweep.wall, ""), (case, "points / CPU s", args.length / sweep.cpu, "")]
    if args.real is not None:
        from anomamind.envs.loaders import load_series

        real = load_series(args.real).values
        rw = bench_windows(real, args.windows, causal=False)
        report.append((f"window toolkit on {args.real.name} ({real.size} pts)", "median CPU ms / 100-pt window", rw["median_ms"], "< 5"))
        rt, _ = bench_whole_series(real)
        report.append((f"every tool once over {args.real.name}, cold", "CPU s", rt.cpu, "< 1"))
    png = bench_png(values, args.png_repeats)

    lines = [f"{case:70s} {metric:40s} {value:10.3f} {target}" for case, metric, value, target in report]
    lines += [f"PNG {r['case']:66s} {'CPU ms / KiB':40s} {r['median_ms']:10.1f} {r['median_kib']:.1f} KiB" for r in png]
    print("\n".join(lines))
    print("per-tool median ms per window:", {k: round(v, 3) for k, v in win["per_tool_median_ms"].items()})

    if args.out:
        md = [
            "# Tool benchmark",
            "",
            *header_lines(command_line("python scripts/bench_tools.py", argv),
                          split=f"seeded synthetic series of {args.length} points (daily-like period 288, spikes, "
                          "a level shift)" + (f"; real: {args.real} (dev split)" if args.real else ""),
                          machine=f"{machine_summary()}; numpy {np.__version__}"),
            f"- Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
            "",
            f"Toolkit: all {len(toolkit_calls())} registered tools through `ToolRegistry.run_calls` "
            "(validation, JSON check and timing included), default arguments. CPU time is this "
            "process's (`time.process_time`): on a shared machine wall time includes waiting "
            "for the cores (see the load average above).",
            "",
            "| case | metric | value | target |",
            "| --- | --- | ---: | --- |",
            *[f"| {c} | {m} | {v:.3f} | {t} |" for c, m, v, t in report],
            "",
            "| PNG render (per window) | median CPU ms | median KiB |",
            "| --- | ---: | ---: |",
            *[f"| {r['case']} | {r['median_ms']:.1f} | {r['median_kib']:.1f} |" for r in png],
            "",
            "Per-tool median wall ms on a 100-point window (whole-series reference, cache warm):",
            "",
            "| tool | ms |",
            "| --- | ---: |",
            *[f"| {k} | {v:.3f} |" for k, v in win["per_tool_median_ms"].items()],
            "",
            "Per-tool wall seconds over the whole series (cold):",
            "",
            "| tool | s |",
            "| --- | ---: |",
            *[f"| {k} | {v:.4f} |" for k, v in whole_tools.items()],
            "",
        ]
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join(md))
        with args.out.with_suffix(".csv").open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["case", "metric", "value", "target"])
            writer.writerows(report)
            for r in png:
                writer.writerow([f"PNG {r['case']}", "median ms", round(r["median_ms"], 3), ""])
                writer.writerow([f"PNG {r['case']}", "median KiB", round(r["median_kib"], 3), ""])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
