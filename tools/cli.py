"""``anomamind tools ...``: list the agent tools, call one on a series window, plot a window.

For inspecting what the actor and the locator see, without running the workflow:

    anomamind tools list [--groups statistical localization] [--json]
    anomamind tools call level_shifts --data FILE.csv --window 4100 4200 [--args '{"width": 20}'] [--causal]
    anomamind tools plot --data FILE.csv --window 4100 4200 --context 50 --out window.png
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``tools`` command and its ``list``, ``call`` and ``plot`` subcommands."""
    tools = subparsers.add_parser("tools", help="list the agent tools, call one on a window, plot a window")
    sub = tools.add_subparsers(dest="tools_command", metavar="ACTION")
    tools.set_defaults(func=lambda args: _usage(tools))

    listing = sub.add_parser("list", help="the registered tools by group (or their JSON schemas)")
    listing.add_argument("--groups", nargs="+", help="only these groups (feature_extraction for all three feature groups)")
    listing.add_argument("--json", action="store_true", help="print the OpenAI function-calling schemas")
    listing.set_defaults(func=_list)

    call = sub.add_parser("call", help="run one tool on a window of a TSB-AD-U CSV and print its JSON output")
    call.add_argument("name", help="tool name (see 'anomamind tools list')")
    _add_window_arguments(call)
    call.add_argument("--args", default="{}", help="tool arguments as a JSON object")
    call.add_argument("--causal", action="store_true", help="reference = prefix up to the window end")
    call.set_defaults(func=_call)

    plot = sub.add_parser("plot", help="render a window as the locator sees it (PNG)")
    _add_window_arguments(plot)
    plot.add_argument("--context", type=int, default=0, help="points shown on each side of the window")
    plot.add_argument("--high-res", action="store_true", help="reference size (3570x1170) instead of 768x256")
    plot.add_argument("--labels", action="store_true", help="shade the labelled anomalies of the window")
    plot.add_argument("--out", required=True, help="PNG file to write")
    plot.set_defaults(func=_plot)


def _add_window_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="a TSB-AD-U CSV file (Data,Label)")
    parser.add_argument("--window", nargs=2, type=int, required=True, metavar=("START", "END"), help="window [START, END) in absolute indices")


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _list(args: argparse.Namespace) -> int:
    from anomamind.tools.registry import default_registry

    registry = default_registry()
    try:
        names = registry.names(args.groups)
    except ValueError as err:
        print(f"anomamind tools list: {err}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps([registry.get(n).schema for n in names], indent=2))
        return 0
    for name in names:
        tool = registry.get(name)
        params = ", ".join(tool.params) or "-"
        print(f"{tool.group:18s} {name:28s} ({params})")
    return 0


def _load_window(args: argparse.Namespace, command: str):  # -> tuple[Series, Window] | None
    from anomamind.envs.loaders import load_series
    from anomamind.types import DataError, Window

    path = Path(args.data)
    try:
        series = load_series(path)
    except (DataError, OSError, ValueError) as err:
        print(f"anomamind tools {command}: cannot read {path}: {err}", file=sys.stderr)
        return None
    start, end = args.window
    if not 0 <= start < end <= len(series):
        print(f"anomamind tools {command}: --window {start} {end} is not inside {path} ({len(series)} points)", file=sys.stderr)
        return None
    labels = None if series.labels is None else series.labels[start:end]
    return series, Window(series.name, 0, start, end, series.values[start:end], labels)


def _call(args: argparse.Namespace) -> int:
    from anomamind.tools.context import ToolContext
    from anomamind.tools.registry import default_registry
    from anomamind.types import ToolCall

    loaded = _load_window(args, "call")
    if loaded is None:
        return 2
    series, window = loaded
    ctx = ToolContext.for_window(series, window, causal=args.causal)
    result = default_registry().call(ctx, ToolCall(args.name, args.args))
    if not result.ok:
        print(f"anomamind tools call: {result.error}", file=sys.stderr)
        return 1
    print(json.dumps(result.output, indent=2))
    return 0


def _plot(args: argparse.Namespace) -> int:
    from anomamind.tools.evidence import runs
    from anomamind.tools.plotting import render_window

    loaded = _load_window(args, "plot")
    if loaded is None:
        return 2
    series, window = loaded
    if args.context < 0:
        print(f"anomamind tools plot: --context must be >= 0, got {args.context}", file=sys.stderr)
        return 2
    shade = []
    if args.labels and window.labels is not None:
        shade = [(s, e, "label") for s, e in runs(window.labels.astype(bool), window.start)]
    png = render_window(series.values, window.start, window.end, context=args.context, shade=shade, high_res=args.high_res)
    Path(args.out).write_bytes(png)
    print(f"wrote {args.out} ({len(png)} bytes)")
    return 0
