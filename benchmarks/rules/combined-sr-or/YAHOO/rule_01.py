"""Rule yahoo-056: flags a point when ALL conditions below hold (mutated by the offline search from yahoo-043)."""

import numpy as np

from anomamind.rules import features as F


def detect(values: np.ndarray) -> np.ndarray:
    """0/1 per point of one window of the series."""
    flagged = np.ones(values.size, dtype=bool)

    # value_high: how far ABOVE the window's median the value lies (robust z-score).
    value_high = F.robust_zscore(values)
    # Condition: value_high above 5.59 at the point itself.
    flagged &= value_high > 5.59

    # noise_ratio: local noise (std over 20 points) relative to the window's usual step size.
    noise_ratio = F.rolling_std_ratio(values, 20)
    # Condition: noise_ratio above 12.8 at the point itself.
    flagged &= noise_ratio > 12.8
    return flagged.astype(np.int8)
