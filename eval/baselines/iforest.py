"""Isolation Forest (scikit-learn) over sliding windows of the series.

Each length-``window`` subsequence (stride 1) is a sample. The forest is fitted on the
subsequences of the training prefix (``Series.train_end``) and scores every subsequence; a
point's score is the mean score of the subsequences covering it. The window defaults to the
series' dominant period (TSB-AD's rule), capped at ``max_window``.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from sklearn.ensemble import IsolationForest

from anomamind.eval.baselines.base import BaseDetector, spread_window_scores
from anomamind.eval.tsbad import find_length_rank


class IForestDetector(BaseDetector):
    """Sliding-window Isolation Forest; ``window=None`` picks the dominant period."""

    has_fit_step = True

    def __init__(
        self,
        window: int | None = None,
        max_window: int = 100,
        n_estimators: int = 100,
        max_fit_windows: int = 20000,
        random_state: int = 0,
        sigmas: float = 3.0,
    ) -> None:
        super().__init__(sigmas)
        self.window = window
        self.max_window = int(max_window)
        self.n_estimators = int(n_estimators)
        self.max_fit_windows = int(max_fit_windows)
        self.random_state = int(random_state)
        self.window_: int | None = None
        self.forest_: IsolationForest | None = None

    def _window_for(self, X: np.ndarray) -> int:
        w = self.window if self.window else min(find_length_rank(X, rank=1), self.max_window)
        return int(max(1, min(w, X.size)))

    def _fit(self, X: np.ndarray) -> None:
        self.window_ = self._window_for(X)
        samples = sliding_window_view(X, self.window_)
        if samples.shape[0] > self.max_fit_windows:  # evenly spaced subset, for speed
            keep = np.linspace(0, samples.shape[0] - 1, self.max_fit_windows).astype(int)
            samples = samples[keep]
        self.forest_ = IsolationForest(n_estimators=self.n_estimators, random_state=self.random_state)
        self.forest_.fit(samples)

    def _score(self, X: np.ndarray) -> np.ndarray:
        assert self.forest_ is not None and self.window_ is not None
        w = min(self.window_, X.size)
        if w != self.window_:
            raise ValueError(f"series of {X.size} points is shorter than the fitted window {self.window_}")
        window_scores = -self.forest_.score_samples(sliding_window_view(X, w))
        return spread_window_scores(window_scores, w, X.size)
