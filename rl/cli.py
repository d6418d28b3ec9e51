"""``anomamind prepare`` and ``anomamind train`` (heavy imports happen inside the commands)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


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
    p.add_argument("--stride", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache-dir", default=None, help="upstream cache (default OUT/upstream_cache)")
    p.set_defaults(func=_prepare)

    t = subparsers.add_parser(
        "train",
        help="GRPO (or SFT) training of the detector with TRL",
        description=(
            "Train from a configs/train/*.yaml file. Extra KEY=VALUE arguments override config "
            "entries (grpo.learning_rate=1e-5, rewards.enabled=[two_sided,format_reward]); "
            "--<field> VALUE sets any TRL GRPOConfig field (SFTConfig in mode sft)."
        ),
    )
    t.add_argument("--config", required=True, help="train config YAML")
    t.add_argument("--output_dir", "--output-dir", dest="output_dir", default=None)
    t.set_defaults(func=_train, accepts_extra=True)


def split_extra(extra: list[str]) -> tuple[list[str], list[str]]:
    """``a.b=value`` config overrides and ``--field value`` trainer flags, in order."""
    overrides = [a for a in extra if not a.startswith("-") and "=" in a]
    flags = [a for a in extra if a not in overrides]
    return overrides, flags


def _prepare(args: argparse.Namespace) -> int:
    from anomamind.rl.prepare import PrepareConfig, prepare_dataset

    cfg = PrepareConfig(
        data=args.data, out=args.out, datasets=args.datasets, agents=args.agents,
        normal_ratio=args.normal_ratio, val_fraction=args.val_fraction, limit=args.limit,
        max_windows_per_series=args.max_windows_per_series, window=args.window,
        stride=args.stride, seed=args.seed, cache_dir=args.cache_dir,
    )
    try:
        summary = prepare_dataset(cfg)
    except Exception as err:
        if not getattr(err, "fatal", False):
            raise
        print(f"error: {err}", file=sys.stderr)  # LLM roles: refused key, dead endpoint
        return 1
    for split, info in summary["splits"].items():
        print(f"{split}: {info['windows']} windows ({info['anomalous_windows']} anomalous) from {len(info['series'])} series")
    for failure in summary["failures"]:
        print(f"failed: {failure['source']}: {failure['error']}", file=sys.stderr)
    print(f"saved to {args.out}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from anomamind.config import read_yaml
    from anomamind.rl.train import trainer_args_from_cli, train_from_config

    overrides, flags = split_extra(getattr(args, "extra", []) or [])
    mode = str(read_yaml(args.config).get("mode", "grpo"))
    trainer_args = trainer_args_from_cli(flags, mode)
    summary = train_from_config(args.config, overrides, args.output_dir, trainer_args)
    print(json.dumps(summary, indent=1, default=str))
    return 0
