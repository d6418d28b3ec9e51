"""Rule wsd-074: flags a point when ALL conditions below hold (mutated by the offline search from wsd-061)."""

import numpy as np

from anomamind.rules import features as F


def detect(values: np.ndarray) -> np.ndarray:
    """0/1 per point of one window of the series."""
    flagged = np.ones(values.size, dtype=bool)

    # noise_ratio: local noise (std over 20 points) relative to the window's usual step size.
    noise_ratio = F.rolling_std_ratio(values, 20)
    # Condition: noise_ratio above 5.64 at the point itself.
    flagged &= noise_ratio > 5.64

    # value_z: distance of the value from the window's median, in robust standard deviations.
    value_z = np.abs(F.robust_zscore(values))
    # Condition: value_z above 4.42 at the point itself.
    flagged &= value_z > 4.42

    # jump_z: size of the step into the point, in robust standard deviations of the steps.
    jump_z = np.abs(F.diff_zscore(values))
    # Condition: somewhere in the same window jump_z exceeds 7.12
    # (the whole window must look disturbed before any point is flagged).
    flagged &= bool(np.max(jump_z) > 7.12)
    return flagged.astype(np.int8)
