"""The resumable benchmark runner: every (detector, series) pair, cached, in parallel.

``run_benchmark`` runs each pair in a worker process (``workers=1`` runs in-process), scores
the detector's own decision and its continuous scores against the labels, and caches the
result under ``out_dir/cache/<detector>/<series-key>.npz|.json`` as soon as it is done, so an
interrupted run resumes where it stopped. The key hashes the series values and labels, the
detector name and its options, and the metric version: change any and the pair is re-run.

Failure rule: a detector that raises on a series is recorded (``status="failed"`` and the
error in ``per_series.csv``, counted in ``n_failed``) and the run goes on. The failed series
is scored as a detector that predicted nothing (all-zero decision and scores): its
precision, recall, F1 and Best-F1 are 0 and its VUS-PR / Affiliation-F are those of an
all-zero score, so failures lower the macro averages instead of disappearing from them.
Failures are not cached: the next run retries them. A fatal failure (a detector's
endpoint refuses the credentials or stops answering) stops the run with
:class:`BenchAborted`; the finished pairs stay cached, so the same command resumes.

Best-F1 is cross-fitted per (detector, dataset): the series are split into two folds by
name and each fold's threshold is the candidate that maximises mean F1 on the other fold
(:func:`anomamind.eval.point_metrics.cross_fitted_best_f1`). Candidates come from the
detector (``info["threshold_candidates"]``, e.g. sigma multiples for the baselines), else
the confidence levels 1..3 of interval detectors.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import re
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd

from anomamind.eval.point_metrics import DEFAULT_LEVELS, cross_fitted_best_f1, point_prf
from anomamind.eval.registry import SeriesDetector, SeriesPrediction, UnknownDetectorError, create_detector
from anomamind.types import Series

#: Bump when the per-series metrics change, so cached results are recomputed.
METRICS_VERSION = 1

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


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "x"


#: Folders whose files a detector's result may depend on: the package's code and the
#: configuration the detectors read (agents, knowledge memory, rules).
_CODE_DIRS = ("anomamind", "agents", "tools", "envs", "rl", "eval", "rules")
_CONFIG_DIRS = ("configs/agents", "configs/knowledge", "configs/rules")


@functools.lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """Hash of the project's source and detector configs, so a changed detector is rerun.

    Resuming is for interrupted runs of the same code: after any change to the code or to
    those configs, cached results no longer match and every pair is computed again.
    """
    from anomamind.paths import REPO_ROOT

    digest = hashlib.sha256()
    files = [p for d in _CODE_DIRS for p in (REPO_ROOT / d).rglob("*.py")]
    files += [p for d in _CONFIG_DIRS for p in (REPO_ROOT / d).rglob("*.yaml")]
    for path in sorted(files):
        digest.update(str(path.relative_to(REPO_ROOT)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def pair_key(series: Series, detector: str, options: dict[str, Any]) -> str:
    """Hash of everything a cached result depends on (values, labels, detector, options, code)."""
    digest = hashlib.sha256()
    digest.update(code_fingerprint().encode())
    digest.update(np.ascontiguousarray(series.values, dtype=np.float64).tobytes())
    if series.labels is not None:
        digest.update(np.ascontiguousarray(series.labels, dtype=np.int8).tobytes())
    digest.update(json.dumps([detector, options, series.train_end, METRICS_VERSION], sort_keys=True, default=str).encode())
    return digest.hexdigest()[:16]


def cache_stem(out_dir: Path, series: Series, detector: str, options: dict[str, Any]) -> Path:
    """``out_dir/cache/<detector>/<dataset>__<series>__<key>`` (no suffix)."""
    name = f"{_safe(series.dataset)}__{_safe(series.name)}__{pair_key(series, detector, options)}"
    return out_dir / "cache" / _safe(detector) / name


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

_DETECTORS: dict[str, SeriesDetector] = {}  # per-process cache of built detectors


def _detector_for(name: str, options: dict[str, Any]) -> SeriesDetector:
    key = json.dumps([name, options], sort_keys=True, default=str)
    if key not in _DETECTORS:
        _DETECTORS[key] = create_detector(name, **options)
    return _DETECTORS[key]


def _limit_threads() -> None:
    """Worker initializer: one thread per worker process, so workers do not oversubscribe."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ[var] = "1"


def _base_row(task: PairTask) -> dict[str, Any]:
    s = task.series
    return {
        "dataset": s.dataset,
        "series": s.name,
        "detector": task.detector,
        "n_points": len(s),
        "n_anomalous": int(np.count_nonzero(s.labels)) if s.labels is not None else 0,
    }


def run_pair(task: PairTask) -> dict[str, Any]:
    """Run and score one pair; cache it when it succeeded. Never raises for detector errors."""
    row = _base_row(task)
    start = time.perf_counter()
    try:
        prediction = _detector_for(task.detector, task.options).detect(task.series)
        metrics = score_prediction(task.series, prediction)
    except Exception as err:  # noqa: BLE001 - any detector error is recorded, the run goes on
        row.update(status="failed", error=f"{type(err).__name__}: {err}", seconds=time.perf_counter() - start)
        row["traceback"] = traceback.format_exc(limit=5)
        if getattr(err, "fatal", False):
            row["fatal"] = True  # the driver stops the run
        return row
    row.update(metrics)
    row.update(
        status="ok",
        error="",
        seconds=time.perf_counter() - start,
        failed_windows=int(prediction.failed_windows),
        threshold_candidates=json.dumps(prediction.info.get("threshold_candidates", list(DEFAULT_LEVELS))),
        info=json.dumps(prediction.info, sort_keys=True, default=str),
    )
    _write_cache(task.cache_stem, row, prediction)
    return row


def _write_cache(stem: Path, row: dict[str, Any], prediction: SeriesPrediction) -> None:
    """Write arrays then the row, each atomically; the row's presence marks the pair done."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    tmp = stem.with_name(stem.name + f".{os.getpid()}.tmp.npz")
    np.savez_compressed(tmp, pred=np.asarray(prediction.pred, dtype=np.int8), scores=np.asarray(prediction.scores, dtype=np.float32))
    os.replace(tmp, stem.with_suffix(".npz"))
    tmp_json = stem.with_name(stem.name + f".{os.getpid()}.tmp.json")
    tmp_json.write_text(json.dumps(row, default=_json_default, indent=1))
    os.replace(tmp_json, stem.with_suffix(".json"))


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def load_cached(stem: Path) -> dict[str, Any] | None:
    """The cached row of a finished pair, or None (missing or unreadable: run it again)."""
    json_path, npz_path = stem.with_suffix(".json"), stem.with_suffix(".npz")
    if not (json_path.exists() and npz_path.exists()):
        return None
    try:
        return json.loads(json_path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def load_arrays(stem: Path, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Cached (pred, scores) of a pair; zeros for a failed pair (it predicted nothing)."""
    npz_path = stem.with_suffix(".npz")
    if not npz_path.exists():
        return np.zeros(n, dtype=np.int8), np.zeros(n)
    with np.load(npz_path) as data:
        return data["pred"], data["scores"].astype(np.float64)


# --- driver side -----------------------------------------------------------------------


def _score_failure(task: PairTask, row: dict[str, Any]) -> dict[str, Any]:
    """Metrics of a failed pair under the 'predicted nothing' rule (see module docstring)."""
    n = len(task.series)
    empty = SeriesPrediction(pred=np.zeros(n, dtype=np.int8), scores=np.zeros(n))
    try:
        row.update(score_prediction(task.series, empty))
    except Exception as err:  # noqa: BLE001 - e.g. a series without labels
        row["error"] += f" (and scoring the empty prediction failed: {err})"
    row.setdefault("threshold_candidates", json.dumps(list(DEFAULT_LEVELS)))
    return row


def _check_series(series: list[Series]) -> None:
    if not series:
        raise ValueError("run_benchmark: no series to run on")
    unlabelled = [s.name for s in series if s.labels is None]
    if unlabelled:
        raise ValueError(f"run_benchmark needs labelled series; without labels: {', '.join(unlabelled[:5])}")


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
    from tqdm.auto import tqdm

    from anomamind.eval import report

    _check_series(series)
    if not detectors:
        raise ValueError("run_benchmark: no detectors given")
    options = {name: dict((detector_options or {}).get(name, {})) for name in detectors}
    unknown_option_targets = set(detector_options or {}) - set(detectors)
    if unknown_option_targets:
        raise ValueError(f"detector options given for detectors not in the run: {sorted(unknown_option_targets)}")
    for name in detectors:  # validates names and options up front, with the registry's message
        try:
            detector = _detector_for(name, options[name])
            if hasattr(detector, "check"):
                detector.check()  # start-up checks, e.g. the LLM agent's servers
        except UnknownDetectorError:
            raise
        except Exception as err:  # noqa: BLE001 - bad options, missing optional dependency
            raise ValueError(f"detector {name!r} cannot be built: {type(err).__name__}: {err}") from err

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tasks = [
        PairTask(name, options[name], s, cache_stem(out, s, name, options[name]))
        for name in detectors
        for s in series
    ]
    rows: dict[int, dict[str, Any]] = {}
    pending: list[int] = []
    for i, task in enumerate(tasks):
        cached = load_cached(task.cache_stem)
        if cached is not None:
            rows[i] = {**cached, "cached": True}
        else:
            pending.append(i)
    pending.sort(key=lambda i: -len(tasks[i].series))  # longest first balances the workers

    with _worker_pool(workers) as pool:  # pairs, then the sample plots
        bar = tqdm(total=len(tasks), initial=len(rows), desc="bench", unit="pair", disable=not progress)
        try:
            if pool is None:
                for i in pending:
                    rows[i] = run_pair(tasks[i])
                    bar.update(1)
                    _stop_if_fatal(rows[i], out)
            else:
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
                    _stop_if_fatal(rows[i], out)
        finally:
            bar.close()

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


def _stop_if_fatal(row: dict[str, Any], out: Path) -> None:
    if row.get("fatal"):
        raise BenchAborted(
            f"stopped at {row['detector']} on {row['dataset']}/{row['series']}: {row['error']}; "
            f"finished pairs are cached in {out}, rerun the same command to resume"
        )


@contextlib.contextmanager
def _worker_pool(workers: int) -> Iterator[ProcessPoolExecutor | None]:
    """The run's worker processes (None for ``workers=1``: everything runs in-process)."""
    if workers <= 1:
        yield None
        return
    with ProcessPoolExecutor(max_workers=workers, initializer=_limit_threads) as pool:
        yield pool


def add_cross_fitted_best_f1(per_series: pd.DataFrame, tasks: list[PairTask]) -> pd.DataFrame:
    """Add ``best_f1`` and ``best_f1_threshold``: cross-fitted per (detector, dataset)."""
    per_series = per_series.copy()
    per_series["best_f1"] = np.nan
    per_series["best_f1_threshold"] = np.nan
    groups: dict[tuple[str, str], list[int]] = {}
    for i, task in enumerate(tasks):
        groups.setdefault((task.detector, task.series.dataset), []).append(i)
    for indices in groups.values():
        labels, scores, names, candidates = [], [], [], set()
        for i in indices:
            task = tasks[i]
            _, s = load_arrays(task.cache_stem, len(task.series))
            labels.append(task.series.labels)
            scores.append(s)
            names.append(f"{task.series.dataset}/{task.series.name}")
            if per_series.at[i, "status"] == "ok":
                candidates.update(json.loads(per_series.at[i, "threshold_candidates"]))
        f1s, thresholds = cross_fitted_best_f1(labels, scores, names, sorted(candidates or DEFAULT_LEVELS))
        per_series.loc[indices, "best_f1"] = f1s
        per_series.loc[indices, "best_f1_threshold"] = thresholds
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
