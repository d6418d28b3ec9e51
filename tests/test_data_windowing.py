"""Window coverage: every point in exactly one window at stride == length (tail included)."""

from __future__ import annotations

import numpy as np
import pytest

from anomamind.envs.windowing import make_windows, window_bounds
from anomamind.types import DataError, Series


@pytest.mark.parametrize("n, length", [(1000, 100), (1057, 100), (99, 100), (100, 100), (101, 100), (7, 3), (1, 5)])
def test_stride_equal_to_length_covers_each_point_exactly_once(n, length):
    counts = np.zeros(n, dtype=int)
    bounds = window_bounds(n, length, length)
    for start, end in bounds:
        assert 0 <= start < end <= n and end - start <= length
        counts[start:end] += 1
    np.testing.assert_array_equal(counts, 1)
    assert bounds[-1][1] == n  # the tail is kept
    assert len(bounds) == -(-n // length)


@pytest.mark.parametrize("n, length, stride", [(1000, 100, 50), (1057, 100, 30), (250, 100, 99), (10, 4, 1)])
def test_overlapping_windows_cover_everything(n, length, stride):
    counts = np.zeros(n, dtype=int)
    bounds = window_bounds(n, length, stride)
    for start, end in bounds:
        counts[start:end] += 1
    assert counts.min() >= 1 and bounds[-1][1] == n
    starts = [s for s, _ in bounds]
    assert starts == list(range(0, starts[-1] + 1, stride))


def test_make_windows_carry_offsets_values_and_labels():
    values = np.arange(250.0)
    labels = (np.arange(250) % 60 == 0).astype(np.int8)
    series = Series(values=values, labels=labels, name="s")
    windows = make_windows(series, 100, 100)
    assert [(w.start, w.end) for w in windows] == [(0, 100), (100, 200), (200, 250)]
    for w in windows:
        np.testing.assert_array_equal(w.values, values[w.start : w.end])
        np.testing.assert_array_equal(w.labels, labels[w.start : w.end])
    assert windows[2].window_id == "s@200-250" and windows[1].index == 1
    np.testing.assert_array_equal(np.concatenate([w.labels for w in windows]), labels)


def test_unlabelled_series_gives_unlabelled_windows():
    assert all(w.labels is None for w in make_windows(Series(values=np.arange(30.0)), 10, 10))


@pytest.mark.parametrize("n, length, stride, message", [(0, 100, 100, "empty"), (10, 0, 1, "positive"), (10, 5, -1, "positive")])
def test_bad_window_arguments(n, length, stride, message):
    with pytest.raises(DataError, match=message):
        window_bounds(n, length, stride)
