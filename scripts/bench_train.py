"""Training throughput of the detector: GRPO steps and plain policy-update steps.

Two measurements on a random-weight Qwen3 (the tiny one of rl/tiny.py, or one of the
published sizes built from its dimensions; nothing is downloaded):

- ``grpo``: TRL's GRPOTrainer end to end (generation with transformers, the four reward
  terms, the policy-gradient update) on detector-style prompts of a fixed token length;
- ``update``: forward + backward + AdamW step on prompt+completion sequences with the
  loss on the completion tokens' log-probs (as GRPO's), i.e. the policy update alone,
  without generation.

Steps after ``--warmup`` are timed. Reported: completions (samples) per second, tokens
(prompt + completion) per second, and peak memory (CUDA max allocated on GPU, process max
RSS on CPU). Rows are appended to ``--csv`` with the command, machine and settings.

    python scripts/bench_train.py --model tiny --device cpu --mode grpo update
    python scripts/bench_train.py --model qwen3-0.6b --device cuda --dtype bf16 --mode grpo update
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


CSV_FIELDS = [
    "mode", "model", "params_m", "device", "dtype", "prompts_per_step", "num_generations",
    "prompt_tokens", "completion_tokens", "mean_completion_tokens", "gradient_checkpointing",
    "step_seconds", "samples_per_s", "tokens_per_s", "peak_memory_gib", "label", "command",
]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="tiny", help="tiny, or a size of rl/tiny.QWEN3_SIZES")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"])
    p.add_argument("--mode", nargs="+", default=["grpo", "update"], choices=["grpo", "update"])
    p.add_argument("--steps", type=int, default=4, help="timed steps")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--prompts-per-step", type=int, default=2)
    p.add_argument("--num-generations", type=int, default=4)
    p.add_argument("--prompt-tokens", type=int, default=256)
    p.add_argument("--completion-tokens", type=int, default=64)
    p.add_argument("--gradient-checkpointing", action="store_true")
    p.add_argument("--csv", default="benchmarks/train/throughput.csv")
    p.add_argument("--label", default="", help="free text stored with the row (e.g. the machine)")
    return p.parse_args(argv)


def peak_memory_gib(device: str) -> float:
    import torch

    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def build_model(args: argparse.Namespace):
    import torch

    from anomamind.rl.tiny import build_qwen3_of_size, build_tiny_qwen3

    dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float32
    if args.model == "tiny":
        model, tok = build_tiny_qwen3(hidden_size=128, num_hidden_layers=4, intermediate_size=384)
        model = model.to(device=args.device, dtype=dtype)
    else:
        model, tok = build_qwen3_of_size(args.model, dtype=dtype, device=args.device)
    return model, tok


def detector_prompt_of_length(tok, n_tokens: int, seed: int) -> str:
    """A detector-style prompt cut to exactly ``n_tokens`` tokens of the tiny tokenizer."""
    rng = np.random.default_rng(seed)
    values = ",".join(f"{v:.3g}" for v in rng.normal(size=4 * n_tokens))
    text = f"Window: indices 0..99 (100 points)\nValues from index 0: [{values}]"
    ids = tok(text)["input_ids"][:n_tokens]
    return tok.decode(ids)


def bench_update(args, model, tok) -> dict:
    """Forward + backward + optimizer step on batches of prompt+completion length."""
    import torch

    batch = args.prompts_per_step * args.num_generations
    seq = args.prompt_tokens + args.completion_tokens
    vocab = len(tok)
    model.train()
    if args.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-6)
    gen = torch.Generator().manual_seed(0)
    times = []
    for step in range(args.warmup + args.steps):
        ids = torch.randint(0, vocab, (batch, seq), generator=gen).to(args.device)
        if args.device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        # as GRPO's loss: log-probs of the completion tokens only (logits_to_keep), so the
        # vocabulary-sized logits are never built for the prompt
        logits = model(input_ids=ids, logits_to_keep=args.completion_tokens + 1).logits[:, :-1]
        targets = ids[:, -args.completion_tokens :, None]
        loss = -torch.log_softmax(logits.float(), dim=-1).gather(-1, targets).mean()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if args.device == "cuda":
            torch.cuda.synchronize()
        if step >= args.warmup:
            times.append(time.perf_counter() - t0)
    seconds = float(np.mean(times))
    return {
        "mode": "update",
        "step_seconds": seconds,
        "samples_per_s": batch / seconds,
        "tokens_per_s": batch * seq / seconds,
    }


def bench_grpo(args, model, tok) -> dict:
    """TRL GRPOTrainer steps; completions and tokens counted from what was generated."""
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from anomamind.rl.rewards import build_reward_functions

    n_prompts = args.prompts_per_step * (args.warmup + args.steps)
    rows = {
        "prompt": [detector_prompt_of_length(tok, args.prompt_tokens, s) for s in range(n_prompts)],
        "window_start": [0] * n_prompts,
        "window_end": [100] * n_prompts,
        "labels": [[0] * 100] * n_prompts,
    }
    funcs, weights = build_reward_functions()
    completions_per_step = args.prompts_per_step * args.num_generations

    class StepTimer(TrainerCallback):
        def __init__(self):
            self.starts, self.durations, self.completion_tokens = [], [], []

        def on_step_begin(self, a, state, control, **kw):
            if args.device == "cuda":
                import torch

                torch.cuda.synchronize()
            self.starts.append(time.perf_counter())

        def on_step_end(self, a, state, control, **kw):
            if args.device == "cuda":
                import torch

                torch.cuda.synchronize()
            self.durations.append(time.perf_counter() - self.starts[-1])

        def on_log(self, a, state, control, logs=None, **kw):
            if logs and "completions/mean_length" in logs:
                self.completion_tokens.append(float(logs["completions/mean_length"]))

    timer = StepTimer()
    with tempfile.TemporaryDirectory() as out:
        config = GRPOConfig(
            output_dir=out,
            per_device_train_batch_size=completions_per_step,
            num_generations=args.num_generations,
            max_completion_length=args.completion_tokens,
            max_steps=args.warmup + args.steps,
            logging_steps=1,
            learning_rate=1e-6,
            bf16=args.dtype == "bf16",
            use_cpu=args.device == "cpu",
            gradient_checkpointing=args.gradient_checkpointing,
            reward_weights=weights,
            report_to="none",
            save_strategy="no",
            seed=0,
            temperature=1.0,
            dataloader_num_workers=0,
        )
        trainer = GRPOTrainer(
            model=model,
            reward_funcs=funcs,
            args=config,
            train_dataset=Dataset.from_dict(rows),
            processing_class=tok,
            callbacks=[timer],
        )
        trainer.train()
    durations = timer.durations[args.warmup :]
    mean_completion = float(np.mean(timer.completion_tokens[args.warmup :] or [np.nan]))
    seconds = float(np.mean(durations))
    return {
        "mode": "grpo",
        "step_seconds": seconds,
        "samples_per_s": completions_per_step / seconds,
        "tokens_per_s": completions_per_step * (args.prompt_tokens + mean_completion) / seconds,
        "mean_completion_tokens": mean_completion,
    }


def machine_description(device: str) -> str:
    if device == "cuda":
        import torch

        return torch.cuda.get_device_name(0)
    return f"{platform.processor() or platform.machine()} CPU, {os.cpu_count()} cores visible, torch threads {__import__('torch').get_num_threads()}"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda but no CUDA device is visible", file=sys.stderr)
        return 2
    command = "python " + " ".join([sys.argv[0]] + (argv if argv is not None else sys.argv[1:]))
    results = []
    for mode in args.mode:
        model, tok = build_model(args)
        n_params = sum(p.numel() for p in model.parameters())
        if args.device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        result = bench_grpo(args, model, tok) if mode == "grpo" else bench_update(args, model, tok)
        result.update(
            model=args.model,
            params_m=round(n_params / 1e6, 1),
            device=machine_description(args.device),
            dtype=args.dtype,
            prompts_per_step=args.prompts_per_step,
            num_generations=args.num_generations,
            prompt_tokens=args.prompt_tokens,
            completion_tokens=args.completion_tokens,
            gradient_checkpointing=args.gradient_checkpointing,
            peak_memory_gib=round(peak_memory_gib(args.device), 2),
            label=args.label,
            command=command,
        )
        results.append(result)
        print(json.dumps(result), flush=True)
        del model
        if args.device == "cuda":
            torch.cuda.empty_cache()
    if args.csv:
        path = Path(args.csv)
        path.parent.mkdir(parents=True, exist_ok=True)
        new = not path.exists()
        with path.open("a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=CSV_FIELDS, extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerows(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
