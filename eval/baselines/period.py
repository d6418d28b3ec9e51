"""Dominant period of a series, TSB-AD's ``find_length_rank`` rule (rank 1).

Window-based baselines (Isolation Forest, matrix profile) size their windows with it, so a
periodic series is compared period against period. The rule: the highest local maximum of
the autocorrelation (lags 3..400 of the first 20,000 points); 125 when there is none or it
lies outside 3..300, as TSB-AD does.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import argrelextrema
from statsmodels.tsa.stattools import acf

#: TSB-AD's fallback period when the autocorrelation shows none.
FALLBACK_PERIOD = 125


def dominant_period(values: np.ndarray) -> int:
    """The series' dominant period in points (TSB-AD ``find_length_rank(rank=1)``)."""
    data = np.asarray(values, dtype=np.float64).reshape(-1)[:20000]
    base = 3
    if data.size < 2 * base + 2 or np.ptp(data) == 0:
        return FALLBACK_PERIOD
    auto_corr = acf(data, nlags=min(400, data.size - 1), fft=True)[base:]
    local_max = argrelextrema(auto_corr, np.greater)[0]
    if local_max.size == 0:
        return FALLBACK_PERIOD
    best = int(local_max[int(np.argmax(auto_corr[local_max]))])
    if best < 3 or best > 300:
        return FALLBACK_PERIOD
    return best + base
