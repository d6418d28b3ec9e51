"""Rule iops-079: flags a point when ALL conditions below hold (mutated by the offline search from iops-067)."""

import numpy as np

from anomamind.rules import features as F


def detect(values: np.ndarray) -> np.ndarray:
    """0/1 per point of one window of the series."""
    flagged = np.ones(values.size, dtype=bool)

    # noise_ratio: local noise (std over 20 points) relative to the window's usual step size.
    noise_ratio = F.rolling_std_ratio(values, 20)
    # Condition: noise_ratio above 3.55 at the point itself.
    flagged &= noise_ratio > 3.55

    # local_z: distance from the running median of the 11 surrounding points (contextual outlier).
    local_z = np.abs(F.local_deviation(values, 11))
    # Condition: local_z above 13.6 at the point itself.
    flagged &= local_z > 13.6

    # Anomalies are ranges: also flag the 2 point(s) on each side of a flagged point.
    flagged = F.dilate(flagged, 2)
    return flagged.astype(np.int8)
