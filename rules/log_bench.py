"""Benchmark log rule sets against the log baselines on each log's held-out test part.

Each rule set's manifest says how its log was read, windowed and split; the benchmark
rebuilds exactly that split, fits every detector on the training part (the rules were
searched there and selected on the validation part) and scores it on the test part only:
window-level precision, recall and F1 of the detector's own decision, line-level recall
(the share of anomalous lines inside flagged windows), and throughput in lines per second.
Detectors that need templates (PCA, Isolation Forest, Invariants Mining) also pay for
matching the test lines to Drain templates; that time is measured separately and shown in
the "incl. parsing" column. Rules and the keyword rule read raw lines.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pandas as pd

from anomamind.envs.log_templates import TemplateOptions, TemplateParser
from anomamind.envs.log_windows import LogWindowSpec
from anomamind.rules.log_data import LogPart, LogSplitSpec, split_log
from anomamind.rules.log_detector import create_log_detector
from anomamind.rules.log_train import LogDataOptions, read_log
from anomamind.rules.rule import load_rule_set

COLUMNS = ("precision", "recall", "f1", "line_recall", "flagged", "lines_per_s", "lines_per_s_with_parsing")


def rebuild_split(rule_dir: str | Path, data_path: str | None = None) -> tuple[dict[str, LogPart], dict[str, Any]]:
    """The split a log rule set was trained on, rebuilt from its manifest (``data_path``
    overrides where the log is read from)."""
    rule_set = load_rule_set(rule_dir, modality="logs")
    if rule_set.modality != "logs":
        raise ValueError(f"{rule_dir}: not a log rule set (modality {rule_set.modality!r})")
    config = rule_set.info.get("training", {}).get("config", {})
    path = data_path or rule_set.info.get("training", {}).get("data")
    if not path:
        raise ValueError(f"{rule_dir}: the manifest does not say which log it was trained on; pass --data")
    data = read_log(path, LogDataOptions(**config.get("data", {})))
    window = LogWindowSpec(**rule_set.window)
    parts = split_log(data, window, LogSplitSpec(**config.get("split", {})), TemplateOptions(**config.get("templates", {})))
    return parts, {"dataset": rule_set.dataset or data.dataset, "data": str(path), "window": window.describe(),
                   "config": config}


def parsing_seconds(parts: dict[str, LogPart], options: dict[str, Any], repeats: int = 3) -> float:
    """Time to match the test lines to Drain templates learnt on the training lines (best of
    ``repeats`` runs, each with a freshly fitted parser)."""
    train, test = parts["train"], parts["test"]
    times = []
    for _ in range(repeats):
        parser = TemplateParser(TemplateOptions(**options))
        parser.fit_transform(train.data.messages[train.start:train.end])
        started = time.perf_counter()
        parser.transform(test.data.messages[test.start:test.end])
        times.append(time.perf_counter() - started)
    return min(times)


def bench_log_rules(rule_dirs: list[str | Path], detectors: list[str], data_path: str | None = None,
                    repeats: int = 3, trusted_rules: bool = False) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """One row per (log, detector) on the test part; and a description of each log's split.

    Detection runs ``repeats`` times; the scores come from the first run (every run gives the
    same flags) and the time is the best run's, the usual way to time code on a shared machine.
    ``trusted_rules`` runs rule sets where the OS sandbox is unavailable."""
    rows, splits = [], []
    for rule_dir in rule_dirs:
        parts, about = rebuild_split(rule_dir, data_path)
        test = parts["test"]
        if not test.windows:
            raise ValueError(f"{rule_dir}: the test part holds no window")
        parse_s = parsing_seconds(parts, about["config"].get("templates", {}), repeats)
        splits.append({**about, "parts": {name: p.summary() for name, p in parts.items()}, "parse_seconds": parse_s})
        for spec in [f"rules:{rule_dir}", *detectors]:
            options = {"trusted_rules": True} if trusted_rules and spec.startswith("rules:") else {}
            detector = create_log_detector(spec, **options)
            try:
                started = time.perf_counter()
                detector.fit(parts["train"])
                fit_seconds = time.perf_counter() - started
                prediction, runs = None, []
                for _ in range(max(1, repeats)):
                    started = time.perf_counter()
                    result = detector.detect(test)
                    runs.append(time.perf_counter() - started)
                    prediction = prediction or result  # the first run's verdicts
                seconds = min(runs)
            finally:
                detector.close()
            with_parsing = seconds + (parse_s if getattr(detector, "uses_templates", False) else 0.0)
            rows.append({
                "dataset": about["dataset"],
                "window": about["window"],
                "detector": "rules (learned)" if spec.startswith("rules:") else spec,
                **test.scores(prediction.flags),
                "fit_seconds": fit_seconds,
                "detect_seconds": seconds,
                "lines_per_s": test.n_lines / max(seconds, 1e-9),
                "lines_per_s_with_parsing": test.n_lines / max(with_parsing, 1e-9),
                "errors": "; ".join(prediction.info.get("rule_errors", [])),
            })
    return pd.DataFrame(rows), splits


def render_log_table(frame: pd.DataFrame, splits: list[dict[str, Any]], command: str, note: str = "",
                     repeats: int = 3) -> str:
    """Markdown: how each log was split, then one block of rows per log."""
    from anomamind.provenance import header_lines

    lines = [
        "# Learned log rules vs log baselines (held-out test part of each log)",
        "",
        *header_lines(command, split="each log in time order: rules searched (and Drain and the baselines "
                                     "fitted) on the first part, selected on the middle, scored on the last; "
                                     "parts per log below"),
        "",
        "Metrics: window-level precision/recall/F1 of each detector's own decision (no threshold picked on the "
        "test labels), line recall = share of the anomalous lines that lie in a flagged window, throughput = test "
        f"lines per second of detection (best of {repeats} runs, fitting excluded; 'incl. parsing' adds matching "
        "the test lines to Drain templates for the detectors that need them).",
        "",
    ]
    if note:
        lines += [note, ""]
    for split in splits:
        parts = split["parts"]
        described = "; ".join(f"{name}: {p['lines']} lines, {p['windows']} windows, {p['alert_windows']} with "
                              f"alerts ({p['alert_lines']} alert lines)" for name, p in parts.items())
        lines.append(f"- **{split['dataset']}** (`{split['data']}`), {split['window']}, time-ordered split "
                     f"(rules searched on train, selected on validation, scored on test): {described}.")
    header = ("| log | windows | detector | precision | recall | F1 | line recall | flagged windows | lines/s | "
              "lines/s incl. parsing |")
    lines += ["", header, "|---|---|---|---|---|---|---|---|---|---|"]
    for _, row in frame.iterrows():
        lines.append(
            f"| {row['dataset']} | {row['window']} | {row['detector']} | {row['precision']:.3f} | {row['recall']:.3f} | {row['f1']:.3f} "
            f"| {row['line_recall']:.3f} | {row['flagged']} | {row['lines_per_s']:,.0f} | "
            f"{row['lines_per_s_with_parsing']:,.0f} |"
        )
    errors = frame[frame["errors"] != ""]
    for _, row in errors.iterrows():
        lines.append(f"\nRule errors ({row['dataset']}): {row['errors']}")
    return "\n".join(lines) + "\n"
