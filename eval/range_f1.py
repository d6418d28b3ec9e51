"""TSB-AD 1.5's event-aware F1 scores: PA-F1, Event-based-F1 and R-based-F1.

Each metric has two forms: one for a fixed 0/1 prediction, and a ``*_grid`` form that
scores ``pred = score > t`` for many thresholds at once (TSB-AD's oracle search) without
looping over points in Python. TSB-AD's quirks are reproduced on purpose, because the
numbers must match the published benchmark; each is named where it happens:

* PA never fills index 0 when a true range starting at 0 is first hit later on.
* Event-based-F1 drops the final point of a true range that ends at the last index.
* R-based-F1 finds ranges from 0->1 / 1->0 transitions, so an all-ones vector has none.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from anomamind.eval.convert import run_bounds

#: TSB-AD's Event-based-F1 epsilon in ``2 R P / (R + P + eps)``.
EVENT_EPS = 1e-15
#: Existence weight of the range recall (Tatbul et al.); precision uses 0.
RANGE_RECALL_ALPHA = 0.2


def transition_ranges(flags: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """TSB-AD's ``range_convers_new``: runs of True, but none at all without a transition.

    TSB-AD locates ranges from 0->1 and 1->0 steps, so a vector that is entirely 1
    contains no range (quirk kept: it makes R-based-F1 0 for all-ones labels or pred).
    """
    if flags.size == 0 or flags.all():
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return run_bounds(flags)


def segment_max(values: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Maximum of ``values[s..e]`` (inclusive) per segment; ``-inf`` for empty segments."""
    out = np.full(starts.size, -np.inf)
    nonempty = ends >= starts
    if not nonempty.any():
        return out
    s, e = starts[nonempty], ends[nonempty]
    padded = np.append(values, -np.inf)  # so that e + 1 == len(values) is a valid index
    bounds = np.empty(2 * s.size, dtype=np.int64)
    bounds[0::2], bounds[1::2] = s, e + 1
    out[nonempty] = np.maximum.reduceat(padded, bounds)[0::2]
    return out


def _count_above(sorted_values: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """How many values are strictly greater than each threshold."""
    return sorted_values.size - np.searchsorted(sorted_values, thresholds, side="right")


def _f1_from_counts(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    """scikit-learn's ``f1_score`` from counts (0 when there is nothing to score)."""
    denom = 2 * tp + fp + fn
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, 2 * tp / np.where(denom > 0, denom, 1), 0.0)


# --- PA-F1 -------------------------------------------------------------------------------


def _pa_fill_starts(starts: np.ndarray) -> np.ndarray:
    """First index PA fills in each true range: TSB-AD never back-fills index 0 (quirk)."""
    return np.maximum(starts, 1)


def pa_f1(labels: np.ndarray, pred: np.ndarray) -> float:
    """Point-adjusted F1: a true range with any predicted point counts as fully predicted."""
    return float(pa_f1_grid(labels, pred.astype(np.float64), np.array([0.5]))[0])


def pa_f1_grid(labels: np.ndarray, score: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """PA-F1 of ``score > t`` for each threshold ``t``."""
    actual = labels > 0.1
    starts, ends = run_bounds(actual)
    hit = segment_max(score, starts, ends)[:, None] > thresholds[None, :]
    filled = (ends - _pa_fill_starts(starts) + 1).astype(np.float64)
    tp = filled @ hit
    if actual.size and actual[0]:
        tp = tp + (score[0] > thresholds)  # index 0 counts only when predicted itself
    fp = _count_above(np.sort(score[~actual]), thresholds)
    fn = np.count_nonzero(actual) - tp
    return _f1_from_counts(tp, fp, fn)


# --- Event-based-F1 ----------------------------------------------------------------------


def tsbad_events(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """TSB-AD's ``_get_events``: runs of 1, but a run reaching the last index loses that point.

    A one-point anomaly at the last index becomes an empty event that can never be hit.
    """
    starts, ends = run_bounds(labels == 1)
    if ends.size and ends[-1] == labels.size - 1:
        ends = ends.copy()
        ends[-1] -= 1
    return starts, ends


def event_f1(labels: np.ndarray, pred: np.ndarray) -> float:
    """Event recall (share of true events hit) combined with point precision."""
    return float(event_f1_grid(labels, pred.astype(np.float64), np.array([0.5]))[0])


def event_f1_grid(labels: np.ndarray, score: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Event-based-F1 of ``score > t`` per threshold; NaN when there are no true events."""
    starts, ends = tsbad_events(labels)
    event_max = np.sort(segment_max(score, starts, ends))
    hit_events = _count_above(event_max, thresholds).astype(np.float64)
    truth = labels == 1
    n_pred = _count_above(np.sort(score), thresholds)
    tp_points = _count_above(np.sort(score[truth]), thresholds)
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = hit_events / starts.size if starts.size else np.full(thresholds.size, np.nan)
        precision = np.where(n_pred > 0, tp_points / np.maximum(n_pred, 1), 0.0)
        return 2 * recall * precision / (recall + precision + EVENT_EPS)


# --- R-based-F1 --------------------------------------------------------------------------


def _range_recall(
    real: np.ndarray, other: np.ndarray, alpha: float, other_counts: np.ndarray | None = None
) -> float:
    """TSB-AD's ``range_recall_new(real, other, alpha)`` (flat bias, 1/overlap cardinality).

    Per range of ``real``: existence (``other`` has a 1 in it) and overlap (its share of
    1s in ``other`` divided by the number of ``other`` ranges touching it); averaged.
    """
    r_starts, r_ends = transition_ranges(real)
    if r_starts.size == 0:
        return 0.0
    if other_counts is None:
        other_counts = np.concatenate(([0], np.cumsum(other, dtype=np.int64)))
    covered = other_counts[r_ends + 1] - other_counts[r_starts]
    o_starts, o_ends = transition_ranges(other)
    touching = np.searchsorted(o_starts, r_ends, side="right") - np.searchsorted(
        o_ends, r_starts, side="left"
    )
    cardinality = np.where(touching > 0, 1.0 / np.maximum(touching, 1), 0.0)
    overlap = np.sum(covered / (r_ends - r_starts + 1) * cardinality)
    existence = np.count_nonzero(covered)
    return float((alpha * existence + (1 - alpha) * overlap) / r_starts.size)


def range_f1(labels: np.ndarray, pred: np.ndarray) -> float:
    """Range-based F1 (Tatbul et al. 2018) as TSB-AD computes it."""
    truth = labels == 1
    predicted = pred == 1
    recall = _range_recall(truth, predicted, RANGE_RECALL_ALPHA)
    precision = _range_recall(predicted, truth, 0.0)
    if precision + recall == 0:
        return 0.0
    return 2 * recall * precision / (precision + recall)


def range_f1_grid(labels: np.ndarray, score: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """R-based-F1 of ``score > t`` per threshold (one O(n) pass per distinct prediction)."""
    return per_distinct_prediction(range_f1, labels, score, thresholds)


def per_distinct_prediction(
    metric: Callable[[np.ndarray, np.ndarray], float],
    labels: np.ndarray,
    score: np.ndarray,
    thresholds: np.ndarray,
) -> np.ndarray:
    """``metric(labels, score > t)`` for every ``t``, computed once per distinct prediction.

    The sets ``score > t`` are nested, so the number of predicted points identifies the
    set: thresholds that predict the same number of points share one evaluation.
    """
    n_pred = _count_above(np.sort(score), thresholds)
    _, first, position = np.unique(n_pred, return_index=True, return_inverse=True)
    values = np.array([metric(labels, score > thresholds[i]) for i in first], dtype=np.float64)
    return values[position]
