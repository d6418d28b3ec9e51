"""Leave-one-dataset-out benchmark of the heuristic agent on the dev split.

For each dataset D of the dev split, the knowledge memory is derived without D
(scripts/derive_knowledge.py --exclude D: pooled tool thresholds, event_fraction and the
label-free settings from the other datasets only; D's own entry removed), and the agent
runs on D's series as on an unseen dataset: no knowledge entry, thresholds calibrated on
each series, labelling convention from each series' period. The in-domain agent (the
repository's knowledge, tuned on all of dev) runs on the same series. Both are scored by
the benchmark runner (eval/bench.py) and written next to the classical baselines' dev
results (benchmarks/baselines/summary.csv, same series, same metric code).

    nice -n 10 python scripts/bench_unseen_datasets.py --data ../shared/data/tsbad/dev \\
        --out runs/unseen --report benchmarks/unseen_datasets --workers 2
    scripts/refresh_benchmarks.sh unseen_datasets    # the same, as the committed table was made

Writes ``--report``/table.md (F1, VUS-PR, AUC-PR per dataset) and summary.csv; every run's
own report (table.md, per_series.csv) stays under ``--out``. Only the dev split is read.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from anomamind.envs.detectors import files_digest
from anomamind.envs.loaders import load_directory
from anomamind.eval.bench import run_benchmark
from anomamind.paths import REPO_ROOT
from anomamind.provenance import command_line, header_lines

DATASETS = ("YAHOO", "TODS", "IOPS", "WSD")
METRICS = (("f1", "F1"), ("vus_pr", "VUS-PR"), ("auc_pr", "AUC-PR"))
BASELINES = ("fft", "sr", "iforest", "iforest-unsup", "zscore", "zscore-diff", "matrix-profile")


def knowledge_without(dataset: str, data: Path, out: Path) -> Path:
    """Derive the knowledge without ``dataset``; the folder is named by its content digest,
    so a benchmark cache never serves results computed with other knowledge."""
    scratch = out / f"knowledge-without-{dataset}"
    shutil.rmtree(scratch, ignore_errors=True)
    command = [sys.executable, str(REPO_ROOT / "scripts" / "derive_knowledge.py"), "--data", str(data),
               "--exclude", dataset, "--out", str(scratch), "--cache", str(out / "derive-cache")]
    subprocess.run(command, check=True)
    final = out / f"knowledge-without-{dataset}-{files_digest(scratch, '*.yaml')}"
    if not final.exists():
        shutil.copytree(scratch, final)
    shutil.rmtree(scratch)
    return final


def agent_summary(series: list, out: Path, workers: int, overrides: list[str], label: str) -> pd.DataFrame:
    options = {"heuristic-agent": {"overrides": overrides}} if overrides else None
    summary = run_benchmark(
        series, ["heuristic-agent"], out, workers=workers, detector_options=options, sample_plots=0,
        progress=False, data_label=label,
    )
    return summary[summary["dataset"] != "ALL"]


def render(rows: pd.DataFrame, datasets: list[str], header: list[str]) -> str:
    """The Markdown table: one row per detector, F1 / VUS-PR / AUC-PR per dataset; the best
    classical baseline of each column is marked."""
    lines = header + ["", "| detector | " + " | ".join(f"{d} {m}" for d in datasets for _, m in METRICS) + " |",
                      "|---|" + "---:|" * (len(datasets) * len(METRICS))]
    classical = rows[rows["detector"].isin(BASELINES)]
    best = {(d, k): classical.loc[classical["dataset"] == d, k].max() for d in datasets for k, _ in METRICS}
    for detector in rows["detector"].drop_duplicates():
        cells = []
        for d in datasets:
            row = rows[(rows["detector"] == detector) & (rows["dataset"] == d)]
            for key, _ in METRICS:
                value = float(row[key].iloc[0]) if len(row) else float("nan")
                text = f"{value:.3f}"
                cells.append(f"**{text}**" if detector in BASELINES and value == best[(d, key)] else text)
        lines.append(f"| {detector} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/tsbad/dev"), help="dev split root")
    parser.add_argument("--out", type=Path, default=Path("runs/unseen"), help="runs, caches and derived knowledge")
    parser.add_argument("--report", type=Path, default=None, help="folder for table.md and summary.csv")
    parser.add_argument("--baselines", type=Path, default=REPO_ROOT / "benchmarks" / "baselines" / "summary.csv")
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--workers", type=int, default=1, help="benchmark worker processes")
    args = parser.parse_args(argv)
    if "dev" not in args.data.resolve().parts:
        parser.error(f"--data {args.data} is not a dev split")
    started = time.perf_counter()
    loaded = load_directory(args.data, datasets=args.datasets)
    by_dataset = {d: [s for s in loaded.series if s.dataset == d] for d in args.datasets}
    rows = []
    for dataset in args.datasets:
        knowledge = knowledge_without(dataset, args.data, args.out)
        print(f"{dataset}: knowledge without it in {knowledge}", flush=True)
        summary = agent_summary(
            by_dataset[dataset], args.out / f"unseen-{dataset}", args.workers, [f"knowledge_dir={knowledge.resolve()}"],
            f"--data {args.data} --datasets {dataset} (knowledge derived without {dataset})",
        )
        rows.append(summary.assign(detector="heuristic-agent, unseen dataset"))
    in_domain = agent_summary(loaded.series, args.out / "in-domain", args.workers, [], f"--data {args.data}")
    rows.append(in_domain.assign(detector="heuristic-agent, in-domain"))
    baselines = pd.read_csv(args.baselines)
    rows.append(baselines[baselines["dataset"].isin(args.datasets) & baselines["detector"].isin(BASELINES)])
    table = pd.concat(rows, ignore_index=True)[["dataset", "detector", "n_series", "f1", "vus_pr", "auc_pr"]]
    wall = time.perf_counter() - started
    baselines_path = args.baselines.resolve()
    header = [
        "# The heuristic agent on datasets it has not seen (leave one dataset out, dev split)",
        "",
        *header_lines(command_line(), split=f"dev ({len(loaded.series)} series; {len(loaded.failures)} files skipped by the loader)"),
        f"- Wall time: {wall:.0f} s.",
        "- Unseen dataset: knowledge derived from the other datasets only; the agent has no entry for the "
        "dataset and calibrates each series on itself. In-domain: the repository's knowledge (tuned on all of dev).",
        f"- Baselines: {baselines_path.relative_to(REPO_ROOT) if baselines_path.is_relative_to(REPO_ROOT) else args.baselines} "
        "(their own command and commit in that folder); bold: the best classical baseline per column.",
        "- F1: point F1 of the detector's own decision; VUS-PR and AUC-PR: threshold-free, TSB-AD definitions "
        "(macro averages over series).",
    ]
    text = render(table, list(args.datasets), header)
    print(text)
    if args.report is not None:
        args.report.mkdir(parents=True, exist_ok=True)
        (args.report / "table.md").write_text(text)
        table.to_csv(args.report / "summary.csv", index=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
