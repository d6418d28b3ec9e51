"""Rule tods-022: flags a point when ALL conditions below hold (mutated by the offline search from tods-012)."""

import numpy as np

from anomamind.rules import features as F


def detect(values: np.ndarray) -> np.ndarray:
    """0/1 per point of one window of the series."""
    flagged = np.ones(values.size, dtype=bool)

    # jump_z: size of the step into the point, in robust standard deviations of the steps.
    jump_z = np.abs(F.diff_zscore(values))
    # Condition: jump_z above 1.79 at the point itself.
    flagged &= jump_z > 1.79
    return flagged.astype(np.int8)
