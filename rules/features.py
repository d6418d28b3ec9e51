"""The rule-side feature library: per-point features a rule may compute over its window.

Every function takes a 1-D float array (one window) and returns an array of the same
length, so rules read as a few comparisons of features with thresholds. They are written
for speed (vectorised numpy/scipy, no Python loops over points) because rules run over
whole benchmarks at inference, and they never fail on flat or very short windows: a
window without spread gives zero scores instead of infinities.

This module is importable inside the rule sandbox (see :mod:`anomamind.rules.sandbox`).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from anomamind.tools.features_global import spectral_residual_saliency

#: Consistency constant that turns a median absolute deviation into a standard deviation.
MAD_TO_STD = 1.4826


def fast_median(x: np.ndarray) -> float:
    """Median of a finite 1-D array via one ``np.partition`` (np.median's NaN checks and
    reductions cost several times more on the short windows rules see)."""
    n = x.size
    if n == 0:
        return 0.0
    k = n // 2
    if n % 2:
        return float(np.partition(x, k)[k])
    part = np.partition(x, (k - 1, k))
    return 0.5 * float(part[k - 1] + part[k])


def robust_location_scale(x: np.ndarray) -> tuple[float, float]:
    """Median and outlier-proof spread of ``x``: 1.4826 * MAD, falling back to the std.

    The spread is 0.0 for a window without any spread (flat), so callers can return zeros.
    """
    med = fast_median(x)
    scale = MAD_TO_STD * fast_median(np.abs(x - med))
    if scale <= 1e-12:  # more than half the points equal: the MAD says nothing
        scale = float(np.std(x)) if x.size else 0.0
    return med, (scale if scale > 1e-12 else 0.0)


def robust_scale(x: np.ndarray) -> float:
    """Spread of ``x`` that ignores outliers (see :func:`robust_location_scale`)."""
    return robust_location_scale(x)[1]


def robust_zscore(values: np.ndarray) -> np.ndarray:
    """How many robust standard deviations each point lies from the window's median."""
    x = np.asarray(values, dtype=np.float64)
    med, scale = robust_location_scale(x)
    if scale == 0.0:
        return np.zeros_like(x)
    return (x - med) / scale


def diff_zscore(values: np.ndarray) -> np.ndarray:
    """Robust z-score of the step into each point (first difference; 0 for the first point).

    Large for sudden jumps (spikes, level shifts) even when the value itself is in range.
    """
    x = np.asarray(values, dtype=np.float64)
    d = np.zeros_like(x)
    if x.size > 1:
        d[1:] = np.diff(x)
    return robust_zscore(d)


def local_deviation(values: np.ndarray, width: int = 11) -> np.ndarray:
    """Robust z-score of the residual from a running median of ``width`` points.

    Captures contextual anomalies: a point that is ordinary for the window as a whole but
    far from its neighbours.
    """
    x = np.asarray(values, dtype=np.float64)
    width = max(3, min(int(width) | 1, x.size | 1))
    trend = ndimage.median_filter(x, size=width, mode="nearest")
    return robust_zscore(x - trend)


def spectral_residual(values: np.ndarray, smooth: int = 3) -> np.ndarray:
    """Robust z-score of the spectral-residual saliency map (Ren et al., 2019).

    The log-amplitude spectrum minus its local average keeps what is "unexpected" in the
    frequency domain; transformed back, it highlights points that break the window's
    regular structure. The saliency map is the tool library's
    (:func:`anomamind.tools.features_global.spectral_residual_saliency`).
    """
    x = np.asarray(values, dtype=np.float64)
    if x.size < 4 or np.ptp(x) == 0.0:  # a constant window has no structure to break
        return np.zeros_like(x)
    return robust_zscore(spectral_residual_saliency(x, average_window=smooth))


def rolling_std_ratio(values: np.ndarray, width: int = 20) -> np.ndarray:
    """Running standard deviation (``width`` points) over the window's robust spread.

    Above 1 where the series becomes noisier than usual (variance change); near 0 on
    flat stretches (stuck sensors, missing data filled with a constant).
    """
    x = np.asarray(values, dtype=np.float64)
    scale = robust_scale(np.diff(x)) / np.sqrt(2.0) if x.size > 2 else 0.0
    if scale == 0.0:
        return np.zeros_like(x)
    mean = ndimage.uniform_filter1d(x, size=width, mode="nearest")
    mean_sq = ndimage.uniform_filter1d(x * x, size=width, mode="nearest")
    std = np.sqrt(np.maximum(mean_sq - mean * mean, 0.0))
    return std / scale


def dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """Flag every point within ``radius`` points of a flagged one (anomalies are ranges)."""
    m = np.asarray(mask, dtype=bool)
    if radius <= 0 or not m.any():
        return m
    return ndimage.binary_dilation(m, structure=np.ones(2 * int(radius) + 1, dtype=bool))


def window_has(mask: np.ndarray) -> bool:
    """True when any point of the window is flagged (for window-level conditions)."""
    return bool(np.any(mask))
