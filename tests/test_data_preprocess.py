"""Preprocessing: the paper's whole-series min-max + detrend, and the causal prefix-only fit."""

from __future__ import annotations

import numpy as np
import pytest

from anomamind.envs.preprocess import preprocess
from anomamind.types import DataError


def ramp_with_wiggle(n: int = 400) -> np.ndarray:
    t = np.arange(n, dtype=float)
    return 5.0 + 0.03 * t + np.sin(2 * np.pi * t / 25)


def test_paper_mode_removes_the_least_squares_line_of_the_scaled_series():
    x = ramp_with_wiggle()
    out, record = preprocess(x, mode="paper")
    scaled = (x - x.min()) / (x.max() - x.min())
    t = np.arange(x.size)
    slope, intercept = np.polyfit(t, scaled, 1)
    np.testing.assert_allclose(out, scaled - (slope * t + intercept), atol=1e-10)
    assert record["mode"] == "paper" and record["fit_range"] == [0, x.size]
    assert record["min"] == x.min() and record["max"] == x.max()
    assert abs(np.polyfit(t, out, 1)[0]) < 1e-12  # no trend left
    assert abs(out.mean()) < 1e-10


def test_causal_mode_uses_only_the_training_prefix():
    x = ramp_with_wiggle()
    out, record = preprocess(x, mode="causal", train_end=200)
    future_changed = x.copy()
    future_changed[200:] *= 10.0  # nothing after the prefix may influence the fit
    out_changed, record_changed = preprocess(future_changed, mode="causal", train_end=200)
    np.testing.assert_array_equal(out[:200], out_changed[:200])
    for key in ("min", "max", "trend_slope", "trend_intercept"):
        assert record[key] == record_changed[key]
    assert record["fit_range"] == [0, 200] and record["min"] == x[:200].min()


def test_paper_mode_looks_ahead_unlike_causal():
    x = ramp_with_wiggle()
    changed = x.copy()
    changed[300:] += 50.0
    assert not np.allclose(preprocess(x)[0][:200], preprocess(changed)[0][:200])


def test_constant_series_and_none_mode():
    out, _ = preprocess(np.full(50, 3.0))
    np.testing.assert_allclose(out, 0.0, atol=1e-12)
    x = ramp_with_wiggle(30)
    out, record = preprocess(x, mode="none")
    np.testing.assert_array_equal(out, x)
    assert record == {"mode": "none"} and out is not x


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"mode": "zscore"}, "mode must be one of"),
        ({"mode": "causal"}, "needs train_end"),
        ({"mode": "causal", "train_end": 1}, "train_end=1"),
        ({"mode": "causal", "train_end": 999}, "train_end=999"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(DataError, match=message):
        preprocess(ramp_with_wiggle(50), **kwargs)


def test_empty_and_non_finite_input():
    with pytest.raises(DataError, match="empty"):
        preprocess(np.array([]))
    with pytest.raises(DataError, match="NaN"):
        preprocess(np.array([1.0, np.nan, 2.0]))
