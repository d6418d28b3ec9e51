"""``anomamind detect SOURCE --out OUT``: run the agent on one series and explain the result.

SOURCE is a CSV file (TSB-AD-U's ``Data,Label``, or a user's own export: one value column
with or without a header, ``timestamp,value``, with or without labels; ``--column`` picks
the value column) or ``synthetic:SEED`` (a labelled synthetic series from
envs/synthetic.py). Prints one line per interval (range, times when the file has them,
type, confidence, explanation) and writes, in this order, OUT/detection.json (series,
settings, intervals), OUT/trajectories.jsonl (one line per window; for long series only the
windows with detections) and OUT/detection.png
(tools/plotting.render_detection: every detection visible, labelled anomalies when the
series has labels). A series whose dataset has no knowledge entry is calibrated on itself;
``--knowledge FILE`` adds a user-written entry (docs/workflow.md).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

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


def interval_record(iv: Interval, series: Series) -> dict[str, Any]:
    """An interval as JSON, with the times of its ends when the series has timestamps."""
    record = iv.to_dict()
    if series.timestamps is not None:
        for key, index in (("start_time", iv.start), ("end_time", iv.end)):
            stamp = series.timestamps[index]
            record[key] = str(np.datetime_as_string(stamp, unit="s")) if isinstance(stamp, np.datetime64) else float(stamp)
    return record


def run_detect(args: argparse.Namespace) -> int:
    from anomamind.config import ConfigError
    from anomamind.envs.detectors import make_heuristic_agent, make_llm_agent

    try:
        series = load_source(args.source, args.column)
        if args.dataset or (args.knowledge and len(args.knowledge) == 1):
            series.dataset = args.dataset or knowledge_dataset(args.knowledge)
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    factory = make_heuristic_agent if args.agent == "heuristic" else make_llm_agent
    overrides = list(args.set)
    if args.knowledge:
        overrides.append("knowledge_files=" + json.dumps([str(Path(f).resolve()) for f in args.knowledge]))
    options: dict[str, Any] = {"config": args.config, "overrides": overrides}
    if args.disable:
        options["disable"] = args.disable
    if args.no_evaluator:
        options["evaluator"] = False
    if args.causal:
        options["causal"] = True
    try:
        agent = factory(**options)
    except (ConfigError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    keep_prompts = len(series) <= PROMPT_POINT_LIMIT
    if not keep_prompts:
        print(f"{series.name}: {len(series):,} points: trajectories.jsonl keeps the windows with detections or "
              f"errors, without the detector prompts (every window, prompts included, up to {PROMPT_POINT_LIMIT:,} points)")
    outcome = agent.workflow.run_series(series, keep_prompts=keep_prompts)
    intervals = outcome.prediction.intervals or []
    print(f"{series.name}: {len(series)} points, {len(intervals)} interval(s), "
          f"{outcome.prediction.failed_windows} failed window(s)")
    planner = next((st for t in outcome.trajectories for st in t.steps if st.role == "planner"), None)
    record = {
        "series": {"name": series.name, "dataset": series.dataset, "domain": series.domain,
                   "length": len(series), "source": series.source or args.source,
                   "labelled": series.labels is not None, "value_column": series.meta.get("value_column", "Data")},
        "agent": args.agent,
        "settings": planner.info if planner is not None else {},
        "intervals": [interval_record(iv, series) for iv in intervals],
        "failed_windows": outcome.prediction.failed_windows,
        "trajectory_file": "trajectories.jsonl",
    }
    for item in record["intervals"]:
        when = f"  {item['start_time']} .. {item['end_time']}" if "start_time" in item else ""
        print(f"  [{item['start']}, {item['end']}]{when}  {item['type']:<18}  confidence {item['confidence']}  "
              f"{item['explanation']}")
    (out / "detection.json").write_text(json.dumps(record, default=_json_default, indent=1))
    with (out / "trajectories.jsonl").open("w") as fh:
        for trajectory in outcome.trajectories:  # long series: only windows that say something
            if keep_prompts or trajectory.detection.intervals or "error" in trajectory.info:
                fh.write(trajectory.to_json() + "\n")
    print(f"wrote {out / 'detection.json'} and {out / 'trajectories.jsonl'}")
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
    p = subparsers.add_parser("detect", help="detect anomalies in one series with the agentic workflow")
    p.add_argument(
        "source",
        help="a CSV file (Data,Label; a value column with or without header; timestamp,value) or synthetic:SEED",
    )
    p.add_argument("--column", default=None, help="the value column of the CSV (a name or a 0-based position)")
    p.add_argument("--dataset", default=None, help="the series' dataset (picks its knowledge entry; default: from the file)")
    p.add_argument(
        "--knowledge", action="append", default=[], metavar="FILE",
        help="a knowledge entry of your own (YAML, see docs/workflow.md; repeatable); with one file and no "
        "--dataset the series takes its dataset",
    )
    p.add_argument("--agent", choices=["heuristic", "llm"], default="heuristic")
    p.add_argument("--config", default=None, help="agent config YAML (default: configs/agents/heuristic.yaml)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override (repeatable)")
    p.add_argument("--disable", default="", help="ablations: comma list of feature_extraction,knowledge_memory,localization")
    p.add_argument("--no-evaluator", action="store_true", help="run without the evaluator (no refinement)")
    p.add_argument("--causal", action="store_true", help="use only past data for every statistic")
    p.add_argument("--out", required=True, help="output folder for detection.json and detection.png")
    p.set_defaults(func=run_detect)
