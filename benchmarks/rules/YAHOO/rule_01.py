"""Rule yahoo-005: flags a point when ALL conditions below hold (proposed by the offline search)."""

import numpy as np

from anomamind.rules import features as F


def detect(values: np.ndarray) -> np.ndarray:
    """0/1 per point of one window of the series."""
    flagged = np.ones(values.size, dtype=bool)

    # jump_z: size of the step into the point, in robust standard deviations of the steps.
    jump_z = np.abs(F.diff_zscore(values))
    # Condition: jump_z above 3.54 at the point itself.
    flagged &= jump_z > 3.54

    # local_z: distance from the running median of the 11 surrounding points (contextual outlier).
    local_z = np.abs(F.local_deviation(values, 11))
    # Condition: local_z above 1.8 at the point itself.
    flagged &= local_z > 1.8
    return flagged.astype(np.int8)
