"""Benchmark reports: the paper-style Markdown table and sample plots.

``render_table`` lays the summary out like Table 2 of the AnomaMind paper (per dataset:
Precision, Recall, F1, Best-F1, Average) with VUS-PR and Affiliation-F added, and states the
split, the windows and the threshold rules above it, under the commit, command and machine
that produced it. ``plan_plots`` and ``draw_plots`` draw a few series per detector (values,
true anomalies shaded, the detector's flagged points, and its scores) in the benchmark's
worker processes, skipping plots that are newer than their cached result.
"""

from __future__ import annotations

import functools
import json
import logging
import math
from collections import Counter
from concurrent.futures import BrokenExecutor, Executor, Future, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from anomamind.provenance import header_lines

log = logging.getLogger(__name__)

#: Columns shown per dataset, in the paper's order plus the TSB-AD ones.
TABLE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("precision", "P"),
    ("recall", "R"),
    ("f1", "F1"),
    ("best_f1", "Best-F1"),
    ("average", "Avg"),
    ("vus_pr", "VUS-PR"),
    ("affiliation_f", "Aff-F"),
)


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{float(value):.3f}"


def _describe_windows(infos: list[dict[str, Any]]) -> str:
    """One phrase for what a detector looked at, from its ``info`` (see docs/bench.md)."""
    lengths = {(i.get("window_length"), i.get("window_stride")) for i in infos if i.get("window_length")}
    if lengths:
        return "; ".join(f"windows of {length} (stride {stride or length})" for length, stride in sorted(lengths, key=str))
    counts = [i["windows"] for i in infos if isinstance(i.get("windows"), (int, float))]
    if counts:
        return f"windowed, {int(min(counts))}-{int(max(counts))} windows per series"
    texts = sorted({str(i["windows"]) for i in infos if i.get("windows")})
    return "; ".join(texts) or "whole series at once"


def _windows_by_detector(per_series: pd.DataFrame) -> dict[str, str]:
    """What each detector looked at, per its ``info`` (``window_length``/``windows``)."""
    out: dict[str, str] = {}
    for detector, group in per_series.groupby("detector", sort=False):
        infos = []
        for text in group.get("info", pd.Series(dtype=object)).dropna():
            try:
                info = json.loads(text)
            except (TypeError, ValueError):
                continue
            if isinstance(info, dict):
                infos.append(info)
        out[str(detector)] = _describe_windows(infos)
    return out


def window_failures(per_series: pd.DataFrame) -> dict[tuple[str, str], tuple[int, Counter, dict[str, str]]]:
    """Per (detector, dataset) of windowed detectors (``info`` with ``window_failures``):
    windows run, failed windows by kind, and the first error of each kind."""
    out: dict[tuple[str, str], tuple[int, Counter, dict[str, str]]] = {}
    for _, row in per_series.iterrows():
        try:
            info = json.loads(row.get("info") or "")
        except (TypeError, ValueError):
            continue
        if not isinstance(info, dict) or "window_failures" not in info:
            continue
        key = (str(row["detector"]), str(row["dataset"]))
        n_windows, kinds, first = out.get(key, (0, Counter(), {}))
        kinds.update(info["window_failures"])
        for kind, message in (info.get("first_errors") or {}).items():
            first.setdefault(kind, f"{row['series']}: {message}")
        out[key] = (n_windows + int(info.get("windows", 0)), kinds, first)
    return out


def render_table(
    summary: pd.DataFrame,
    per_series: pd.DataFrame,
    detectors: Sequence[str],
    *,
    data_label: str = "",
    load_failures: Sequence[tuple[str, str]] = (),
    command: str = "",
) -> str:
    """The Markdown report: a header stating where it came from (``command``: as typed) and
    the rules, the table, counts and failures."""
    datasets = [d for d in summary["dataset"].drop_duplicates() if d != "ALL"]
    lines = [
        "# Benchmark results",
        "",
        *header_lines(command or "anomamind.eval.bench.run_benchmark (Python API)"),
        f"- Data / split: {data_label or 'as given'}; {per_series['series'].nunique()} series in "
        f"{len(datasets)} dataset(s). Metrics are macro averages over series; every series counts, "
        "including those where the detector failed (scored as predicting nothing).",
        "- F1 (and P, R): point-wise, no point adjustment, from the detector's own decision "
        "(baselines: min-max-normalised score > mu + 3 sigma; agents: their intervals).",
        "- Best-F1: cross-fitted per dataset: series split into 2 folds by name, each fold's "
        "threshold chosen on the other fold (never on the evaluated series' labels).",
        "- Avg: mean of P, R, F1 and Best-F1 (the paper's Average).",
        "- VUS-PR: threshold-free, TSB-AD definition, sliding window = the series' dominant "
        "period (TSB-AD find_length_rank). Aff-F: Affiliation-F of the detector's own decision.",
        "- Windows: "
        + "; ".join(f"{name}: {what}" for name, what in _windows_by_detector(per_series).items()),
    ]
    if "labelled" in per_series and not per_series["labelled"].all():
        unlabelled = per_series.loc[~per_series["labelled"].astype(bool), "series"].drop_duplicates()
        lines.append(
            f"- {len(unlabelled)} series without labels ({', '.join(unlabelled.head(5))}"
            f"{', ...' if len(unlabelled) > 5 else ''}): run but not scored; P, R, F1, Best-F1, VUS-PR "
            "and Aff-F need a label column (their cells average the labelled series only; n_flagged in "
            "per_series.csv counts each detector's flagged points)."
        )
    lines.append("")
    header = ["Method"] + [f"{ds} {label}" if j == 0 else label for ds in datasets for j, (_, label) in enumerate(TABLE_COLUMNS)]
    if "ALL" in set(summary["dataset"]):
        header += ["ALL F1", "ALL Avg"]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "---|" * len(header))
    indexed = summary.set_index(["detector", "dataset"])
    for detector in detectors:
        cells = [detector]
        for ds in datasets:
            row = indexed.loc[(detector, ds)] if (detector, ds) in indexed.index else None
            cells += [_fmt(row[col] if row is not None else None) for col, _ in TABLE_COLUMNS]
        if "ALL" in set(summary["dataset"]):
            row = indexed.loc[(detector, "ALL")]
            cells += [_fmt(row["f1"]), _fmt(row["average"])]
        lines.append("| " + " | ".join(cells) + " |")

    lines += ["", "## Series and failures", "", "| Method | " + " | ".join(datasets) + " |", "|" + "---|" * (len(datasets) + 1)]
    windows = window_failures(per_series)
    for detector in detectors:
        cells = [detector]
        for ds in datasets:
            if (detector, ds) in indexed.index:
                row = indexed.loc[(detector, ds)]
                cell = f"{int(row['n_series'])} series, {int(row['n_failed'])} failed"
                counted = windows.get((detector, ds))
                if counted is not None:
                    n_windows, kinds, _ = counted
                    failed = sum(kinds.values())
                    by_kind = ", ".join(f"{kind} {n}" for kind, n in kinds.most_common())
                    cell += f"; {failed} of {n_windows} windows failed" + (f" ({by_kind})" if by_kind else "")
                cells.append(cell)
            else:
                cells.append("-")
        lines.append("| " + " | ".join(cells) + " |")
    firsts = [(key, kind, message) for key, (_, _, first) in windows.items() for kind, message in first.items()]
    if firsts:
        lines += ["", "First failed window of each kind:", ""]
        lines += [f"- {detector} on {ds}, {kind}: {message}" for (detector, ds), kind, message in firsts]
    failed = per_series[per_series["status"] != "ok"]
    if len(failed):
        lines += ["", f"Failed pairs ({len(failed)}):", ""]
        for _, row in failed.head(50).iterrows():
            lines.append(f"- {row['detector']} on {row['dataset']}/{row['series']}: {row['error']}")
        if len(failed) > 50:
            lines.append(f"- ... and {len(failed) - 50} more (see per_series.csv)")
    if load_failures:
        lines += ["", f"Files that could not be loaded ({len(load_failures)}):", ""]
        lines += [f"- {message}" for _, message in load_failures]
    return "\n".join(lines) + "\n"


def sample_tasks(tasks: Sequence[Any], k: int) -> list[Any]:
    """Up to ``k`` distinct series, taken in turn from each dataset (sorted by name)."""
    by_dataset: dict[str, dict[str, Any]] = {}
    for task in tasks:
        by_dataset.setdefault(task.series.dataset, {}).setdefault(task.series.name, task.series)
    queues = [sorted(d.values(), key=lambda s: s.name) for _, d in sorted(by_dataset.items())]
    picked: list[Any] = []
    while len(picked) < k and any(queues):
        for queue in queues:
            if queue and len(picked) < k:
                picked.append(queue.pop(0))
    return picked


def _plottable(values: np.ndarray, name: str) -> tuple[np.ndarray, str]:
    """``values`` as finite floats (others become gaps) on a scale matplotlib can draw
    (tools/plotting.drawable), and the axis label saying the scale."""
    from anomamind.tools.plotting import drawable

    scaled, unit = drawable(values)
    return scaled, f"{name} ({unit})" if unit else name


def plot_series(
    values: np.ndarray, labels: np.ndarray | None, pred: np.ndarray, scores: np.ndarray, title: str, path: Path
) -> None:
    """One PNG: values with true anomalies (when labelled) shaded and flagged points marked;
    scores below."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    values, value_label = _plottable(np.asarray(values), "value")
    scores, score_label = _plottable(np.asarray(scores), "score")
    x = np.arange(values.size)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(12, 4.5), sharex=True, height_ratios=[3, 1])
    try:
        top.plot(x, values, lw=0.6, color="tab:blue", label="value")
        lo, hi = float(np.nanmin(values)), float(np.nanmax(values))
        if labels is not None:
            top.fill_between(x, lo, hi, where=labels > 0, step="mid", color="tab:orange", alpha=0.3, label="true anomaly")
        flagged = np.flatnonzero(pred)
        top.scatter(flagged, values[flagged], s=6, color="tab:red", zorder=3, label="flagged")
        top.set_title(title, fontsize=9)
        top.set_ylabel(value_label, fontsize=8)
        top.legend(loc="upper right", fontsize=7)
        bottom.plot(x, scores, lw=0.6, color="tab:gray")
        bottom.set_ylabel(score_label, fontsize=8)
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=90)
    finally:
        plt.close(fig)


@dataclass
class PlotJob:
    """One sample plot: the series, its cached result (``stem``) and the PNG to write."""

    series: Any
    stem: Path
    detector: str
    path: Path


def plan_plots(tasks: Sequence[Any], plot_dir: Path, k: int) -> list[PlotJob]:
    """The plots of the same ``k`` sample series for every detector that are missing or
    older than their cached result; a rerun over a full cache plans none. A pair without a
    cached result (it failed) is always redrawn: its next run may succeed."""
    chosen = {id(s) for s in sample_tasks(tasks, k)}
    jobs = []
    for task in tasks:
        if id(task.series) not in chosen:
            continue
        path = plot_dir / task.cache_stem.parent.name / f"{task.cache_stem.name.rsplit('__', 1)[0]}.png"
        result = task.cache_stem.with_suffix(".json")
        if path.is_file() and result.is_file() and path.stat().st_mtime_ns >= result.stat().st_mtime_ns:
            continue
        jobs.append(PlotJob(task.series, task.cache_stem, task.detector, path))
    return jobs


def draw_plot(job: PlotJob, load_arrays: Callable[[Path, int], tuple[np.ndarray, np.ndarray]]) -> str:
    """Draw one job (in a worker process); returns "" or the error, so one bad plot never
    stops the others."""
    s = job.series
    try:
        pred, scores = load_arrays(job.stem, len(s))
        plot_series(s.values, s.labels, pred, scores, f"{job.detector} on {s.dataset}/{s.name}", job.path)
    except Exception as err:  # noqa: BLE001 - reported by draw_plots, the run goes on
        return f"{type(err).__name__}: {err}"
    return ""


def draw_plots(
    jobs: Sequence[PlotJob],
    load_arrays: Callable[[Path, int], tuple[np.ndarray, np.ndarray]],
    pool: Executor | None = None,
    progress: bool = True,
) -> list[Path]:
    """Draw ``jobs`` in ``pool`` (the benchmark's worker processes; in-process without one)
    with a progress bar; returns the written paths. A failed plot is a warning naming the
    detector and series."""
    from tqdm.auto import tqdm

    draw = functools.partial(draw_plot, load_arrays=load_arrays)
    written = []
    with tqdm(total=len(jobs), desc="plots", unit="plot", disable=not progress or not jobs) as bar:
        try:
            futures = {pool.submit(draw, job): job for job in jobs} if pool is not None else None
        except BrokenExecutor as err:  # a worker died during the pairs: draw here instead
            log.warning("the worker pool is broken (%s); drawing the plots in this process", err)
            futures = None
        if futures is None:
            outcomes = ((job, draw(job)) for job in jobs)
        else:
            outcomes = ((futures[f], _error_of(f)) for f in as_completed(futures))
        for job, error in outcomes:
            if error:
                where = f" ({job.series.source})" if job.series.source else ""
                log.warning("plot of %s on %s/%s%s failed: %s", job.detector, job.series.dataset,
                            job.series.name, where, error)
            else:
                written.append(job.path)
            bar.update(1)
    return written


def _error_of(future: Future) -> str:
    try:
        return future.result()
    except Exception as err:  # noqa: BLE001 - the worker died
        return f"worker crashed: {err!r}"
