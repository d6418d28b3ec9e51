"""AnomaMind's headline metrics: point precision/recall/F1 and honest Best-F1.

Conventions (also in docs/metrics.md):

* Point metrics compare 0/1 arrays point by point, with no point adjustment.
* Zero divisions follow scikit-learn's ``zero_division=0`` (and TSB-AD's Standard-F1):
  precision is 0 when nothing is predicted, recall is 0 when nothing is anomalous, F1 is 0
  when precision + recall is 0. So a series without anomalies always has P = R = F1 = 0,
  whatever the detector does; it is still counted in macro averages, never dropped.
* A failed window predicts nothing: callers fill its points with 0, never skip them.
* Best-F1 picks a threshold over candidate levels. The honest variants pick it on other
  series (:func:`choose_threshold` on a calibration split, :func:`cross_fitted_best_f1`
  across folds); :func:`best_f1_oracle` picks it on the evaluated series' own labels and
  says so in its ``rule`` field.
"""

from __future__ import annotations

import hashlib
import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

#: Confidence levels of interval detectors, the default Best-F1 candidates for agents.
DEFAULT_LEVELS: tuple[int, ...] = (1, 2, 3)


def _as_flags(array: np.ndarray | Sequence[float]) -> np.ndarray:
    """A flat boolean array: True where the 0/1 input is nonzero."""
    return np.asarray(array).reshape(-1) != 0


def _check_same_length(labels: np.ndarray, other: np.ndarray, other_name: str) -> None:
    if labels.shape != other.shape:
        raise ValueError(
            f"labels have {labels.size} points but {other_name} has {other.size}"
        )


def _prf_from_counts(
    tp: np.ndarray, n_pred: np.ndarray, n_true: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision, recall, F1 arrays from counts, with zero divisions giving 0."""
    tp = np.asarray(tp, dtype=np.float64)
    n_pred = np.asarray(n_pred, dtype=np.float64)
    n_true = np.asarray(n_true, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(n_pred > 0, tp / n_pred, 0.0)
        recall = np.where(n_true > 0, tp / n_true, 0.0)
        denom = precision + recall
        f1 = np.where(denom > 0, 2 * precision * recall / denom, 0.0)
    return precision, recall, f1


def point_prf(
    labels: np.ndarray | Sequence[int], pred: np.ndarray | Sequence[int]
) -> tuple[float, float, float]:
    """Point-wise (precision, recall, F1) of a 0/1 prediction; never raises on degenerate input.

    No anomalies and no predictions gives (0, 0, 0), as scikit-learn with
    ``zero_division=0`` and TSB-AD's Standard-F1 do.
    """
    truth = _as_flags(labels)
    predicted = _as_flags(pred)
    _check_same_length(truth, predicted, "pred")
    tp = np.count_nonzero(truth & predicted)
    p, r, f = _prf_from_counts(tp, np.count_nonzero(predicted), np.count_nonzero(truth))
    return float(p), float(r), float(f)


def f1_at_thresholds(
    labels: np.ndarray | Sequence[int],
    scores: np.ndarray | Sequence[float],
    thresholds: Sequence[float],
) -> np.ndarray:
    """Point F1 of ``scores >= t`` for every ``t`` in ``thresholds`` (one sort, no loop over t)."""
    truth = _as_flags(labels)
    values = np.asarray(scores, dtype=np.float64).reshape(-1)
    _check_same_length(truth, values, "scores")
    values = np.where(np.isnan(values), -np.inf, values)  # NaN never reaches a threshold
    t = np.asarray(thresholds, dtype=np.float64).reshape(-1)
    all_sorted = np.sort(values)
    anomaly_sorted = np.sort(values[truth])
    n_pred = values.size - np.searchsorted(all_sorted, t, side="left")
    tp = anomaly_sorted.size - np.searchsorted(anomaly_sorted, t, side="left")
    return _prf_from_counts(tp, n_pred, anomaly_sorted.size)[2]


def best_f1_oracle(
    labels: np.ndarray | Sequence[int],
    scores: np.ndarray | Sequence[float],
    levels: Sequence[float] = DEFAULT_LEVELS,
) -> dict[str, Any]:
    """Best point F1 over ``scores >= level``, the level picked on this series' own labels.

    An upper bound, not an honest score: the result carries ``rule="oracle"`` so that
    reports cannot mistake it for a calibrated Best-F1. Ties go to the lowest level.
    """
    if len(levels) == 0:
        raise ValueError("best_f1_oracle needs at least one candidate level")
    f1 = f1_at_thresholds(labels, scores, levels)
    best = int(np.argmax(f1))
    threshold = float(levels[best])
    pred = np.asarray(scores, dtype=np.float64).reshape(-1) >= threshold
    precision, recall, f1_value = point_prf(labels, pred)
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1_value,
        "threshold": threshold,
        "rule": "oracle",
    }


def choose_threshold(
    labels_list: Sequence[np.ndarray],
    scores_list: Sequence[np.ndarray],
    candidates: Sequence[float],
) -> float:
    """The candidate threshold maximising the MEAN per-series F1 over calibration series.

    Mean (macro) rather than pooled F1, because the benchmark reports macro averages over
    series. Series without anomalies have F1 0 at every threshold and do not sway the
    choice. Ties go to the lowest candidate.
    """
    if len(labels_list) != len(scores_list):
        raise ValueError(
            f"{len(labels_list)} label arrays but {len(scores_list)} score arrays"
        )
    if len(labels_list) == 0:
        raise ValueError("choose_threshold needs at least one calibration series")
    ordered = np.sort(np.asarray(candidates, dtype=np.float64).reshape(-1))
    if ordered.size == 0:
        raise ValueError("choose_threshold needs at least one candidate threshold")
    table = np.vstack(
        [f1_at_thresholds(y, s, ordered) for y, s in zip(labels_list, scores_list)]
    )
    return float(ordered[int(np.argmax(table.mean(axis=0)))])


def assign_folds(groups: Sequence[str], n_folds: int) -> list[int]:
    """Deterministic, balanced folds: series ranked by the hash of their name, dealt round-robin.

    Dealing by hash rank (rather than taking ``hash % n_folds``) keeps every fold
    non-empty whenever there are at least ``n_folds`` series, yet depends only on names.
    """
    keys = [hashlib.sha256(str(g).encode("utf-8")).hexdigest() for g in groups]
    order = sorted(range(len(groups)), key=lambda i: (keys[i], i))
    folds = [0] * len(groups)
    for rank, index in enumerate(order):
        folds[index] = rank % n_folds
    return folds


def cross_fitted_best_f1(
    labels_list: Sequence[np.ndarray],
    scores_list: Sequence[np.ndarray],
    groups: Sequence[str],
    candidates: Sequence[float],
    n_folds: int = 2,
) -> tuple[list[float], list[float]]:
    """Honest per-series Best-F1: each series' threshold is chosen on the OTHER folds only.

    ``groups`` holds one name per series (e.g. ``"YAHOO/series_12"``); folds come from
    :func:`assign_folds`. Returns ``(per_series_f1, thresholds)``. With fewer series than
    folds there is nothing to calibrate on: those series get NaN and a warning.
    """
    if not (len(labels_list) == len(scores_list) == len(groups)):
        raise ValueError(
            f"need one label array, score array and group name per series; got "
            f"{len(labels_list)}, {len(scores_list)} and {len(groups)}"
        )
    if n_folds < 2:
        raise ValueError(f"cross-fitting needs n_folds >= 2, got {n_folds}")
    ordered = np.sort(np.asarray(candidates, dtype=np.float64).reshape(-1))
    if ordered.size == 0:
        raise ValueError("cross_fitted_best_f1 needs at least one candidate threshold")
    if len(labels_list) == 0:
        return [], []
    table = np.vstack(
        [f1_at_thresholds(y, s, ordered) for y, s in zip(labels_list, scores_list)]
    )
    folds = np.asarray(assign_folds(groups, n_folds))
    per_series = [math.nan] * len(groups)
    thresholds = [math.nan] * len(groups)
    for fold in np.unique(folds):
        held_out = folds == fold
        calibration = ~held_out
        if not calibration.any():
            warnings.warn(
                f"cross_fitted_best_f1: {int(held_out.sum())} series and no other fold to "
                f"calibrate on (need at least {n_folds} series); their Best-F1 is NaN",
                stacklevel=2,
            )
            continue
        best = int(np.argmax(table[calibration].mean(axis=0)))
        for index in np.flatnonzero(held_out):
            per_series[index] = float(table[index, best])
            thresholds[index] = float(ordered[best])
    return per_series, thresholds


def macro_average(
    rows: Iterable[Mapping[str, Any]],
    by: str | Sequence[str] = ("dataset", "detector"),
    metrics: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """Per-group means of per-series metric rows (macro averages), one dict per group.

    ``metrics`` defaults to every numeric column that is not a grouping key. NaN values
    (metrics undefined on a series, e.g. VUS without anomalies) are left out of that
    metric's mean; ``n_series`` counts all rows of the group, and ``n_<metric>`` is added
    only when some values were NaN. Groups keep their first-seen order.
    """
    keys = (by,) if isinstance(by, str) else tuple(by)
    rows = list(rows)
    if metrics is None:
        metrics = []
        for row in rows:
            for name, value in row.items():
                numeric = isinstance(value, (int, float, np.integer, np.floating))
                if name not in keys and numeric and not isinstance(value, bool):
                    if name not in metrics:
                        metrics.append(name)
    groups: dict[tuple, list[Mapping[str, Any]]] = {}
    for row in rows:
        missing = [k for k in keys if k not in row]
        if missing:
            raise KeyError(f"macro_average: row {dict(row)!r} lacks grouping key(s) {missing}")
        groups.setdefault(tuple(row[k] for k in keys), []).append(row)
    out = []
    for group_key, members in groups.items():
        summary: dict[str, Any] = dict(zip(keys, group_key))
        summary["n_series"] = len(members)
        for name in metrics:
            values = np.array(
                [float(m[name]) if m.get(name) is not None else math.nan for m in members]
            )
            finite = values[~np.isnan(values)]
            summary[name] = float(finite.mean()) if finite.size else math.nan
            if finite.size != values.size:
                summary[f"n_{name}"] = int(finite.size)
        out.append(summary)
    return out
