"""Multi-process entry point for ``accelerate launch`` (one process per GPU):

    accelerate launch --config_file configs/accelerate/multi_gpu_ddp.yaml \
        scripts/train_grpo.py --config configs/train/qwen3_1.7b.yaml --output_dir runs/q17

Same arguments as ``anomamind train``: KEY=VALUE config overrides and ``--<GRPOConfig
field> VALUE``. The trainer (TRL/accelerate) reads the process topology from the launcher.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    from anomamind.config import read_yaml
    from anomamind.rl.cli import split_extra
    from anomamind.rl.train import train_from_config, trainer_args_from_cli
    from anomamind.rl.train_progress import summary_line

    parser = argparse.ArgumentParser(description="GRPO/SFT training of the detector (see docs/training.md)")
    parser.add_argument("--config", required=True)
    parser.add_argument("--output_dir", "--output-dir", dest="output_dir", default=None)
    args, extra = parser.parse_known_args(argv)
    overrides, flags = split_extra(extra)
    mode = str(read_yaml(args.config).get("mode", "grpo"))
    summary = train_from_config(args.config, overrides, args.output_dir, trainer_args_from_cli(flags, mode))
    print(summary_line(summary))
    return 0


if __name__ == "__main__":
    from anomamind.extras import run_or_name_missing_extra

    sys.exit(run_or_name_missing_extra(main, "scripts/train_grpo.py"))
