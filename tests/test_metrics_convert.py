"""Converters between intervals, 0/1 arrays and score arrays (hand-computed values)."""

import numpy as np
import pytest

from anomamind.eval.convert import (
    binary_to_ranges,
    intervals_to_binary,
    intervals_to_scores,
    ranges_to_intervals,
    scores_to_binary,
)
from anomamind.types import Interval


def test_intervals_to_binary_inclusive_and_clipped():
    out = intervals_to_binary([(2, 3), Interval(start=8, end=20), (-5, 0)], 10)
    assert out.dtype == np.int8
    assert out.tolist() == [1, 0, 1, 1, 0, 0, 0, 0, 1, 1]


def test_intervals_to_binary_ignores_reversed_and_outside():
    assert intervals_to_binary([(5, 3), (12, 15), (-4, -1)], 10).sum() == 0
    assert intervals_to_binary([], 0).size == 0


def test_intervals_to_binary_rejects_garbage():
    with pytest.raises(ValueError, match="start, end"):
        intervals_to_binary([(1, 2, 3)], 10)
    with pytest.raises(ValueError, match="length"):
        intervals_to_binary([], -1)


def test_intervals_to_scores_takes_highest_confidence():
    intervals = [
        Interval(start=1, end=4, confidence=1),
        Interval(start=3, end=5, confidence=3),
        Interval(start=5, end=6, confidence=2),
        (8, 8),
    ]
    assert intervals_to_scores(intervals, 10).tolist() == [0, 1, 1, 3, 3, 3, 2, 0, 1, 0]


def test_binary_to_ranges_keeps_edge_runs():
    assert binary_to_ranges([1, 1, 0, 0, 1, 0, 1, 1]) == [(0, 1), (4, 4), (6, 7)]
    assert binary_to_ranges(np.ones(5)) == [(0, 4)]
    assert binary_to_ranges(np.zeros(5)) == []
    assert binary_to_ranges([]) == []


def test_round_trip_binary_ranges_binary():
    rng = np.random.default_rng(0)
    pred = (rng.random(500) < 0.3).astype(np.int8)
    assert np.array_equal(intervals_to_binary(binary_to_ranges(pred), 500), pred)
    intervals = ranges_to_intervals(binary_to_ranges(pred), confidence=3)
    assert np.array_equal(intervals_to_scores(intervals, 500), 3.0 * pred)


def test_scores_to_binary_is_inclusive_and_nan_safe():
    out = scores_to_binary([0.0, 1.0, 2.0, np.nan, 3.0], 2.0)
    assert out.tolist() == [0, 0, 1, 0, 1]
