"""Conversions between the three views of a detection: intervals, 0/1 arrays, score arrays.

Detectors speak in :class:`~anomamind.types.Interval` objects (inclusive ``start``..``end``
with a confidence 1..3), metrics speak in per-point arrays. These helpers are the single
place where one view turns into another, so every part of the stack agrees on clipping,
inclusiveness and how overlapping intervals combine.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from anomamind.types import Interval

#: An interval given either as an Interval or as an inclusive ``(start, end)`` pair.
IntervalLike = Interval | Sequence[int]


def _bounds_and_confidence(interval: IntervalLike) -> tuple[int, int, float]:
    """``(start, end, confidence)`` of an Interval or a ``(start, end)`` pair (confidence 1)."""
    if isinstance(interval, Interval):
        return int(interval.start), int(interval.end), float(interval.confidence)
    try:
        start, end = interval
    except (TypeError, ValueError):
        raise ValueError(
            f"expected an Interval or an inclusive (start, end) pair, got {interval!r}"
        ) from None
    return int(start), int(end), 1.0


def _clipped_slice(start: int, end: int, n: int) -> slice | None:
    """The array slice of inclusive ``start..end`` clipped to ``[0, n)``; None if empty."""
    lo, hi = max(start, 0), min(end, n - 1)
    if lo > hi:
        return None
    return slice(lo, hi + 1)


def intervals_to_binary(intervals: Iterable[IntervalLike], n: int) -> np.ndarray:
    """0/1 array of length ``n`` marking every point covered by an interval.

    Parts of intervals outside ``[0, n)`` are clipped; reversed or fully outside intervals
    mark nothing.
    """
    if n < 0:
        raise ValueError(f"series length must be >= 0, got {n}")
    out = np.zeros(n, dtype=np.int8)
    for interval in intervals:
        start, end, _ = _bounds_and_confidence(interval)
        span = _clipped_slice(start, end, n)
        if span is not None:
            out[span] = 1
    return out


def intervals_to_scores(intervals: Iterable[IntervalLike], n: int) -> np.ndarray:
    """Per-point score: the highest confidence among the intervals covering the point, else 0.

    ``(start, end)`` pairs count as confidence 1. Used to give interval detectors a
    continuous score for threshold-free metrics and for Best-F1 over confidence levels.
    """
    if n < 0:
        raise ValueError(f"series length must be >= 0, got {n}")
    out = np.zeros(n, dtype=np.float64)
    for interval in intervals:
        start, end, confidence = _bounds_and_confidence(interval)
        span = _clipped_slice(start, end, n)
        if span is not None:
            np.maximum(out[span], confidence, out=out[span])
    return out


def run_bounds(pred: np.ndarray | Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Inclusive ``(starts, ends)`` int64 arrays of the runs of nonzero values (vectorised)."""
    flags = np.asarray(pred).reshape(-1) != 0
    padded = np.concatenate(([False], flags, [False])).astype(np.int8)
    edges = np.diff(padded)
    return np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1


def binary_to_ranges(pred: np.ndarray | Sequence[int]) -> list[tuple[int, int]]:
    """Inclusive ``(start, end)`` pairs of the runs of nonzero values in a 1-D array.

    Unlike TSB-AD's range finder, a run touching index 0 or the last index is kept whole
    (an all-ones array is one range).
    """
    starts, ends = run_bounds(pred)
    return list(zip(starts.tolist(), ends.tolist()))


def ranges_to_intervals(
    ranges: Iterable[tuple[int, int]], confidence: int = 2, type: str = "other"
) -> list[Interval]:
    """Wrap inclusive ``(start, end)`` pairs as :class:`Interval` objects."""
    return [Interval(start=s, end=e, type=type, confidence=confidence) for s, e in ranges]


def scores_to_binary(scores: np.ndarray | Sequence[float], threshold: float) -> np.ndarray:
    """0/1 (int8) array: 1 where ``score >= threshold``.

    NaN scores never exceed a threshold and so predict 0.
    """
    values = np.asarray(scores, dtype=np.float64).reshape(-1)
    with np.errstate(invalid="ignore"):
        return (values >= threshold).astype(np.int8)
