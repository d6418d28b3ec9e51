"""``anomamind infer``: batch inference of a detector model over prepared windows."""

from __future__ import annotations

import argparse
import json
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "infer",
        help="run a detector model over prepared windows in batches (transformers, vLLM or an OpenAI-compatible server)",
        description="Batch inference with a trained detector. The upstream stages come from "
        "the prepared dataset (anomamind prepare); answers are appended to OUT/detections.jsonl "
        "(an interrupted run resumes) and OUT/summary.json holds point metrics and throughput.",
    )
    p.add_argument("--prepared", required=True, help="a dataset folder written by 'anomamind prepare'")
    p.add_argument("--split", default="validation", help="which split to run (default: validation)")
    p.add_argument("--model", required=True, help="model folder or Hub id (or the served model name for --kind openai)")
    p.add_argument("--kind", choices=["transformers", "vllm", "openai"], default="transformers",
                   help="transformers: local model, windows batched; vllm: offline engine on a GPU; "
                   "openai: an OpenAI-compatible server (e.g. 'vllm serve') with concurrent requests")
    p.add_argument("--base-url", default="http://127.0.0.1:8000/v1", help="server URL for --kind openai")
    p.add_argument("--api-key-env", default=None, help="environment variable holding the API key (--kind openai)")
    p.add_argument("--batch-size", type=int, default=8, help="windows per batch (concurrent requests for openai)")
    p.add_argument("--max-tokens", type=int, default=512, help="most tokens per answer (default 512)")
    p.add_argument("--temperature", type=float, default=0.0, help="sampling temperature (default 0: greedy)")
    p.add_argument("--dtype", default="auto", help="model dtype for local kinds (bf16 on GPUs)")
    p.add_argument("--limit", type=int, help="run at most N windows")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a backend setting (docs/backends.md), e.g. --set context_tokens=2048 --set timeout_s=60 (repeatable)")
    p.add_argument("--out", required=True, help="output folder")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from anomamind.agents.backends.base import BackendError
    from anomamind.agents.backends.factory import backend_config, make_backend
    from anomamind.config import ConfigError, apply_overrides
    from anomamind.rl.batch_infer import InferenceSettings, load_prepared_rows, run_batch_inference

    try:
        rows = load_prepared_rows(args.prepared, args.split)
        config = {"kind": args.kind, "model": args.model, "dtype": args.dtype}
        if args.kind == "openai":
            config.update(base_url=args.base_url, api_key_env=args.api_key_env, max_concurrency=args.batch_size)
        elif args.kind == "transformers":
            config.update(max_batch_size=args.batch_size)
        backend = make_backend(backend_config(apply_overrides(config, args.set), "infer --set"))
        if hasattr(backend, "check"):
            backend.check()
    except (ConfigError, KeyError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except BackendError as err:  # refused key, dead endpoint, model not served
        print(f"error: {err}", file=sys.stderr)
        return 1
    settings = InferenceSettings(batch_size=args.batch_size, max_tokens=args.max_tokens,
                                 temperature=args.temperature, limit=args.limit)
    try:
        summary = run_batch_inference(backend, rows, args.out, settings)
    except BackendError as err:
        print(f"error: the detector backend failed: {err}\nanswers received so far are kept in "
              f"{args.out}/detections.jsonl; rerun the same command to resume", file=sys.stderr)
        return 1
    print(json.dumps(summary, indent=1))
    return 0
