"""The shared shape of every classical baseline: a PyOD-like estimator on a 1-D series.

``fit(X)`` learns what the method needs from normal data (the training prefix, when the
series has one), ``decision_function(X)`` returns one anomaly score per point (higher = more
anomalous) and ``predict(X)`` turns the scores into 0/1 with the paper's default rule:
min-max normalise the scores, flag points above ``mu + 3 sigma`` of the normalised scores.
"""

from __future__ import annotations

import numpy as np

from anomamind.types import DataError

#: The paper's default threshold: mean + 3 standard deviations of the normalised scores.
DEFAULT_SIGMAS = 3.0


def as_series_array(X: np.ndarray, *, what: str = "X") -> np.ndarray:
    """``X`` as a finite float64 1-D array (an ``(n, 1)`` column is accepted, as in PyOD)."""
    arr = np.asarray(X, dtype=np.float64)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise DataError(f"{what}: expected a univariate series, got shape {arr.shape}")
    if arr.size == 0:
        raise DataError(f"{what}: empty series")
    if not np.all(np.isfinite(arr)):
        bad = int(np.flatnonzero(~np.isfinite(arr))[0])
        raise DataError(f"{what}: non-finite value at index {bad}")
    return arr


def minmax_normalise(scores: np.ndarray) -> np.ndarray:
    """Scale scores to [0, 1]; a constant score becomes all zeros (nothing stands out)."""
    lo, hi = float(np.min(scores)), float(np.max(scores))
    if hi - lo <= 0.0:
        return np.zeros_like(scores, dtype=np.float64)
    return (scores - lo) / (hi - lo)


def sigma_threshold(scores: np.ndarray, sigmas: float = DEFAULT_SIGMAS) -> np.ndarray:
    """0/1 decision: normalised score above ``mu + sigmas * sigma`` (the paper's rule)."""
    normalised = minmax_normalise(np.asarray(scores, dtype=np.float64))
    cut = normalised.mean() + sigmas * normalised.std()
    return (normalised > cut).astype(np.int8)


def spread_window_scores(window_scores: np.ndarray, window: int, n: int) -> np.ndarray:
    """Per-point score = mean score of the length-``window`` subsequences covering the point.

    ``window_scores[i]`` scores the subsequence ``[i, i + window)``; there are
    ``n - window + 1`` of them. Every point is covered by at least one subsequence.
    """
    if window_scores.size != n - window + 1:
        raise ValueError(f"expected {n - window + 1} window scores, got {window_scores.size}")
    csum = np.concatenate([[0.0], np.cumsum(window_scores)])
    idx = np.arange(n)
    first = np.maximum(idx - window + 1, 0)  # first subsequence covering point idx
    last = np.minimum(idx, window_scores.size - 1)  # last one
    return (csum[last + 1] - csum[first]) / (last - first + 1)


class BaseDetector:
    """PyOD-style base: subclasses implement ``_fit`` (optional) and ``_score``.

    ``has_fit_step`` says whether ``fit`` learns anything; methods without one score each
    series on its own, so the runner does not pretend they used the training prefix.
    """

    has_fit_step = False

    def __init__(self, sigmas: float = DEFAULT_SIGMAS) -> None:
        self.sigmas = float(sigmas)
        self.fitted_ = False

    def fit(self, X: np.ndarray) -> "BaseDetector":
        """Learn from (mostly normal) data; methods without a fit step only validate ``X``."""
        self._fit(as_series_array(X))
        self.fitted_ = True
        return self

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """One anomaly score per point of ``X``; higher is more anomalous."""
        arr = as_series_array(X)
        if not self.fitted_:
            self.fit(arr)
        scores = np.asarray(self._score(arr), dtype=np.float64)
        if scores.shape != arr.shape:
            raise RuntimeError(f"{type(self).__name__} returned {scores.shape} scores for {arr.shape}")
        return np.nan_to_num(scores, nan=0.0, posinf=0.0, neginf=0.0)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """0/1 per point by the ``mu + sigmas * sigma`` rule on min-max-normalised scores."""
        return sigma_threshold(self.decision_function(X), self.sigmas)

    def _fit(self, X: np.ndarray) -> None:  # noqa: B027 - optional hook
        """Default: nothing to learn."""

    def _score(self, X: np.ndarray) -> np.ndarray:
        raise NotImplementedError
