"""``anomamind logs ...``: inspect logs, generate synthetic ones, train, show and benchmark log rules."""

from __future__ import annotations

import argparse
import json
import logging
import sys

DEFAULT_CONFIG = "logs_offline.yaml"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("logs", help="log anomaly detection with learned rules (CodeAD-style)")
    sub = parser.add_subparsers(dest="logs_command", metavar="ACTION")

    info = sub.add_parser("info", help="read a log and summarise it: lines, labels, templates, the split's windows")
    _log_arguments(info)
    info.set_defaults(func=_checked(_info))

    synth = sub.add_parser("synth", help="write a synthetic log with injected anomalies (format 'synthetic')")
    synth.add_argument("--out", required=True, help="log file to write")
    synth.add_argument("--lines", type=int, default=20000, help="about this many lines (whole sessions only)")
    synth.add_argument("--seed", type=int, default=0, help="random seed (the same seed writes the same log)")
    synth.add_argument("--anomaly-rate", type=float, default=0.03, help="share of sessions with an anomaly")
    synth.set_defaults(func=_checked(_synth))

    train = sub.add_parser("train", help="learn a log rule set (propose, check, validate, mutate, select)")
    _log_arguments(train)
    train.add_argument("--out", required=True, help="output folder; the rule set goes to OUT/<DATASET>/")
    train.add_argument("--proposer", choices=("offline", "llm"), default=None, help="override config.proposer")
    train.add_argument("--combine-with", default=None, metavar="DETECTOR",
                       help="train rules to combine with this log detector (pca, iforest, invariants, keyword)")
    train.add_argument("--mode", choices=("and", "or"), default=None,
                       help="combination: 'and' removes the detector's false alarms, 'or' adds what it misses")
    train.add_argument("--force", action="store_true", help="retrain when the rule set already exists")
    train.add_argument("--trusted-rules", action="store_true", help=_trusted_help())
    train.set_defaults(func=_checked(_train))

    show = sub.add_parser("show", help="print a log rule set: provenance, scores and each rule's code")
    show.add_argument("path", help="log rule set folder")
    show.set_defaults(func=_checked(_show))

    bench = sub.add_parser("bench", help="benchmark log rule sets against log baselines on each log's test part")
    bench.add_argument("--rules", nargs="+", required=True, help="log rule set folder(s); each names its log")
    bench.add_argument("--detector", action="append", default=[], metavar="NAME",
                       help="a log detector to compare with: pca, iforest, invariants, keyword, rules:PATH (repeatable)")
    bench.add_argument("--data", default=None, help="read the log from here instead of the path in the manifest")
    bench.add_argument("--out", default=None, help="folder for table.md and results.csv")
    bench.add_argument("--note", default="", help="a remark printed under the table's header")
    bench.add_argument("--repeats", type=int, default=3, help="time detection this many times, keep the best")
    bench.add_argument("--trusted-rules", action="store_true", help=_trusted_help())
    bench.set_defaults(func=_checked(_bench))
    parser.set_defaults(func=lambda args: parser.print_help() or 2)


def _log_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("log", help="a log file, or a folder of *.log files (Hadoop)")
    parser.add_argument("--config", default=None, help=f"YAML config (default: configs/rules/{DEFAULT_CONFIG})")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config field, e.g. --set window.size=50 (repeatable)")
    parser.add_argument("--format", default=None,
                        help="log format: bgl, thunderbird, hdfs, hadoop, synthetic or auto (= data.format)")
    parser.add_argument("--labels", default=None, help="session label file (HDFS CSV, Hadoop list) (= data.labels)")


def _trusted_help() -> str:
    from anomamind.rules.cli import TRUSTED_HELP

    return TRUSTED_HELP


def _checked(command):
    """Bad input is one line on stderr and exit code 2 (the rules commands' convention)."""
    from anomamind.rules.cli import _reporting_errors

    return _reporting_errors(command)


def _config(args: argparse.Namespace, extra: list[str] = ()):
    from anomamind.config import load_config
    from anomamind.paths import CONFIG_DIR
    from anomamind.rules.log_train import LogRuleTrainConfig

    overrides = list(args.overrides) + list(extra)
    if args.format:
        overrides.append(f"data.format={args.format}")
    if args.labels:
        overrides.append(f"data.labels={args.labels}")
    return load_config(LogRuleTrainConfig, args.config or CONFIG_DIR / "rules" / DEFAULT_CONFIG, overrides)


def _info(args: argparse.Namespace) -> int:
    import numpy as np

    from anomamind.envs.log_templates import parse_templates
    from anomamind.rules.log_data import split_log
    from anomamind.rules.log_train import read_log

    config = _config(args)
    data = read_log(args.log, config.data)
    _, templates = parse_templates(data.messages, options=config.templates)
    print(f"{data.source}: format {data.format}, dataset {data.dataset}, {len(data)} lines"
          + (f" ({data.n_skipped} malformed lines skipped)" if data.n_skipped else ""))
    print(f"templates (Drain over the whole log, no labels used): {len(templates)}")
    if data.times is not None:
        print(f"time span: {np.nanmax(data.times) - np.nanmin(data.times):.0f} s")
    if data.has_sessions:
        print(f"sessions: {len({s for s in data.sessions if s is not None})}")
    for note in data.notes + data.skipped[:5]:
        print(f"note: {note}")
    if not data.has_labels:
        print("labels: none")
        return 0
    print(f"labelled anomalous lines: {int(data.labels.sum())} ({100 * data.labels.mean():.2f}%)")
    parts = split_log(data, config.window, config.split, config.templates)
    print(f"split ({config.window.describe()}, time order):")
    for name, part in parts.items():
        print(f"  {name:<10} " + json.dumps(part.summary()))
    return 0


def _synth(args: argparse.Namespace) -> int:
    from anomamind.envs.log_synthetic import generate_log, write_log

    data = generate_log(args.lines, seed=args.seed, anomaly_rate=args.anomaly_rate)
    path = write_log(data, args.out)
    print(f"wrote {len(data)} lines ({int(data.labels.sum())} anomalous) to {path}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from anomamind.rules.log_train import train_log_rules
    from anomamind.rules.sandbox import SandboxUnavailable, require_sandbox

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    extra = ["sandbox.trusted_rules=true"] if args.trusted_rules else []
    if args.proposer:
        extra.append(f"proposer={args.proposer}")
    if args.combine_with:
        extra.append(f"combine_with={args.combine_with}")
    if args.mode:
        extra.append(f"combine_mode={args.mode}")
    config = _config(args, extra)
    require_sandbox(config.sandbox.trusted_rules)
    try:
        summary = train_log_rules(args.log, args.out, config, force=args.force)
    except SandboxUnavailable:
        raise
    except RuntimeError as err:  # the loop found no rule that passes the check and validation
        print(f"FAILED {args.log}: {err}", file=sys.stderr)
        return 1
    print(json.dumps(summary))
    return 0


def _show(args: argparse.Namespace) -> int:
    from anomamind.rules.cli import _show as show_rule_set

    return show_rule_set(args)


def _bench(args: argparse.Namespace) -> int:
    from pathlib import Path

    from anomamind.rules.log_bench import bench_log_rules, render_log_table
    from anomamind.rules.sandbox import require_sandbox

    require_sandbox(args.trusted_rules)
    frame, splits = bench_log_rules(args.rules, args.detector, data_path=args.data, repeats=args.repeats,
                                    trusted_rules=args.trusted_rules)
    table = render_log_table(frame, splits, args.command_line, note=args.note, repeats=args.repeats)
    print(table)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "table.md").write_text(table)
        frame.to_csv(out / "results.csv", index=False)
    return 0
