"""Label-free calibration: a score's threshold from the series itself, at a target
false-alarm rate, by peaks over threshold (the SPOT family, Siffer et al., KDD 2017).

The upper tail of a score (its exceedances over a high empirical quantile) is fitted with
a generalised Pareto distribution (``scipy.stats.genpareto``, maximum likelihood, location
fixed at 0); the threshold is the level the fit says is exceeded by a fraction ``rate`` of
the points. Heavy-tailed scores get high thresholds, light-tailed ones low thresholds, so
the rate means the same on every series whatever its noise. Where the tail has too few
points for a fit, or the rate is inside the empirical tail, the empirical quantile is used.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

#: Quantile above which points are the tail the Pareto distribution is fitted to.
TAIL_QUANTILE = 0.98
#: Fewer exceedances than this: no fit, the empirical quantile is used.
MIN_EXCEEDANCES = 20
#: Exceedances used for the fit at most (evenly spaced order statistics beyond that: the fit
#: of a 10M-point series costs what a 250k-point one does).
MAX_FIT_POINTS = 5000


def pot_threshold(scores: np.ndarray, rate: float, tail_quantile: float = TAIL_QUANTILE) -> float:
    """The level a fraction ``rate`` of ``scores`` is expected to exceed (NaN/inf ignored).

    ``rate`` in (0, 1). Returns the empirical ``1 - rate`` quantile when the rate is not
    inside the fitted tail or the tail is too small or degenerate to fit, and the largest
    score when the series is too short for even that.
    """
    if not 0 < rate < 1:
        raise ValueError(f"false-alarm rate must be in (0, 1), got {rate}")
    x = np.asarray(scores, dtype=np.float64)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return math.inf
    start = float(np.quantile(x, tail_quantile))
    excess = np.sort(x[x > start] - start)
    tail_share = excess.size / x.size
    if rate >= tail_share or excess.size < MIN_EXCEEDANCES or excess[-1] <= 0:
        return float(np.quantile(x, 1 - rate)) if rate * x.size >= 1 else float(x.max())
    if excess.size > MAX_FIT_POINTS:
        excess = excess[np.linspace(0, excess.size - 1, MAX_FIT_POINTS).astype(int)]
    from scipy import stats

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            shape, _, scale = stats.genpareto.fit(excess, floc=0.0)
    except (ValueError, RuntimeError, FloatingPointError):
        return float(np.quantile(x, 1 - rate))
    if not (math.isfinite(shape) and math.isfinite(scale) and scale > 0):
        return float(np.quantile(x, 1 - rate))
    ratio = rate / tail_share  # < 1: beyond the start of the tail
    if abs(shape) < 1e-6:
        level = start - scale * math.log(ratio)
    else:
        level = start + scale / shape * (ratio ** (-shape) - 1.0)
    return float(level) if math.isfinite(level) else float(x.max())
