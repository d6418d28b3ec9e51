"""Wrap a PyOD-style baseline as a benchmark :class:`~anomamind.eval.registry.SeriesDetector`.

Fit rule: a method with a fit step is fitted on the training prefix ``values[:train_end]``
(TSB-AD's ``tr_N``) when the series has one of at least ``min_fit_points`` points, else on
the whole series; ``fit_on="whole_series"`` always fits on the whole series (unsupervised,
as TSB-AD runs these methods). Scores are always computed on
the whole series. The prediction's ``scores`` are the min-max-normalised scores expressed in
standard deviations above their mean, ``(s - mu) / sigma``: an affine change that leaves every
threshold-free metric unchanged and makes the decision rule ``score > 3`` (the paper's
``mu + 3 sigma``), so Best-F1 can sweep the number of sigmas across series.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from anomamind.eval.baselines.base import BaseDetector, minmax_normalise
from anomamind.eval.registry import SeriesPrediction
from anomamind.types import DataError, Series

#: Where a method with a fit step learns from.
FIT_RULES: tuple[str, ...] = ("train_prefix", "whole_series")

#: Sigma multiples swept by Best-F1 (the detector's own rule is ``sigmas``, default 3).
SIGMA_CANDIDATES: tuple[float, ...] = (1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0)


def standardise(scores: np.ndarray) -> np.ndarray:
    """Min-max normalise, then express in standard deviations above the mean."""
    normalised = minmax_normalise(scores)
    spread = normalised.std()
    if spread == 0:
        return np.zeros_like(normalised)
    return (normalised - normalised.mean()) / spread


class BaselineSeriesDetector:
    """Runs one baseline on a whole series: fit on the training prefix, score, threshold."""

    def __init__(
        self,
        name: str,
        make_estimator: Callable[[], BaseDetector],
        min_fit_points: int = 200,
        fit_on: str = "train_prefix",
    ) -> None:
        if fit_on not in FIT_RULES:
            raise ValueError(f"detector {name!r}: fit_on must be one of {FIT_RULES}, got {fit_on!r}")
        self.name = name
        self.make_estimator = make_estimator
        self.min_fit_points = int(min_fit_points)
        self.fit_on = fit_on

    def detect(self, series: Series) -> SeriesPrediction:
        what = series.source or f"{series.dataset}/{series.name}"
        if len(series) < 4:
            raise DataError(f"{what}: series too short for {self.name} ({len(series)} points)")
        estimator = self.make_estimator()
        train_end = series.train_end
        use_prefix = (
            self.fit_on == "train_prefix"
            and train_end is not None
            and self.min_fit_points <= train_end <= len(series)
        )
        fit_values = series.values[:train_end] if use_prefix else series.values
        estimator.fit(fit_values)
        fit_on = ("train_prefix" if use_prefix else "whole_series") if estimator.has_fit_step else "none"
        raw = estimator.decision_function(series.values)
        scores = standardise(raw)
        pred = (scores > estimator.sigmas).astype(np.int8)
        info = {
            "fit_on": fit_on,
            "fit_points": int(fit_values.size) if estimator.has_fit_step else 0,
            "threshold_rule": f"min-max normalised score > mu + {estimator.sigmas:g} sigma",
            "threshold_candidates": list(SIGMA_CANDIDATES),
        }
        info.update(getattr(estimator, "info_", {}) or {})
        if getattr(estimator, "window_", None):
            info["window"] = int(estimator.window_)
        return SeriesPrediction(pred=pred, scores=scores, info=info)
