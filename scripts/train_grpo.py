"""Multi-process entry point for ``accelerate launch`` (one process per GPU):

    accelerate launch --config_file configs/accelerate/multi_gpu_ddp.yaml \
        scripts/train_grpo.py --config configs/train/qwen3_1.7b.yaml --out runs/q17

Same arguments as ``anomamind train``: ``--out`` (alias ``--output_dir``) and
``--set KEY=VALUE`` config overrides. The trainer (TRL/accelerate) reads the process
topology from the launcher.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    from anomamind.rl.cli import add_train_arguments, train_request
    from anomamind.rl.train import train_from_config
    from anomamind.rl.train_progress import summary_line

    parser = argparse.ArgumentParser(description="GRPO/SFT training of the detector (see docs/training.md)")
    add_train_arguments(parser)
    args, extra = parser.parse_known_args(argv)
    overrides, trainer_args = train_request(args, extra)
    summary = train_from_config(args.config, overrides, args.out, trainer_args)
    print(summary_line(summary))
    return 0


if __name__ == "__main__":
    from anomamind.extras import run_or_name_missing_extra

    sys.exit(run_or_name_missing_extra(main, "scripts/train_grpo.py"))
