"""``anomamind detect SOURCE --out OUT``: run a detector on one series and explain the result.

SOURCE is a TSB-AD-U CSV file or ``synthetic:SEED`` (a labelled synthetic series from
envs/synthetic.py); ``--detector`` takes the names ``bench`` takes (default: the heuristic
agent) and ``--set`` its options. Prints one line per interval (range, type, confidence,
explanation) and writes OUT/detection.json (series, detector and options, intervals,
per-window trajectories of the workflow detectors) and
OUT/detection.png (the series with the detections shaded, true anomalies marked when the
series has labels).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from anomamind.cli_options import DETECTOR_SET_HELP, add_deprecated_alias, add_set_option, set_to_set
from anomamind.types import DataError, Interval, Series, _json_default


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


def prediction_intervals(prediction: Any, detector: str) -> list[Interval]:
    """The detector's intervals, or for a point detector (the baselines, rules) the runs of
    its flagged points."""
    if prediction.intervals is not None:
        return list(prediction.intervals)
    import numpy as np

    from anomamind.tools.evidence import runs

    flagged = np.asarray(prediction.pred).reshape(-1) != 0
    return [Interval(start, end, explanation=f"points flagged by {detector}") for start, end in runs(flagged)]


def _build(args: argparse.Namespace) -> tuple[Series, Any, dict[str, Any]]:
    """The series, the detector and its options; DataError/ConfigError on bad input."""
    from anomamind.cli_options import detector_options
    from anomamind.config import ConfigError
    from anomamind.eval.registry import UnknownDetectorError, create_detector

    series = load_source(args.source)
    options = detector_options(args.set, args.detector)
    if args.config:
        options["config"] = args.config
    try:
        return series, create_detector(args.detector, **options), options
    except UnknownDetectorError as err:
        raise ConfigError(str(err)) from None
    except (TypeError, ValueError, ImportError) as err:  # a bad option, a missing optional dependency
        raise ConfigError(f"detector {args.detector!r} cannot be built: {err}") from None


def failure_line(prediction: Any) -> str:
    """``"2 of 3 windows failed (timeout: 1, parse: 1; first timeout: ...)"`` for the workflow
    detectors (their ``info`` counts failed windows by kind), else ``"N failed window(s)"``."""
    info = prediction.info
    if "window_failures" not in info:
        return f"{prediction.failed_windows} failed window(s)"
    kinds: dict[str, int] = info["window_failures"]
    line = f"{sum(kinds.values())} of {info.get('windows', '?')} windows failed"
    if not kinds:
        return line
    counts = ", ".join(f"{kind}: {count}" for kind, count in sorted(kinds.items(), key=lambda kv: -kv[1]))
    firsts = "; ".join(f"first {kind}: {message}" for kind, message in (info.get("first_errors") or {}).items())
    return f"{line} ({counts}; {firsts})"


def run_detect(args: argparse.Namespace) -> int:
    from anomamind.agents.backends.base import BackendError
    from anomamind.config import ConfigError
    from anomamind.envs.workflow import WorkflowAborted

    try:
        series, detector, options = _build(args)
    except (DataError, ConfigError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    record: dict[str, Any] = {
        "series": {"name": series.name, "dataset": series.dataset, "domain": series.domain,
                   "length": len(series), "source": series.source or args.source},
        "detector": args.detector,
        "options": options,
    }
    try:
        if hasattr(detector, "check"):  # the LLM agent's servers: answering, model served, key taken
            detector.check()
        if hasattr(detector, "run"):  # the workflow detectors also return their trajectories
            outcome = detector.run(series)
            prediction, trajectories = outcome.prediction, outcome.trajectories
        else:
            prediction, trajectories = detector.detect(series), []
    except BackendError as err:  # at start-up: refused key, dead endpoint, model not served
        print(f"error: {err}", file=sys.stderr)
        return 1
    except WorkflowAborted as aborted:  # mid-run: the windows that finished are kept
        record.update(aborted=f"{aborted.kind}: {aborted}", trajectory=[o.trajectory.to_dict() for o in aborted.outcomes])
        (out / "detection.json").write_text(json.dumps(record, default=_json_default))
        print(f"error: stopped after {len(aborted.outcomes)} finished window(s): {aborted}; "
              f"they are in {out / 'detection.json'}", file=sys.stderr)
        return 1
    finally:
        if hasattr(detector, "close"):
            detector.close()
    intervals = prediction_intervals(prediction, args.detector)

    print(f"{series.name}: {len(series)} points, {len(intervals)} interval(s), {failure_line(prediction)}")
    for iv in intervals:
        print(f"  [{iv.start}, {iv.end}]  {iv.type:<18}  confidence {iv.confidence}  {iv.explanation}")
    record.update(
        intervals=[iv.to_dict() for iv in intervals],
        failed_windows=prediction.failed_windows,
        window_failures=prediction.info.get("window_failures", {}),
        first_errors=prediction.info.get("first_errors", {}),
        trajectory=[t.to_dict() for t in trajectories],
    )
    (out / "detection.json").write_text(json.dumps(record, default=_json_default))
    plot_detection(series, intervals, out / "detection.png")
    print(f"wrote {out / 'detection.json'} and {out / 'detection.png'}")
    return 0


def register(subparsers: Any) -> None:
    """Add ``detect`` to the ``anomamind`` command."""
    p = subparsers.add_parser(
        "detect", help="detect anomalies in one series and explain them (default: the heuristic agent)",
        description="Run one registered detector (the names of `anomamind detectors`, as in bench) on one "
        "series; print its intervals and write OUT/detection.json and OUT/detection.png.",
    )
    p.add_argument("source", help="a TSB-AD-U CSV file (Data,Label) or synthetic:SEED")
    p.add_argument("--detector", default="heuristic-agent", metavar="NAME",
                   help="a registered detector, as in bench (default: heuristic-agent; llm-agent, sr, rules:PATH, ...)")
    p.add_argument("--config", default=None,
                   help="the agent's config YAML (default: configs/agents/heuristic.yaml or llm.yaml); "
                   "the same as --set config=PATH")
    add_set_option(p, DETECTOR_SET_HELP)
    p.add_argument("--out", required=True, help="output folder for detection.json and detection.png")
    add_deprecated_alias(p, "--agent", "--detector heuristic-agent|llm-agent",
                         lambda v: ("detector", f"{v}-agent", f"--detector {v}-agent"), metavar="heuristic|llm")
    add_deprecated_alias(p, "--disable", "--set disable=[...]",
                         lambda v: set_to_set(f"disable=[{v}]"), metavar="A,B")
    add_deprecated_alias(p, "--no-evaluator", "--set evaluator=false",
                         lambda _: set_to_set("evaluator=false"), takes_value=False)
    add_deprecated_alias(p, "--causal", "--set causal=true", lambda _: set_to_set("causal=true"), takes_value=False)
    p.set_defaults(func=run_detect)
