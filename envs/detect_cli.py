"""``anomamind detect SOURCE --out OUT``: run a detector on one series and explain the result.

SOURCE is a CSV file (TSB-AD-U's ``Data,Label``, or a user's own export: one value column
with or without a header, ``timestamp,value``, with or without labels; ``--column`` picks
the value column) or ``synthetic:SEED`` (a labelled synthetic series from
envs/synthetic.py); ``--detector`` takes the names ``bench`` takes (default: the heuristic
agent) and ``--set`` its options. Prints one line per interval (range, times when the file
has them, type, confidence, explanation) after a summary line (failed windows by kind,
with the first error of each) and writes, in this order, OUT/detection.json
(series, detector and options, settings, intervals), OUT/trajectories.jsonl (one line per
window of the workflow detectors; for long series only the windows with detections) and
OUT/detection.png (tools/plotting.render_detection: every detection visible, labelled
anomalies when the series has labels). A series whose dataset has no knowledge entry is
calibrated on itself; ``--knowledge FILE`` adds a user-written entry (docs/workflow.md).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from anomamind.cli_options import DETECTOR_SET_HELP, add_deprecated_alias, add_set_option, set_to_set
from anomamind.types import DataError, Interval, Series, _json_default

#: Longest series whose every window, detector prompts included, goes into trajectories.jsonl
#: (about 130 kB of JSON per 1,000 points; a 10M-point series would write 1.3 GB). Longer
#: series keep the windows with detections or errors, without prompts.
PROMPT_POINT_LIMIT = 200_000


def load_source(source: str, column: str | None = None) -> Series:
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
        raise DataError(f"{source}: no such file (give a CSV file or synthetic:SEED)")
    from anomamind.envs.loaders import load_series

    return load_series(path, column=column)


def knowledge_dataset(files: list[str]) -> str:
    """The dataset a single user knowledge file describes (its ``dataset`` field)."""
    from anomamind.tools.knowledge import KnowledgeError, read_dataset_entry

    try:
        return str(read_dataset_entry(Path(files[0]))["dataset"])
    except KnowledgeError as err:
        raise DataError(str(err)) from err


def prediction_intervals(prediction: Any, detector: str) -> list[Interval]:
    """The detector's intervals, or for a point detector (the baselines, rules) the runs of
    its flagged points."""
    if prediction.intervals is not None:
        return list(prediction.intervals)
    from anomamind.tools.evidence import runs

    flagged = np.asarray(prediction.pred).reshape(-1) != 0
    return [Interval(start, end, explanation=f"points flagged by {detector}") for start, end in runs(flagged)]


def interval_record(iv: Interval, series: Series) -> dict[str, Any]:
    """An interval as JSON, with the times of its ends when the series has timestamps."""
    record = iv.to_dict()
    if series.timestamps is not None:
        for key, index in (("start_time", iv.start), ("end_time", iv.end)):
            stamp = series.timestamps[index]
            record[key] = str(np.datetime_as_string(stamp, unit="s")) if isinstance(stamp, np.datetime64) else float(stamp)
    return record


def _build(args: argparse.Namespace) -> tuple[Series, Any, dict[str, Any]]:
    """The series, the detector and its options; DataError/ConfigError on bad input."""
    from anomamind.cli_options import detector_options
    from anomamind.config import ConfigError
    from anomamind.eval.registry import UnknownDetectorError, create_detector, takes_config_overrides

    series = load_source(args.source, args.column)
    if args.dataset or len(args.knowledge) == 1:
        series.dataset = args.dataset or knowledge_dataset(args.knowledge)
    options = detector_options(args.set, args.detector)
    if args.config:
        options["config"] = args.config
    if args.knowledge:
        options["knowledge_files"] = [str(Path(f).resolve()) for f in args.knowledge]
    try:
        reads_knowledge = not args.knowledge or takes_config_overrides(args.detector)
        detector = create_detector(args.detector, **options) if reads_knowledge else None
    except UnknownDetectorError as err:
        raise ConfigError(str(err)) from None
    except (TypeError, ValueError, ImportError) as err:  # a bad option, a missing optional dependency
        raise ConfigError(f"detector {args.detector!r} cannot be built: {err}") from None
    if detector is None:
        raise ConfigError(f"--knowledge applies only to the agents (heuristic-agent, llm-agent); "
                          f"{args.detector!r} does not read the knowledge memory")
    return series, detector, options


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


def write_trajectories(path: Path, trajectories: list[Any], keep_prompts: bool) -> None:
    """One JSON line per window; for long series (``keep_prompts`` false) only the windows
    that say something (detections or errors). Nothing is written without trajectories."""
    if not trajectories:
        return
    with path.open("w") as fh:
        for trajectory in trajectories:
            if keep_prompts or trajectory.detection.intervals or "error" in trajectory.info:
                fh.write(trajectory.to_json() + "\n")


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
    keep_prompts = len(series) <= PROMPT_POINT_LIMIT
    record: dict[str, Any] = {
        "series": {"name": series.name, "dataset": series.dataset, "domain": series.domain,
                   "length": len(series), "source": series.source or args.source,
                   "labelled": series.labels is not None, "value_column": series.meta.get("value_column", "Data")},
        "detector": args.detector,
        "options": options,
    }
    try:
        if hasattr(detector, "check"):  # the LLM agent's servers: answering, model served, key taken
            detector.check()
        if hasattr(detector, "run"):  # the workflow detectors also return their trajectories
            if not keep_prompts:
                print(f"{series.name}: {len(series):,} points: trajectories.jsonl keeps the windows with detections "
                      f"or errors, without the detector prompts (every window, prompts included, up to "
                      f"{PROMPT_POINT_LIMIT:,} points)")
            outcome = detector.run(series, keep_prompts=keep_prompts)
            prediction, trajectories = outcome.prediction, outcome.trajectories
        else:
            prediction, trajectories = detector.detect(series), []
    except BackendError as err:  # at start-up: refused key, dead endpoint, model not served
        print(f"error: {err}", file=sys.stderr)
        return 1
    except WorkflowAborted as aborted:  # mid-run: the windows that finished are kept
        finished = [o.trajectory for o in aborted.outcomes]
        record.update(aborted=f"{aborted.kind}: {aborted}", trajectory_file="trajectories.jsonl" if finished else None)
        (out / "detection.json").write_text(json.dumps(record, default=_json_default, indent=1))
        write_trajectories(out / "trajectories.jsonl", finished, keep_prompts)
        kept = f"they are in {out / 'trajectories.jsonl'}" if finished else f"{out / 'detection.json'} says why"
        print(f"error: stopped after {len(finished)} finished window(s): {aborted}; {kept}", file=sys.stderr)
        return 1
    finally:
        if hasattr(detector, "close"):
            detector.close()
    intervals = prediction_intervals(prediction, args.detector)
    print(f"{series.name}: {len(series)} points, {len(intervals)} interval(s), {failure_line(prediction)}")
    planner = next((st for t in trajectories for st in t.steps if st.role == "planner"), None)
    record.update(
        settings=planner.info if planner is not None else {},
        intervals=[interval_record(iv, series) for iv in intervals],
        failed_windows=prediction.failed_windows,
        window_failures=prediction.info.get("window_failures", {}),
        first_errors=prediction.info.get("first_errors", {}),
        trajectory_file="trajectories.jsonl" if trajectories else None,
    )
    for item in record["intervals"]:
        when = f"  {item['start_time']} .. {item['end_time']}" if "start_time" in item else ""
        print(f"  [{item['start']}, {item['end']}]{when}  {item['type']:<18}  confidence {item['confidence']}  "
              f"{item['explanation']}")
    (out / "detection.json").write_text(json.dumps(record, default=_json_default, indent=1))
    write_trajectories(out / "trajectories.jsonl", trajectories, keep_prompts)
    print(f"wrote {out / 'detection.json'}" + (f" and {out / 'trajectories.jsonl'}" if trajectories else ""))
    try:
        from anomamind.tools.plotting import render_detection

        png = render_detection(
            series.values, intervals, labels=series.labels, timestamps=series.timestamps, title=series.name
        )
    except Exception as err:  # noqa: BLE001 - the detections are saved; the picture is extra
        print(f"error: {series.source or args.source}: could not draw detection.png "
              f"({type(err).__name__}: {err}); detection.json is complete", file=sys.stderr)
        return 1
    (out / "detection.png").write_bytes(png)
    print(f"wrote {out / 'detection.png'}")
    return 0


def register(subparsers: Any) -> None:
    """Add ``detect`` to the ``anomamind`` command."""
    p = subparsers.add_parser(
        "detect", help="detect anomalies in one series and explain them (default: the heuristic agent)",
        description="Run one registered detector (the names of `anomamind detectors`, as in bench) on one "
        "series; print its intervals and write OUT/detection.json, OUT/trajectories.jsonl and OUT/detection.png.",
    )
    p.add_argument(
        "source",
        help="a CSV file (Data,Label; a value column with or without header; timestamp,value) or synthetic:SEED",
    )
    p.add_argument("--detector", default="heuristic-agent", metavar="NAME",
                   help="a registered detector, as in bench (default: heuristic-agent; llm-agent, sr, rules:PATH, ...)")
    p.add_argument("--config", default=None,
                   help="the agent's config YAML (default: configs/agents/heuristic.yaml or llm.yaml); "
                   "the same as --set config=PATH")
    add_set_option(p, DETECTOR_SET_HELP)
    p.add_argument("--column", default=None, help="the value column of the CSV (a name or a 0-based position)")
    p.add_argument("--dataset", default=None,
                   help="the series' dataset (picks its knowledge entry; default: from the file name or folder)")
    p.add_argument(
        "--knowledge", action="append", default=[], metavar="FILE",
        help="a knowledge entry of your own for the agents (YAML, see docs/workflow.md; repeatable); with one "
        "file and no --dataset the series takes its dataset",
    )
    p.add_argument("--out", required=True, help="output folder for detection.json, trajectories.jsonl and detection.png")
    add_deprecated_alias(p, "--agent", "--detector heuristic-agent|llm-agent",
                         lambda v: ("detector", f"{v}-agent", f"--detector {v}-agent"), metavar="heuristic|llm")
    add_deprecated_alias(p, "--disable", "--set disable=[...]",
                         lambda v: set_to_set(f"disable=[{v}]"), metavar="A,B")
    add_deprecated_alias(p, "--no-evaluator", "--set evaluator=false",
                         lambda _: set_to_set("evaluator=false"), takes_value=False)
    add_deprecated_alias(p, "--causal", "--set causal=true", lambda _: set_to_set("causal=true"), takes_value=False)
    p.set_defaults(func=run_detect)
