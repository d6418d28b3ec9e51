"""The ``anomamind`` command: one entry point, subcommands registered by their modules.

Each module in ``COMMAND_MODULES`` has ``register(subparsers)`` that adds its subcommand(s)
and sets ``func`` (called with the parsed namespace, returning an exit code; the namespace
also carries ``command_line``, the command as typed, for result headers). Modules import
their heavy dependencies inside ``func`` so that ``anomamind --help`` stays fast. Options
shared by several commands (``--set``, deprecated spellings) live in anomamind/cli_options.py;
docs/cli.md states the grammar.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from anomamind.extras import run_or_name_missing_extra

COMMAND_MODULES: list[str] = [
    "anomamind.envs.data_cli",  # data fetch
    "anomamind.eval.cli",  # bench, detectors
    "anomamind.envs.detect_cli",  # detect
    "anomamind.rl.cli",  # prepare, train
    "anomamind.rl.sweep_cli",  # sweep
    "anomamind.rl.infer_cli",  # infer (batch inference over prepared windows)
    "anomamind.rules.cli",  # rules train / show
    "anomamind.rules.log_cli",  # logs info / synth / train / show / bench
    "anomamind.tools.cli",  # tools list / call / plot
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="anomamind",
        description="Agentic time-series anomaly detection: detect, benchmark, prepare, train, sweep.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if err.name == module_name:  # not written yet
                continue
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from anomamind.provenance import command_line

    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    args.command_line = command_line("anomamind", argv)  # what tables name as their command
    if extra:  # only commands that take free-form trainer flags (train) accept unknown ones
        if not getattr(args, "accepts_extra", False):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.extra = list(getattr(args, "extra", None) or []) + extra
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return run_or_name_missing_extra(lambda: int(args.func(args) or 0), f"anomamind {args.command}")


if __name__ == "__main__":
    sys.exit(main())
