"""``anomamind prepare`` and ``anomamind train`` (heavy imports happen inside the commands)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from anomamind.cli_options import DETECTOR_SET_HELP, add_set_option, warn_deprecated


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "prepare",
        help="run the upstream stages once per window and store the detector prompts as a dataset",
        description="Build the detector's training data (Hugging Face DatasetDict: train/validation, split by series).",
    )
    p.add_argument("--data", required=True, help="synthetic, synthetic:N, a TSB-AD-U CSV file or folder")
    p.add_argument("--datasets", nargs="+", default=None, help="keep only these datasets (e.g. YAHOO WSD)")
    p.add_argument("--agents", default=None, help="heuristic agent YAML (default configs/agents/heuristic.yaml) or llm:PATH")
    p.add_argument("--out", required=True, help="output folder of the dataset")
    p.add_argument("--normal-ratio", type=float, default=1.0, help="normal windows per anomalous window (default 1)")
    p.add_argument("--val-fraction", type=float, default=0.2, help="share of each dataset's series for validation")
    p.add_argument("--limit", type=int, default=None, help="first K series per dataset")
    p.add_argument("--max-windows-per-series", type=int, default=None, help="cap on anomalous windows per series")
    p.add_argument("--window", type=int, default=None, help="window length (default: the agent config's)")
    p.add_argument("--stride", type=int, default=None, help="window stride (default: the window length)")
    p.add_argument("--seed", type=int, default=0, help="seed of the window draw, the split and synthetic data (default 0)")
    p.add_argument("--cache-dir", default=None, help="upstream cache (default OUT/upstream_cache)")
    add_set_option(p, "an option of the upstream agent, as in detect: " + DETECTOR_SET_HELP)
    p.set_defaults(func=_prepare)

    t = subparsers.add_parser(
        "train",
        help="GRPO (or SFT) training of the detector with TRL",
        description=(
            "Train from a configs/train/*.yaml file; --set KEY=VALUE overrides any entry, TRL "
            "GRPOConfig fields (SFTConfig in mode sft) under grpo. (sft.): --set grpo.learning_rate=2e-6."
        ),
    )
    add_train_arguments(t)
    t.set_defaults(func=_train, accepts_extra=True)


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``anomamind train`` (also scripts/train_grpo.py under accelerate)."""
    parser.add_argument("--config", required=True, help="train config YAML (configs/train/*.yaml)")
    parser.add_argument("--out", "--output_dir", "--output-dir", dest="out", default=None,
                        help="run folder: checkpoints, logs, final/ (default: grpo.output_dir of the config)")
    add_set_option(
        parser,
        "override a config entry: grpo.learning_rate=2e-6, grpo.max_steps=100, "
        "rewards.enabled=[two_sided,format_reward], model.name_or_path=DIR. Repeatable; value parsed as YAML",
    )


def split_extra(extra: list[str]) -> tuple[list[str], list[str]]:
    """``a.b=value`` config overrides and ``--field value`` trainer flags, in order."""
    overrides = [a for a in extra if not a.startswith("-") and "=" in a]
    flags = [a for a in extra if a not in overrides]
    return overrides, flags


def train_request(args: argparse.Namespace, extra: list[str]) -> tuple[list[str], dict[str, Any]]:
    """Config overrides and typed trainer fields of a train command line: ``--set`` items,
    then the deprecated spellings (bare ``KEY=VALUE``; ``--<field> VALUE`` for a TRL config
    field), each with a note saying the ``--set`` to write instead."""
    from anomamind.config import format_assignment, read_yaml

    bare, flags = split_extra(extra)
    for item in bare:
        warn_deprecated(item, f"--set {item}")
    trainer_args: dict[str, Any] = {}
    if flags:
        from anomamind.rl.train import trainer_args_from_cli

        mode = str(read_yaml(args.config).get("mode", "grpo"))
        trainer_args = trainer_args_from_cli(flags, mode)
        section = "sft" if mode == "sft" else "grpo"
        warn_deprecated(" ".join(flags), " ".join(f"--set {format_assignment(f'{section}.{key}', value)}"
                                                  for key, value in trainer_args.items()))
    return list(args.set) + bare, trainer_args


def _prepare(args: argparse.Namespace) -> int:
    from anomamind.cli_options import detector_options
    from anomamind.config import ConfigError
    from anomamind.rl.prepare import PrepareConfig, prepare_dataset

    try:
        agent_options = detector_options(args.set, "llm-agent" if (args.agents or "").startswith("llm:") else "heuristic-agent")
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:  # bad data or settings (DataError and ConfigError are ValueErrors): one line, no traceback
        cfg = PrepareConfig(
            data=args.data, out=args.out, datasets=args.datasets, agents=args.agents,
            normal_ratio=args.normal_ratio, val_fraction=args.val_fraction, limit=args.limit,
            max_windows_per_series=args.max_windows_per_series, window=args.window,
            stride=args.stride, seed=args.seed, cache_dir=args.cache_dir, agent_options=agent_options,
        )
        summary = prepare_dataset(cfg)
    except ValueError as err:
        print(f"anomamind prepare: error: {err}", file=sys.stderr)
        return 2
    except Exception as err:
        if not getattr(err, "fatal", False):
            raise
        print(f"anomamind prepare: error: {err}", file=sys.stderr)  # LLM roles: refused key, dead endpoint
        return 1
    for split, info in summary["splits"].items():
        print(f"{split}: {info['windows']} windows ({info['anomalous_windows']} anomalous) from {len(info['series'])} series")
    for failure in summary["failures"]:
        print(f"failed: {failure['source']}: {failure['error']}", file=sys.stderr)
    print(f"saved to {args.out}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from anomamind.rl.train import train_from_config
    from anomamind.rl.train_progress import summary_line

    overrides, trainer_args = train_request(args, getattr(args, "extra", []) or [])
    summary = train_from_config(args.config, overrides, args.out, trainer_args)
    print(summary_line(summary))
    return 0
