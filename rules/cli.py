"""``anomamind rules train`` and ``anomamind rules show``."""

from __future__ import annotations

import argparse
import functools
import json
import logging
import sys

TRUSTED_HELP = ("run the rules even where the OS sandbox (Linux seccomp) is unavailable; only for rules you trust "
                "(without it such machines refuse to run rules)")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("rules", help="learn explainable detection rules (Argos-style) and inspect them")
    sub = parser.add_subparsers(dest="rules_command", metavar="ACTION")

    train = sub.add_parser("train", help="train one rule set per dataset (propose, check, validate, mutate, select)")
    train.add_argument("--data", required=True, help="folder of TSB-AD-U CSV files (one subfolder per dataset)")
    train.add_argument("--datasets", nargs="+", required=True, help="dataset names, e.g. YAHOO IOPS")
    train.add_argument("--out", required=True, help="output folder; rule sets go to OUT/<DATASET>/")
    train.add_argument("--config", default=None, help="YAML config (default: configs/rules/offline.yaml)")
    train.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config field, e.g. --set max_rounds=3 (repeatable)")
    train.add_argument("--proposer", choices=("offline", "llm"), default=None, help="override config.proposer")
    train.add_argument("--combine-with", default=None, metavar="DETECTOR",
                       help="train rules to combine with this benchmark-runner detector (e.g. sr)")
    train.add_argument("--mode", choices=("and", "or"), default=None,
                       help="combination: 'and' removes the detector's false positives, 'or' adds missed anomalies")
    train.add_argument("--force", action="store_true", help="retrain datasets whose rule set already exists")
    train.add_argument("--trusted-rules", action="store_true", help=TRUSTED_HELP)
    train.set_defaults(func=_reporting_errors(_train))

    bench = sub.add_parser("bench", help="benchmark rule sets against other detectors on each dataset's test series")
    bench.add_argument("--rules", required=True, help="folder with one trained rule set per dataset")
    bench.add_argument("--data", required=True, help="the data folder the rules were trained from")
    bench.add_argument("--datasets", nargs="+", required=True, help="datasets whose rule sets to benchmark, e.g. YAHOO IOPS")
    bench.add_argument("--detector", action="append", default=[], metavar="NAME",
                       help="another registered detector to compare with (repeatable)")
    bench.add_argument("--out", required=True, help="benchmark runner output (and cache) folder")
    bench.add_argument("--table", default=None, help="also write the merged markdown table here")
    bench.add_argument("--workers", type=int, default=1, help="parallel worker processes (default 1: in-process)")
    bench.add_argument("--note", default="", help="a remark printed under the table's header (caveats)")
    bench.add_argument("--trusted-rules", action="store_true", help=TRUSTED_HELP)
    bench.set_defaults(func=_reporting_errors(_bench))

    show = sub.add_parser("show", help="print a rule set: provenance, scores and each rule's code")
    show.add_argument("path", help="rule set folder or rule .py file")
    show.set_defaults(func=_reporting_errors(_show))
    parser.set_defaults(func=lambda args: parser.print_help() or 2)


def _reporting_errors(command):
    """Bad input (a missing folder, a bad config or manifest) is one line on stderr, exit 2;
    a fatal backend error (the LLM proposer's endpoint) one line, exit 1."""

    @functools.wraps(command)
    def run(args: argparse.Namespace) -> int:
        from anomamind.agents.backends.base import BackendError
        from anomamind.config import ConfigError
        from anomamind.rules.sandbox import SandboxUnavailable
        from anomamind.types import DataError

        try:
            return command(args)
        except (DataError, ConfigError, FileNotFoundError, ValueError, SandboxUnavailable) as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        except BackendError as err:  # the LLM proposer's endpoint: refused key, no answer
            print(f"error: {err}", file=sys.stderr)
            return 1

    return run


def _train(args: argparse.Namespace) -> int:
    from anomamind.config import load_config
    from anomamind.paths import CONFIG_DIR
    from anomamind.rules.loop import RuleTrainConfig
    from anomamind.rules.sandbox import require_sandbox
    from anomamind.rules.train import train_datasets

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    overrides = list(args.overrides)
    if args.proposer:
        overrides.append(f"proposer={args.proposer}")
    if args.combine_with:
        overrides.append(f"combine_with={args.combine_with}")
    if args.mode:
        overrides.append(f"combine_mode={args.mode}")
    if args.trusted_rules:
        overrides.append("sandbox.trusted_rules=true")
    config = load_config(RuleTrainConfig, args.config or CONFIG_DIR / "rules" / "offline.yaml", overrides)
    require_sandbox(config.sandbox.trusted_rules)
    summaries, failures = train_datasets(args.data, args.datasets, args.out, config, force=args.force)
    for summary in summaries:
        print(json.dumps(summary))
    for dataset, message in failures:
        print(f"FAILED {dataset}: {message}")
    return 1 if failures else 0


def _bench(args: argparse.Namespace) -> int:
    from pathlib import Path

    from anomamind.rules.bench import bench_rule_sets, render_table, split_note
    from anomamind.rules.sandbox import require_sandbox

    require_sandbox(args.trusted_rules)
    summary = bench_rule_sets(args.rules, args.data, args.datasets, args.detector, args.out, workers=args.workers,
                              trusted_rules=args.trusted_rules)
    table = render_table(summary, args.command_line, split_note(args.rules, args.datasets[0]), note=args.note)
    print(table)
    if args.table:
        Path(args.table).parent.mkdir(parents=True, exist_ok=True)
        Path(args.table).write_text(table)
    return 0


def _show(args: argparse.Namespace) -> int:
    from anomamind.rules.rule import load_rule_set

    rule_set = load_rule_set(args.path)
    window = rule_set.window_length
    if rule_set.modality == "logs":
        from anomamind.envs.log_windows import LogWindowSpec

        window = f"{LogWindowSpec(**rule_set.window).describe()} (log rules)"
    print(f"rule set {args.path}  dataset={rule_set.dataset or '?'}  window={window}  "
          f"rules={len(rule_set.rules)} (OR-ed)")
    if rule_set.combine_with:
        print(f"combined with detector {rule_set.combine_with['detector']!r} by {rule_set.combine_with['mode'].upper()}")
    training = rule_set.info.get("training", {})
    if training:
        print(f"validation F1 of the set: {training.get('validation_f1_of_set')}")
    if rule_set.info.get("test"):
        held_out = "series" if rule_set.modality == "series" else "last part of the log"
        print(f"test (held-out {held_out}): {json.dumps(rule_set.info['test'])}")
    for rule in rule_set.rules:
        print(f"\n# ---- {rule.name}  {json.dumps(rule.meta)}")
        print(rule.source.rstrip())
    return 0
