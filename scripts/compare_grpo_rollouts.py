"""The learning experiment's rollout modes side by side: single-turn rows beside environment rows.

Reads the JSON reports of two runs of scripts/bench_grpo_learning.py on the same data,
seeds and budget, one with ``--rollout single_turn`` and one with ``--rollout environment``,
and writes OUT/README.md (both runs' provenance, the pooled and per-dataset validation
metrics of every phase and seed in both modes, GRPO-better-than-SFT per seed and mode, the
GRPO training signals and, given the environment run's folder, how its episodes went:
submissions, evaluator feedback, revisions, tool calls), OUT/table.csv (long format) and
copies of the environment run's JSON and plot. Seeds in only one report are listed, not
compared. Absolute paths in the runs' commands become DATA, RUN and REPORT.

    python scripts/compare_grpo_rollouts.py --single-turn benchmarks/train/grpo_learning.json \\
        --environment RUN/report.json --environment-run RUN
"""

from __future__ import annotations

import argparse
import csv
import json
import shlex
import shutil
import sys
from pathlib import Path
from typing import Any

from bench_grpo_learning import SUBSETS, TERMS, verdict

from anomamind.provenance import command_line, header_lines

ROLLOUTS = ("single_turn", "environment")
COLUMNS = ("point_f1", "precision", "recall", *TERMS, "parse_error_rate", "answer_tokens")
#: Per-rollout means the environment logs at every GRPO step (rl/environment.py).
EPISODE_KEYS = ("environment/submitted", "environment/feedback", "environment/refinements", "environment/tool_calls")
#: Placeholders for the values of these options when they are absolute paths (this
#: machine's); --data always becomes DATA, as in bench_grpo_learning's own report.
PLACEHOLDERS = {"--data": "DATA", "--out": "RUN", "--report": "REPORT", "--single-turn": "SINGLE_TURN_REPORT",
                "--environment": "RUN/report.json", "--environment-run": "RUN"}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--single-turn", required=True, help="report JSON of the single-turn run")
    p.add_argument("--environment", required=True, help="report JSON of the --rollout environment run")
    p.add_argument("--environment-run", default=None,
                   help="the environment run's --out folder (its GRPO logs give the episode statistics)")
    p.add_argument("--out", default="benchmarks/train/grpo_learning_environment",
                   help="writes OUT/README.md, OUT/table.csv, OUT/environment.json and OUT/environment.png")
    return p.parse_args(argv)


def portable_command(command: str) -> str:
    """``command`` with the data path and absolute paths among its options' values replaced
    by placeholders (they are this machine's paths)."""
    words = shlex.split(command)
    for i, word in enumerate(words[:-1]):
        if word in PLACEHOLDERS and (word == "--data" or Path(words[i + 1]).is_absolute()):
            words[i + 1] = PLACEHOLDERS[word]
    return " ".join(shlex.quote(w) for w in words)


def load_report(path: str | Path) -> dict[str, Any]:
    """A bench_grpo_learning JSON report, refused with a one-line reason when it is not one."""
    try:
        report = json.loads(Path(path).read_text())
        ok = isinstance(report["metrics"], dict) and isinstance(report["context"]["command"], str)
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise SystemExit(f"{path}: not a report of scripts/bench_grpo_learning.py ({type(err).__name__}: {err})")
    if not ok:
        raise SystemExit(f"{path}: not a report of scripts/bench_grpo_learning.py (no metrics or command)")
    return report


def seeds_of(report: dict[str, Any]) -> list[int]:
    return sorted(int(key.split("/")[1]) for key in report["metrics"] if key.startswith("grpo/"))


def phase_rows(reports: dict[str, dict[str, Any]], seeds: list[int]) -> list[tuple[str, str, str, dict[str, Any]]]:
    """(phase, seed, rollout, metrics by subset): the teacher and the base model once (the
    single-turn run's: the base model never saw the environment), then per seed SFT and GRPO
    in both modes."""
    single = reports["single_turn"]["metrics"]
    rows = [("teacher", "-", "-", single["teacher/-"]), ("base", "-", "single_turn", single["base/-"])]
    for seed in seeds:
        for phase in ("sft", "grpo"):
            rows += [(phase, str(seed), rollout, reports[rollout]["metrics"][f"{phase}/{seed}"]) for rollout in ROLLOUTS]
    return rows


def episode_statistics(run: Path, seeds: list[int]) -> dict[int, dict[str, float]]:
    """Per seed: the means over the GRPO steps of the environment's per-rollout statistics
    and of TRL's tool-call frequency."""
    out: dict[int, dict[str, float]] = {}
    for seed in seeds:
        path = run / f"seed_{seed}" / "grpo_environment" / "log_history.json"
        if not path.is_file():
            continue
        steps = [h for h in json.loads(path.read_text()) if "reward" in h]
        keys = [*EPISODE_KEYS, "tools/call_frequency", "completions/mean_length", "completions/clipped_ratio"]
        out[seed] = {k: sum(h[k] for h in steps if k in h) / max(1, sum(k in h for h in steps)) for k in keys}
    return out


def _short(key: str) -> str:
    """A log key as a column name: ``rewards/two_sided/mean`` -> ``two_sided``."""
    return key.removeprefix("rewards/").removeprefix("completions/").removesuffix("/mean")


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def _run_line(name: str, report: dict[str, Any]) -> str:
    c = report["context"]
    load0, load1 = c["load_start"][0], c["load_end"][0]
    return (f"- {name} run: commit `{c['commit']}`, command `{portable_command(c['command'])}`; {c['machine']}, load "
            f"average {load0:.1f} at the start and {load1:.1f} at the end, {c['minutes']:.0f} min wall time")


def markdown(reports: dict[str, dict[str, Any]], seeds: list[int], only: dict[str, list[int]],
             episodes: dict[int, dict[str, float]], command: str) -> str:
    env = reports["environment"]
    lines = [
        "# GRPO learning experiment: single-turn and environment rollouts side by side",
        "",
        *header_lines(command, split=f"TSB-AD-U `{Path(env['context']['data']).name}` (validation series only)",
                      machine=env["context"]["machine"]),
        _run_line("Single-turn", reports["single_turn"]),
        _run_line("Environment", env),
        "",
        "Both runs: SmolLM2-135M-Instruct, the same prepared windows, seeds, SFT and GRPO steps, batch and "
        "generations (the commands above). Environment mode: the SFT warm start teaches the teacher's answer "
        "submitted through `submit_answer`, GRPO plays episodes in the training environment (a feature tool, the "
        "evaluator's review, one revision) and the SFT and GRPO models are evaluated by greedy episodes; "
        "single-turn answers are one generation. The teacher and the base model are evaluated once, single turn.",
    ]
    if any(only.values()):
        lines += ["", "Seeds in one report only (not compared): "
                  + "; ".join(f"{k}: {v}" for k, v in only.items() if v) + "."]
    lines += ["", "## GRPO better than its SFT warm start (validation two_sided and point F1 both higher)", "",
              "| seed | rollout | two_sided SFT | two_sided GRPO | point F1 SFT | point F1 GRPO | better on both |",
              "| ---: | --- | ---: | ---: | ---: | ---: | --- |"]
    for rollout in ROLLOUTS:
        results = {k: {"metrics": v} for k, v in reports[rollout]["metrics"].items()}
        for d in verdict(results, seeds):
            lines.append(f"| {d['seed']} | {rollout} | {d['sft_two_sided']:.3f} | {d['grpo_two_sided']:.3f} | "
                         f"{d['sft_f1']:.3f} | {d['grpo_f1']:.3f} | {'yes' if d['better'] else 'no'} |")
    rows = phase_rows(reports, seeds)
    lines += ["", "## Validation windows, pooled (greedy; point metrics pooled over the windows)", "",
              "| phase | seed | rollout | windows | " + " | ".join(COLUMNS) + " |",
              "| --- | ---: | --- | ---: | " + " | ".join("---:" for _ in COLUMNS) + " |"]
    for phase, seed, rollout, metrics in rows:
        m = metrics["all"]
        lines.append(f"| {phase} | {seed} | {rollout} | {int(m['windows'])} | "
                     + " | ".join(_fmt(m[c]) for c in COLUMNS) + " |")
    datasets = sorted(k for k in rows[0][3] if k != "all" and k not in SUBSETS)
    lines += ["", "## Per dataset and on the teacher's errors: point F1 / two_sided", "",
              "| phase | seed | rollout | " + " | ".join(f"{n} (windows)" for n in [*datasets, *SUBSETS]) + " |",
              "| --- | ---: | --- | " + " | ".join("---:" for _ in [*datasets, *SUBSETS]) + " |"]
    for phase, seed, rollout, metrics in rows:
        cells = [("-" if metrics.get(n) is None else
                  f"{metrics[n]['point_f1']:.3f} / {metrics[n]['two_sided']:.3f} ({int(metrics[n]['windows'])})")
                 for n in [*datasets, *SUBSETS]]
        lines.append(f"| {phase} | {seed} | {rollout} | " + " | ".join(cells) + " |")
    lines += ["", "## GRPO training (means over each quarter of the steps)", ""]
    keys = ["reward", *[f"rewards/{t}/mean" for t in TERMS], "frac_reward_zero_std", "grad_norm",
            "completions/mean_length", "completions/clipped_ratio"]
    lines += ["| seed | rollout | steps | " + " | ".join(_short(k) for k in keys) + " |",
              "| ---: | --- | --- | " + " | ".join("---:" for _ in keys) + " |"]
    for seed in seeds:
        for rollout in ROLLOUTS:
            summary = reports[rollout].get("grpo_training", {}).get(str(seed), {"quarters": []})
            lines += [f"| {seed} | {rollout} | {q['steps']} | " + " | ".join(_fmt(q.get(k)) for k in keys) + " |"
                      for q in summary["quarters"]]
    if episodes:
        keys = [*EPISODE_KEYS, "tools/call_frequency", "completions/mean_length", "completions/clipped_ratio"]
        lines += ["", "## Environment episodes during GRPO (per-rollout means over the steps)", "",
                  "submitted: share of rollouts that called `submit_answer`; feedback: share that got the evaluator's "
                  "revision request; refinements and tool_calls: per rollout; call_frequency: TRL's tool calls per "
                  "rollout (`submit_answer` included); mean_length: episode tokens (tool results included).", "",
                  "| seed | " + " | ".join(k.split("/")[-1] for k in keys) + " |",
                  "| ---: | " + " | ".join("---:" for _ in keys) + " |"]
        lines += [f"| {seed} | " + " | ".join(_fmt(stats[k]) for k in keys) + " |" for seed, stats in episodes.items()]
    return "\n".join(lines) + "\n"


def portable_report(report: dict[str, Any]) -> dict[str, Any]:
    """The report with the paths of this machine in its context replaced by placeholders."""
    context = dict(report["context"], command=portable_command(report["context"]["command"]),
                   data=f"DATA (TSB-AD-U `{Path(report['context']['data']).name}`)")
    return dict(report, context=context)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    reports = {"single_turn": load_report(args.single_turn), "environment": load_report(args.environment)}
    found = {name: seeds_of(r) for name, r in reports.items()}
    seeds = sorted(set(found["single_turn"]) & set(found["environment"]))
    if not seeds:
        raise SystemExit(f"no seed in both reports (single-turn {found['single_turn']}, environment {found['environment']})")
    only = {name: [s for s in found[name] if s not in seeds] for name in ROLLOUTS}
    episodes = episode_statistics(Path(args.environment_run), seeds) if args.environment_run else {}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "README.md").write_text(markdown(reports, seeds, only, episodes, portable_command(command_line(argv=argv))))
    with open(out / "table.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["phase", "seed", "rollout", "subset", "metric", "value"])
        for phase, seed, rollout, metrics in phase_rows(reports, seeds):
            for subset, values in metrics.items():
                writer.writerows([phase, seed, rollout, subset, k, v] for k, v in values.items())
    (out / "environment.json").write_text(json.dumps(portable_report(reports["environment"]), indent=1))
    plot = Path(args.environment).with_suffix(".png")
    if plot.is_file():
        shutil.copyfile(plot, out / "environment.png")
    print(f"wrote {out}/README.md, table.csv, environment.json" + (", environment.png" if plot.is_file() else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
