"""Rolling robust z-score: distance of each point from the median of the preceding window,
in units of that window's MAD (median absolute deviation, scaled to a normal sigma).

Applied to the values (``zscore``) or to the first differences (``zscore-diff``, which
catches jumps and level shifts in trending data). The fit step records the MAD of the
training prefix; a small fraction of it floors the window MAD so that flat stretches do not
divide by zero.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from anomamind.eval.baselines.base import BaseDetector

#: MAD of a normal sample is 0.6745 sigma; this turns a MAD into a sigma estimate.
MAD_TO_SIGMA = 1.4826


def _mad(values: np.ndarray) -> float:
    return float(np.median(np.abs(values - np.median(values))))


def rolling_median_mad(values: np.ndarray, window: int, chunk: int = 20000) -> tuple[np.ndarray, np.ndarray]:
    """Median and MAD of each full trailing window ``values[i - window : i]`` (i >= window)."""
    views = sliding_window_view(values[:-1], window)  # row j = values[j : j + window]
    medians = np.empty(views.shape[0])
    mads = np.empty(views.shape[0])
    for start in range(0, views.shape[0], chunk):
        block = views[start : start + chunk]
        med = np.median(block, axis=1)
        medians[start : start + chunk] = med
        mads[start : start + chunk] = np.median(np.abs(block - med[:, None]), axis=1)
    return medians, mads


class RollingZScoreDetector(BaseDetector):
    """|x_t - median(window before t)| / (1.4826 * MAD(window before t)), on values or diffs."""

    has_fit_step = True

    def __init__(self, window: int = 100, on_diff: bool = False, mad_floor: float = 0.05, sigmas: float = 3.0) -> None:
        super().__init__(sigmas)
        self.window = int(window)
        self.on_diff = bool(on_diff)
        self.mad_floor = float(mad_floor)
        self.scale_: float = 0.0

    def _transform(self, X: np.ndarray) -> np.ndarray:
        return np.diff(X, prepend=X[0]) if self.on_diff else X

    def _fit(self, X: np.ndarray) -> None:
        values = self._transform(X)
        scale = _mad(values)
        if scale == 0.0:  # mostly constant prefix: fall back to the standard deviation
            scale = float(values.std())
        self.scale_ = scale if scale > 0 else 1.0

    def _score(self, X: np.ndarray) -> np.ndarray:
        values = self._transform(X)
        n = values.size
        w = max(2, min(self.window, n // 2))
        scores = np.zeros(n)
        if n <= w:
            return scores
        medians, mads = rolling_median_mad(values, w)
        floor = self.mad_floor * self.scale_
        sigma = MAD_TO_SIGMA * np.maximum(mads, floor)
        scores[w:] = np.abs(values[w:] - medians) / sigma
        # the first window has no history: score it against the first full window's statistics
        scores[:w] = np.abs(values[:w] - medians[0]) / sigma[0]
        return scores
