"""Benchmark learned rule sets against other detectors on each dataset's TEST series.

The rules of a dataset were trained and selected on its train/validation series, so a
fair comparison runs every detector on the series of ``test_files.csv`` in the rule set
folder only. Each dataset goes through the benchmark runner
(:func:`anomamind.eval.bench.run_benchmark`: same metrics, caching and failure rule as
``anomamind bench``) with ``rules:<RULES>/<DATASET>`` next to the other detectors; the
per-dataset summaries are merged into one markdown table.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from anomamind.provenance import header_lines
from anomamind.rules.train import TEST_FILE_LIST

COLUMNS = ("n_series", "n_failed", "precision", "recall", "f1", "best_f1", "vus_pr", "affiliation_f", "seconds")


def bench_rule_sets(
    rules_dir: str | Path,
    data_dir: str | Path,
    datasets: list[str],
    detectors: list[str],
    out_dir: str | Path,
    workers: int = 1,
    trusted_rules: bool = False,
) -> pd.DataFrame:
    """Run ``rules:<rules_dir>/<DS>`` and ``detectors`` on each dataset's test series
    (``trusted_rules``: run the rules even without the OS sandbox)."""
    from anomamind.envs.loaders import load_directory
    from anomamind.eval.bench import run_benchmark

    rules_dir, out_dir = Path(rules_dir), Path(out_dir)
    frames = []
    for dataset in datasets:
        file_list = rules_dir / dataset / TEST_FILE_LIST
        if not file_list.is_file():
            raise FileNotFoundError(f"{file_list}: missing; train the rule set first (anomamind rules train)")
        loaded = load_directory(data_dir, datasets=[dataset], file_list=file_list)
        rule_spec = f"rules:{rules_dir / dataset}"
        summary = run_benchmark(
            loaded.series, [rule_spec, *detectors], out_dir / dataset, workers=workers, sample_plots=0,
            progress=False, data_label=f"{data_dir} {dataset}, test series of {file_list}",
            load_failures=loaded.failures,
            detector_options={rule_spec: {"trusted_rules": True}} if trusted_rules else None,
        )
        summary = summary[summary["dataset"] != "ALL"].copy()
        summary["detector"] = summary["detector"].replace({rule_spec: rule_set_label(rules_dir / dataset)})
        frames.append(summary)
    return pd.concat(frames, ignore_index=True)


def rule_set_label(path: Path) -> str:
    """"rules (learned)", or e.g. "sr AND rules (learned)" for a combined rule set."""
    from anomamind.rules.rule import load_rule_set

    combined = load_rule_set(path).combine_with
    if not combined:
        return "rules (learned)"
    return f"{combined['detector']} {combined['mode'].upper()} rules (learned)"


def split_note(rules_dir: str | Path, dataset: str) -> str:
    """How the rule set of ``dataset`` split its series, from its manifest."""
    from anomamind.rules.rule import load_rule_set

    split = load_rule_set(Path(rules_dir) / dataset).info.get("split", {}).get("folds", {})
    return (f"{split.get('n_folds')} folds by the hash of the series names; rules searched on folds "
            f"{split.get('train')}, selected on {split.get('validation')}, scored on {split.get('test')}")


def render_table(summary: pd.DataFrame, command: str, split: str, note: str = "") -> str:
    """Markdown: one block per dataset, plus the macro average over datasets."""
    lines = [
        "# Learned rules vs baselines and the heuristic agent (held-out test series of dev)",
        "",
        *header_lines(command, split=f"each dataset of the dev data dealt into {split}; every detector below is "
                      "scored on the test folds only (the series in each rule set's `test_files.csv`)"),
        "",
        "Metrics: point precision/recall/F1 of each detector's own decision (no point adjustment, "
        "no threshold picked on the evaluated labels), cross-fitted Best-F1, VUS-PR and Affiliation-F from "
        "`eval/bench.py`; macro averages over series. `seconds` is the total detection time.",
        "",
    ]
    if note:
        lines += [note, ""]
    header = "| dataset | detector | " + " | ".join(COLUMNS) + " |"
    lines += [header, "|" + "---|" * (len(COLUMNS) + 2)]
    for _, row in summary.iterrows():
        cells = [f"{row[c]:.0f}" if c.startswith("n_") else f"{row[c]:.3f}" if c != "seconds" else f"{row[c]:.1f}"
                 for c in COLUMNS]
        lines.append(f"| {row['dataset']} | {row['detector']} | " + " | ".join(cells) + " |")
    mean = summary.groupby("detector", sort=False)[["precision", "recall", "f1", "best_f1", "vus_pr", "affiliation_f"]].mean()
    lines += ["", "Mean over datasets (each dataset weighs the same):", "",
              "| detector | precision | recall | f1 | best_f1 | vus_pr | affiliation_f |", "|---|---|---|---|---|---|---|"]
    for detector, row in mean.iterrows():
        lines.append(f"| {detector} | " + " | ".join(f"{v:.3f}" for v in row.values) + " |")
    return "\n".join(lines) + "\n"
