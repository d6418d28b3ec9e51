"""The resumable benchmark runner: every (detector, series) pair, cached, in parallel.

``run_benchmark`` runs each pair in a worker process (``workers=1`` runs in-process), scores
the detector's own decision and its continuous scores against the labels, and caches the
result under ``out_dir/cache/<detector>/<series-key>.npz|.json`` as soon as it is done, so an
interrupted run resumes where it stopped. The cache (eval/bench_cache.py) keys each pair on
everything its result depends on (series, detector, options, code, and the files the
detector reads): change any and the pair is re-run. Entries are written atomically and a
corrupt one is computed again. One run at a time may write ``out_dir`` (a lock, see
anomamind/folder_lock.py), and worker processes die with the run that started them.

Failure rule: a detector that raises on a series, or whose prediction reports run-time
errors (``SeriesPrediction.errors``: a backend that refused, a rule that timed out), is
recorded (``status="failed"`` and the error in ``per_series.csv``, counted in
``n_failed``) and the run goes on. The failed series is scored as a detector that
predicted nothing (all-zero decision and scores): its precision, recall, F1 and Best-F1
are 0 and its VUS-PR / Affiliation-F are those of an all-zero score, so failures lower the
macro averages instead of disappearing from them. Failures are not cached: the next run
retries them. A fatal failure (a detector's endpoint refuses the credentials or stops
answering) stops the run with :class:`BenchAborted`; the finished pairs stay cached, so
the same command resumes.

A series without labels (a user's own export) is run like any other, but not scored: its
row has the detector's flagged-point count and no metric columns, and the report says
which metrics need a label column.

Best-F1 is cross-fitted per (detector, dataset): the series are split into two folds by
name and each fold's threshold is the candidate that maximises mean F1 on the other fold
(:func:`anomamind.eval.point_metrics.cross_fitted_best_f1`). Candidates come from the
detector (``info["threshold_candidates"]``, e.g. sigma multiples for the baselines), else
the confidence levels 1..3 of interval detectors.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
import traceback
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd

from anomamind.eval.bench_cache import cache_stem, inputs_digest, load_arrays, load_entry, write_entry
from anomamind.eval.point_metrics import DEFAULT_LEVELS, cross_fitted_best_f1, point_prf
from anomamind.eval.registry import SeriesDetector, SeriesPrediction, UnknownDetectorError, create_detector
from anomamind.folder_lock import folder_lock
from anomamind.types import Series
from anomamind.worker_lifetime import die_with_owner

log = logging.getLogger(__name__)

#: Per-series columns taken from TSB-AD's metric dicts: our column -> TSB-AD key.
TSBAD_COLUMNS = {
    "vus_pr": "VUS-PR",
    "vus_roc": "VUS-ROC",
    "auc_pr": "AUC-PR",
    "auc_roc": "AUC-ROC",
    "affiliation_f": "Affiliation-F",
}
#: Columns macro-averaged into summary.csv (plus vus_roc, auc_pr, auc_roc).
SUMMARY_METRICS = ("precision", "recall", "f1", "best_f1", "vus_pr", "affiliation_f")


class BenchAborted(RuntimeError):
    """A detector failed fatally (see the module docstring); the message names the pair."""


@dataclass
class PairTask:
    """One (detector, series) pair and where its result is cached."""

    detector: str
    options: dict[str, Any]
    series: Series
    cache_stem: Path  # without suffix; ``.npz`` holds arrays, ``.json`` the row
    inputs: str = ""  # digest of the files the detector reads (bench_cache.inputs_digest)


def score_prediction(series: Series, prediction: SeriesPrediction) -> dict[str, Any]:
    """Point P/R/F1 of the detector's decision and TSB-AD metrics of its scores."""
    from anomamind.eval import tsbad

    labels = np.asarray(series.labels, dtype=np.int8)
    pred = np.asarray(prediction.pred).reshape(-1)
    scores = np.asarray(prediction.scores, dtype=np.float64).reshape(-1)
    if pred.size != labels.size or scores.size != labels.size:
        raise ValueError(
            f"detector returned {pred.size} decisions and {scores.size} scores for a series of {labels.size} points"
        )
    precision, recall, f1 = point_prf(labels, pred)
    window = tsbad.find_length_rank(series.values, rank=1)  # TSB-AD's sliding window for VUS
    # only the threshold-free keys the report uses: the oracle F1 searches are the slow part
    score_keys = [key for column, key in TSBAD_COLUMNS.items() if column != "affiliation_f"]
    from_scores = tsbad.get_metrics(scores, labels, sliding_window=window, keys=score_keys)
    from_pred = tsbad.get_metrics_pred(scores, labels, (pred != 0).astype(int), sliding_window=window)
    row: dict[str, Any] = {"precision": precision, "recall": recall, "f1": f1, "vus_window": window}
    for column, key in TSBAD_COLUMNS.items():
        # Affiliation-F of the detector's own decision; the others are threshold-free.
        source = from_pred if column == "affiliation_f" else from_scores
        value = source.get(key, np.nan)
        row[column] = float(value) if value is not None else np.nan
    return row


# --- worker side -----------------------------------------------------------------------

#: Per-process cache of built detectors: (name, options) -> (inputs digest, detector).
_DETECTORS: dict[str, tuple[str, SeriesDetector]] = {}


def _detector_for(name: str, options: dict[str, Any], inputs: str = "") -> SeriesDetector:
    """The built detector, reused within a process until the files it reads change (then
    the old one is closed, e.g. its sandbox process, and the detector built again)."""
    key = json.dumps([name, options], sort_keys=True, default=str)
    held = _DETECTORS.get(key)
    if held is None or held[0] != inputs:
        if held is not None and callable(getattr(held[1], "close", None)):
            held[1].close()
        _DETECTORS[key] = (inputs, create_detector(name, **options))
    return _DETECTORS[key][1]


def _init_worker(owner_pid: int) -> None:
    """Worker initializer: die with the benchmark process (no orphans after ``kill -9``),
    and one thread per worker process, so workers do not oversubscribe."""
    die_with_owner(owner_pid)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ[var] = "1"


def _base_row(task: PairTask) -> dict[str, Any]:
    s = task.series
    return {
        "dataset": s.dataset,
        "series": s.name,
        "detector": task.detector,
        "n_points": len(s),
        "labelled": s.labels is not None,
        "n_anomalous": int(np.count_nonzero(s.labels)) if s.labels is not None else 0,
    }


class IncompletePrediction(RuntimeError):
    """A prediction that reports run-time errors: the pair failed, whatever it flagged."""


def run_pair(task: PairTask) -> dict[str, Any]:
    """Run and score one pair; cache it when it succeeded. Never raises for detector errors."""
    row = _base_row(task)
    start = time.perf_counter()
    try:
        prediction = _detector_for(task.detector, task.options, task.inputs).detect(task.series)
        row["info"] = json.dumps(prediction.info, sort_keys=True, default=str)  # a failed pair's too: its windows
        if prediction.errors:
            raise IncompletePrediction(_describe_errors(prediction))
        row["n_flagged"] = int(np.count_nonzero(prediction.pred))
        metrics = score_prediction(task.series, prediction) if task.series.labels is not None else {}
    except Exception as err:  # noqa: BLE001 - any detector error is recorded, the run goes on
        row.update(status="failed", error=f"{type(err).__name__}: {err}", seconds=time.perf_counter() - start)
        row["traceback"] = traceback.format_exc(limit=5)
        if getattr(err, "fatal", False):
            row["fatal"] = True  # the driver stops the run
        task.cache_stem.with_suffix(".npz").unlink(missing_ok=True)  # never an older run's arrays
        return row
    row.update(metrics)
    row.update(
        status="ok",
        error="",
        seconds=time.perf_counter() - start,
        failed_windows=int(prediction.failed_windows),
        threshold_candidates=json.dumps(prediction.info.get("threshold_candidates", list(DEFAULT_LEVELS))),
    )
    try:
        write_entry(task.cache_stem, row, prediction)
    except OSError as err:  # a full disk: the result stands for this run, the next run redoes it
        log.warning("cannot cache %s (%s); the next run computes it again", task.cache_stem, err)
        task.cache_stem.with_suffix(".json").unlink(missing_ok=True)
    return row


def _describe_errors(prediction: SeriesPrediction) -> str:
    """One line for a prediction's run-time errors: how many, and the first."""
    first = (str(prediction.errors[0]).strip().splitlines() or ["?"])[0]
    windows = f" ({prediction.failed_windows} failed windows)" if prediction.failed_windows else ""
    return f"{len(prediction.errors)} run-time error(s){windows}, first: {first}"


# --- driver side -----------------------------------------------------------------------


def _score_failure(task: PairTask, row: dict[str, Any]) -> dict[str, Any]:
    """Metrics of a failed pair under the 'predicted nothing' rule (see module docstring)."""
    n = len(task.series)
    empty = SeriesPrediction(pred=np.zeros(n, dtype=np.int8), scores=np.zeros(n))
    try:
        if task.series.labels is not None:
            row.update(score_prediction(task.series, empty))
    except Exception as err:  # noqa: BLE001 - the failure is already recorded
        row["error"] += f" (and scoring the empty prediction failed: {err})"
    row.setdefault("threshold_candidates", json.dumps(list(DEFAULT_LEVELS)))
    return row


def _check_series(series: list[Series]) -> None:
    if not series:
        raise ValueError("run_benchmark: no series to run on")


def run_benchmark(
    series: list[Series],
    detectors: list[str],
    out_dir: str | Path,
    *,
    workers: int = 1,
    detector_options: dict[str, dict] | None = None,
    sample_plots: int = 6,
    progress: bool = True,
    data_label: str = "",
    load_failures: list[tuple[str, str]] | None = None,
    command: str = "",
) -> pd.DataFrame:
    """Run every detector on every series, write the reports, return the summary table.

    Writes ``out_dir/per_series.csv``, ``summary.csv``, ``table.md`` and
    ``plots/<detector>/*.png`` (``sample_plots`` series per detector, drawn by the same
    worker processes after the tables; plots newer than their cached result are kept).
    Unknown detector names and bad options raise before any work starts. ``data_label``
    (e.g. the data spec), ``load_failures`` (files the loader skipped) and ``command``
    (the command line that ran this, for the header) are stated in ``table.md``.
    """
    from anomamind.eval import report

    _check_series(series)
    if not detectors:
        raise ValueError("run_benchmark: no detectors given")
    options = {name: dict((detector_options or {}).get(name, {})) for name in detectors}
    unknown_option_targets = set(detector_options or {}) - set(detectors)
    if unknown_option_targets:
        raise ValueError(f"detector options given for detectors not in the run: {sorted(unknown_option_targets)}")
    inputs = {name: inputs_digest(name, options[name]) for name in detectors}
    for name in detectors:  # validates names and options up front, with the registry's message
        try:
            detector = _detector_for(name, options[name], inputs[name])
            if hasattr(detector, "check"):
                detector.check()  # start-up checks, e.g. the LLM agent's servers
        except UnknownDetectorError:
            raise
        except Exception as err:  # noqa: BLE001 - bad options, missing optional dependency
            raise ValueError(f"detector {name!r} cannot be built: {type(err).__name__}: {err}") from err

    out = Path(out_dir)
    with folder_lock(out, "anomamind bench"):
        tasks = [
            PairTask(name, options[name], s, cache_stem(out, s, name, options[name], inputs[name]), inputs[name])
            for name in detectors
            for s in series
        ]
        rows: dict[int, dict[str, Any]] = {}
        for i, task in enumerate(tasks):
            cached = load_entry(task.cache_stem, len(task.series))
            if cached is not None:
                rows[i] = {**cached, "cached": True}
        pending = sorted(set(range(len(tasks))) - set(rows), key=lambda i: -len(tasks[i].series))  # longest first
        with _worker_pool(workers) as pool:  # pairs, then the sample plots
            rows.update(_run_pending(tasks, pending, pool, progress, done=len(rows)))

            for i, row in rows.items():
                row.setdefault("cached", False)
                if row.get("status") == "failed":
                    _score_failure(tasks[i], row)
            per_series = pd.DataFrame([rows[i] for i in range(len(tasks))])
            per_series = add_cross_fitted_best_f1(per_series, tasks)
            per_series = per_series.drop(columns=["traceback"], errors="ignore")
            summary = summarise(per_series)

            per_series.to_csv(out / "per_series.csv", index=False)
            summary.to_csv(out / "summary.csv", index=False)
            (out / "table.md").write_text(
                report.render_table(
                    summary, per_series, detectors, data_label=data_label, load_failures=load_failures or (),
                    command=command,
                )
            )
            if sample_plots > 0:
                report.draw_plots(report.plan_plots(tasks, out / "plots", sample_plots), load_arrays, pool, progress)
    return summary


@contextlib.contextmanager
def _worker_pool(workers: int) -> Iterator[ProcessPoolExecutor | None]:
    """The run's worker processes, which die with it (None for ``workers=1``: everything
    runs in-process)."""
    if workers <= 1:
        yield None
        return
    with ProcessPoolExecutor(max_workers=workers, initializer=_init_worker, initargs=(os.getpid(),)) as pool:
        yield pool


def _run_pending(
    tasks: list[PairTask], pending: list[int], pool: ProcessPoolExecutor | None, progress: bool, done: int
) -> dict[int, dict[str, Any]]:
    """Rows of the ``pending`` pairs, in-process (``pool`` None) or in the pool."""
    from tqdm.auto import tqdm

    rows: dict[int, dict[str, Any]] = {}
    with tqdm(total=done + len(pending), initial=done, desc="bench", unit="pair", disable=not progress) as bar:
        if pool is None:
            for i in pending:
                rows[i] = run_pair(tasks[i])
                bar.update(1)
                _stop_if_fatal(rows[i])
            return rows
        futures = {pool.submit(run_pair, tasks[i]): i for i in pending}
        for future in as_completed(futures):
            i = futures[future]
            try:
                rows[i] = future.result()
            except Exception as err:  # noqa: BLE001 - a worker died (e.g. killed for memory)
                rows[i] = {**_base_row(tasks[i]), "status": "failed", "error": f"worker crashed: {err!r}"}
            bar.update(1)
            if rows[i].get("fatal"):
                for other in futures:
                    other.cancel()
                _stop_if_fatal(rows[i])
    return rows


def _stop_if_fatal(row: dict[str, Any]) -> None:
    if row.get("fatal"):
        raise BenchAborted(
            f"stopped at {row['detector']} on {row['dataset']}/{row['series']}: {row['error']}; "
            "the finished pairs are cached: rerun the same command to resume"
        )


def failed_everywhere(per_series: pd.DataFrame) -> dict[str, str]:
    """Detectors that failed on every series, each with its most frequent error (a missing
    optional dependency, an endpoint that refuses): a run that scripts must not call a success."""
    out: dict[str, str] = {}
    for detector, group in per_series.groupby("detector", sort=False):
        if (group["status"] != "ok").all():
            errors = group["error"].fillna("").astype(str)
            out[str(detector)] = errors.value_counts().index[0] if len(errors) else ""
    return out


def add_cross_fitted_best_f1(per_series: pd.DataFrame, tasks: list[PairTask]) -> pd.DataFrame:
    """Add ``best_f1`` and ``best_f1_threshold``: cross-fitted per (detector, dataset)."""
    per_series = per_series.copy()
    per_series["best_f1"] = np.nan
    per_series["best_f1_threshold"] = np.nan
    groups: dict[tuple[str, str], list[int]] = {}
    for i, task in enumerate(tasks):
        groups.setdefault((task.detector, task.series.dataset), []).append(i)
    notes: dict[str, list[str]] = {}
    for (detector, dataset), indices in groups.items():
        indices = [i for i in indices if tasks[i].series.labels is not None]
        if not indices:
            continue
        labels, scores, names, candidates = [], [], [], set()
        for i in indices:
            task = tasks[i]
            _, s = load_arrays(task.cache_stem, len(task.series))
            labels.append(task.series.labels)
            scores.append(s)
            names.append(f"{task.series.dataset}/{task.series.name}")
            if per_series.at[i, "status"] == "ok":
                candidates.update(json.loads(per_series.at[i, "threshold_candidates"]))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            f1s, thresholds = cross_fitted_best_f1(labels, scores, names, sorted(candidates or DEFAULT_LEVELS))
        for warning in caught:
            notes.setdefault(str(warning.message), []).append(f"{detector} on {dataset}")
        per_series.loc[indices, "best_f1"] = f1s
        per_series.loc[indices, "best_f1_threshold"] = thresholds
    for message, where in notes.items():  # once per message, not per group, and no source line
        log.warning("%s (%s)", message, ", ".join(where))
    return per_series


def summarise(per_series: pd.DataFrame) -> pd.DataFrame:
    """Macro averages over series per (dataset, detector), plus an ``ALL`` row per detector.

    ``ALL`` averages the per-dataset rows (each dataset weighs the same, as the paper's
    Average does across metrics); ``average`` is the mean of precision, recall, F1 and
    Best-F1, the paper's "Average" column.
    """
    records = []
    for (dataset, detector), group in per_series.groupby(["dataset", "detector"], sort=False):
        record: dict[str, Any] = {
            "dataset": dataset,
            "detector": detector,
            "n_series": len(group),
            "n_failed": int((group["status"] != "ok").sum()),
        }
        for metric in SUMMARY_METRICS + ("vus_roc", "auc_pr", "auc_roc"):
            record[metric] = float(group[metric].mean()) if metric in group else np.nan  # NaN-skipping mean
        record["average"] = float(np.mean([record[m] for m in ("precision", "recall", "f1", "best_f1")]))
        if "failed_windows" in group:
            record["n_failed_windows"] = int(group["failed_windows"].fillna(0).sum())
        record["seconds"] = float(group["seconds"].fillna(0).sum()) if "seconds" in group else np.nan
        records.append(record)
    summary = pd.DataFrame(records)
    overall = []
    for detector, group in summary.groupby("detector", sort=False):
        row = {"dataset": "ALL", "detector": detector, "n_series": int(group["n_series"].sum()), "n_failed": int(group["n_failed"].sum())}
        for column in summary.columns:
            if column not in row and column != "dataset":
                summed = column == "seconds" or column.startswith("n_")
                row[column] = float(group[column].sum()) if summed else float(group[column].mean())
        overall.append(row)
    if summary["dataset"].nunique() > 1:
        summary = pd.concat([summary, pd.DataFrame(overall)], ignore_index=True)
    return summary
