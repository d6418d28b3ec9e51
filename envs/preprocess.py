"""Series preprocessing: min-max normalisation and linear detrending, paper-style or causal.

``"paper"`` reproduces the AnomaMind reference: both fitted on the whole series (which
looks ahead into the test part). ``"causal"`` fits both on the training prefix
``[0, train_end)`` only and applies them to every point, so no statistic of the future
leaks into the past. The returned record says which mode ran and with what parameters,
so runs can log it next to their results.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from anomamind.types import DataError

PREPROCESS_MODES: tuple[str, ...] = ("paper", "causal", "none")


def preprocess(
    values: np.ndarray, *, mode: str = "paper", train_end: int | None = None
) -> tuple[np.ndarray, dict[str, Any]]:
    """Min-max scale, then subtract the least-squares line; return the result and a record.

    As in the paper's appendix D.1: x' = (x - min) / (max - min), then x'' = x' - (a t + b)
    over the zero-based index t, so the output is centred on 0 (roughly within [-1, 1]).
    ``mode="none"`` returns a float copy unchanged. ``"causal"`` needs ``train_end`` and
    fits min, max and the line on ``[0, train_end)`` only.
    """
    x = np.asarray(values, dtype=np.float64).reshape(-1)
    if mode not in PREPROCESS_MODES:
        raise DataError(f"preprocess mode must be one of {PREPROCESS_MODES}, got {mode!r}")
    if x.size == 0:
        raise DataError("cannot preprocess an empty series")
    if not np.all(np.isfinite(x)):
        raise DataError("cannot preprocess a series with NaN/inf values (load it with nan_policy='interpolate')")
    if mode == "none":
        return x.copy(), {"mode": "none"}

    if mode == "paper":
        fit_end = x.size
    else:
        if train_end is None:
            raise DataError("preprocess mode 'causal' needs train_end (the end of the training prefix)")
        if not 2 <= train_end <= x.size:
            raise DataError(f"causal preprocessing: train_end={train_end} must be in [2, {x.size}]")
        fit_end = int(train_end)

    fit = x[:fit_end]
    low, high = float(fit.min()), float(fit.max())
    span = high - low
    scaled = (x - low) / span if span > 0 else x - low
    t = np.arange(x.size, dtype=np.float64)
    if fit_end >= 2:
        slope, intercept = (float(c) for c in np.polyfit(t[:fit_end], scaled[:fit_end], 1))
    else:  # a single point has no trend
        slope, intercept = 0.0, 0.0
    # Paper D.1.3: x' = x - x_trend (the least-squares line), so residuals centre on 0.
    detrended = scaled - (slope * t + intercept)
    record = {
        "mode": mode,
        "fit_range": [0, fit_end],
        "min": low,
        "max": high,
        "trend_slope": slope,
        "trend_intercept": intercept,
    }
    return detrended, record
