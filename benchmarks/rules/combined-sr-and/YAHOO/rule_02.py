"""Rule yahoo-015: flags a point when ALL conditions below hold (mutated by the offline search from yahoo-001)."""

import numpy as np

from anomamind.rules import features as F


def detect(values: np.ndarray) -> np.ndarray:
    """0/1 per point of one window of the series."""
    flagged = np.ones(values.size, dtype=bool)

    # local_z: distance from the running median of the 11 surrounding points (contextual outlier).
    local_z = np.abs(F.local_deviation(values, 11))
    # Condition: local_z above 1.71 at the point itself.
    flagged &= local_z > 1.71

    # jump_z: size of the step into the point, in robust standard deviations of the steps.
    jump_z = np.abs(F.diff_zscore(values))
    # Condition: jump_z above 3.86 at the point itself.
    flagged &= jump_z > 3.86
    return flagged.astype(np.int8)
