"""Rule iops-036: flags a point when ALL conditions below hold (proposed by the offline search)."""

import numpy as np

from anomamind.rules import features as F


def detect(values: np.ndarray) -> np.ndarray:
    """0/1 per point of one window of the series."""
    flagged = np.ones(values.size, dtype=bool)

    # value_high: how far ABOVE the window's median the value lies (robust z-score).
    value_high = F.robust_zscore(values)
    # Condition: value_high above 2.51 at the point itself.
    flagged &= value_high > 2.51

    # noise_ratio: local noise (std over 20 points) relative to the window's usual step size.
    noise_ratio = F.rolling_std_ratio(values, 20)
    # Condition: noise_ratio above 2.48 at the point itself.
    flagged &= noise_ratio > 2.48

    # Condition: somewhere in the same window noise_ratio exceeds 5.13
    # (the whole window must look disturbed before any point is flagged).
    flagged &= bool(np.max(noise_ratio) > 5.13)

    # Anomalies are ranges: also flag the 1 point(s) on each side of a flagged point.
    flagged = F.dilate(flagged, 1)
    return flagged.astype(np.int8)
