"""``anomamind detect SOURCE --out OUT``: run the agent on one series and explain the result.

SOURCE is a TSB-AD-U CSV file or ``synthetic:SEED`` (a labelled synthetic series from
envs/synthetic.py). Prints one line per interval (range, type, confidence, explanation)
and writes OUT/detection.json (series, intervals, per-window trajectories) and
OUT/detection.png (the series with the detections shaded, true anomalies marked when the
series has labels).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from anomamind.types import DataError, Series, _json_default


def load_source(source: str) -> Series:
    """A series from a CSV path or ``synthetic:SEED``; a clear error otherwise."""
    if source.startswith("synthetic:"):
        seed_text = source.split(":", 1)[1]
        try:
            seed = int(seed_text)
        except ValueError:
            raise DataError(f"{source!r}: the seed after 'synthetic:' must be an integer") from None
        from anomamind.envs.synthetic import generate_series

        return generate_series(seed)
    path = Path(source)
    if not path.is_file():
        raise DataError(f"{source}: no such file (give a TSB-AD-U CSV or synthetic:SEED)")
    from anomamind.envs.loaders import load_series

    return load_series(path)


def plot_detection(series: Series, intervals: list[Any], path: Path) -> None:
    """The series with detected intervals shaded (colour by confidence) and true anomalies
    marked underneath."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(min(24, 6 + len(series) / 800), 3.2), dpi=100)
    ax.plot(np.arange(len(series)), series.values, lw=0.7, color="#333")
    alpha = {1: 0.15, 2: 0.3, 3: 0.5}
    for iv in intervals:
        ax.axvspan(iv.start - 0.5, iv.end + 0.5, color="tab:red", alpha=alpha.get(iv.confidence, 0.3), lw=0)
    if series.labels is not None and series.labels.any():
        lo, hi = np.nanmin(series.values), np.nanmax(series.values)
        idx = np.flatnonzero(series.labels)
        ax.scatter(idx, np.full(idx.size, lo - 0.05 * (hi - lo + 1e-9)), s=2, color="tab:blue", label="labelled anomaly")
        ax.legend(loc="upper right", fontsize=7)
    ax.set_title(f"{series.name}: {len(intervals)} detected interval(s) (red, darker = more confident)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def failure_line(n_windows: int, info: dict[str, Any]) -> str:
    """``"2 of 3 windows failed (timeout: 1, parse: 1; first timeout: ...)"``, or ``"0 of 3
    windows failed"``: the per-window failures a series prediction's ``info`` counts."""
    kinds: dict[str, int] = info.get("window_failures") or {}
    failed = sum(kinds.values())
    line = f"{failed} of {n_windows} windows failed"
    if not failed:
        return line
    counts = ", ".join(f"{kind}: {count}" for kind, count in sorted(kinds.items(), key=lambda kv: -kv[1]))
    firsts = "; ".join(f"first {kind}: {message}" for kind, message in (info.get("first_errors") or {}).items())
    return f"{line} ({counts}; {firsts})"


def run_detect(args: argparse.Namespace) -> int:
    from anomamind.agents.backends.base import BackendError
    from anomamind.envs.detectors import make_heuristic_agent, make_llm_agent
    from anomamind.envs.workflow import WorkflowAborted

    try:
        series = load_source(args.source)
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    factory = make_heuristic_agent if args.agent == "heuristic" else make_llm_agent
    options: dict[str, Any] = {"config": args.config, "overrides": args.set}
    if args.disable:
        options["disable"] = args.disable
    if args.no_evaluator:
        options["evaluator"] = False
    if args.causal:
        options["causal"] = True
    agent = factory(**options)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    record: dict[str, Any] = {
        "series": {"name": series.name, "dataset": series.dataset, "domain": series.domain,
                   "length": len(series), "source": series.source or args.source},
        "agent": args.agent,
    }
    try:
        agent.check()
        outcome = agent.run(series)
    except BackendError as err:  # at start-up: bad key, dead endpoint, model not served
        print(f"error: {err}", file=sys.stderr)
        return 1
    except WorkflowAborted as aborted:  # mid-run: keep the windows that finished
        record.update(aborted=f"{aborted.kind}: {aborted}", trajectory=[o.trajectory.to_dict() for o in aborted.outcomes])
        (out / "detection.json").write_text(json.dumps(record, default=_json_default))
        print(f"error: stopped after {len(aborted.outcomes)} finished window(s): {aborted}; "
              f"they are in {out / 'detection.json'}", file=sys.stderr)
        return 1
    intervals = outcome.prediction.intervals or []
    info = outcome.prediction.info
    print(f"{series.name}: {len(series)} points, {len(intervals)} interval(s), "
          f"{failure_line(int(info.get('windows', len(outcome.trajectories))), info)}")
    for iv in intervals:
        print(f"  [{iv.start}, {iv.end}]  {iv.type:<18}  confidence {iv.confidence}  {iv.explanation}")
    record.update(
        intervals=[iv.to_dict() for iv in intervals],
        failed_windows=outcome.prediction.failed_windows,
        window_failures=info.get("window_failures", {}),
        first_errors=info.get("first_errors", {}),
        trajectory=[t.to_dict() for t in outcome.trajectories],
    )
    (out / "detection.json").write_text(json.dumps(record, default=_json_default))
    plot_detection(series, intervals, out / "detection.png")
    print(f"wrote {out / 'detection.json'} and {out / 'detection.png'}")
    return 0


def register(subparsers: Any) -> None:
    """Add ``detect`` to the ``anomamind`` command."""
    p = subparsers.add_parser("detect", help="detect anomalies in one series with the agentic workflow")
    p.add_argument("source", help="a TSB-AD-U CSV file (Data,Label) or synthetic:SEED")
    p.add_argument("--agent", choices=["heuristic", "llm"], default="heuristic")
    p.add_argument("--config", default=None, help="agent config YAML (default: configs/agents/heuristic.yaml)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override (repeatable)")
    p.add_argument("--disable", default="", help="ablations: comma list of feature_extraction,knowledge_memory,localization")
    p.add_argument("--no-evaluator", action="store_true", help="run without the evaluator (no refinement)")
    p.add_argument("--causal", action="store_true", help="use only past data for every statistic")
    p.add_argument("--out", required=True, help="output folder for detection.json and detection.png")
    p.set_defaults(func=run_detect)
