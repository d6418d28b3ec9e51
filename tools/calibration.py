"""Label-free calibration: a score's threshold from the series itself, at a target
false-alarm rate, with the tail of the normal scores extrapolated from their bulk.

A series' upper tail cannot tell heavy-tailed noise from anomalies: where anomalies are
dense (TODS labels 4-8% of its points), every high quantile lies inside them, and a tail
fitted to the top scores (peaks over threshold, the SPOT family) puts the threshold above
most of them. So the tail is read below the top ``contamination`` of the scores: a
generalised Pareto tail through the ``1 - k``, ``1 - 2k`` and ``1 - 4k`` quantiles
(``k = contamination``), its shape by Pickands' estimator (Pickands, Ann. Statist. 1975),
anchored at the ``1 - k`` quantile. Heavy-tailed bulks get high levels, light-tailed ones
low levels, and anomalies on a few percent of the points move the level little (6% far
above unit noise: 2.5 -> 3.8 at ``k = 0.15``) instead of lifting it into them. The level
never exceeds the series' own ``1 - rate`` quantile: the normal points are a subset of all,
so their tail is no heavier (this also bounds bulks no Pareto tail fits, a smooth periodic
series). The price of reading the bulk: a tail that grows heavier only far beyond it
(Student-t noise) is underestimated, so such series keep more false alarms than a fit to
the top would leave.
"""

from __future__ import annotations

import math

import numpy as np

#: Default share of the top of a series' scores the tail is not read from (the label-free
#: settings derive their own ``contamination``; this is the value derived on dev).
CONTAMINATION = 0.15


def tail_level(scores: np.ndarray, rate: float, contamination: float = CONTAMINATION) -> float:
    """The level a fraction ``rate`` of the normal ``scores`` is expected to exceed, from
    the bulk below the top ``contamination`` (NaN/inf ignored; +inf for no finite score).

    ``rate`` in (0, 1), ``contamination`` in (0, 0.25]. A rate inside the bulk
    (``rate >= contamination``), or a bulk too tied to give a shape (a series flat for
    most of its length), gets the empirical ``1 - rate`` quantile.
    """
    if not 0 < rate < 1:
        raise ValueError(f"false-alarm rate must be in (0, 1), got {rate}")
    if not 0 < contamination <= 0.25:
        raise ValueError(f"contamination must be in (0, 0.25], got {contamination}")
    x = np.asarray(scores, dtype=np.float64)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return math.inf
    k = contamination
    empirical, top, mid, low = (float(q) for q in np.quantile(x, [1 - rate, 1 - k, 1 - 2 * k, 1 - 4 * k]))
    upper, lower = top - mid, mid - low
    if rate >= k or upper <= 0 or lower <= 0:
        return empirical
    shape = math.log2(upper / lower)  # Pickands: the spacings grow by 2**shape per halving
    ratio = rate / k  # survival beyond the anchor, < 1
    try:
        if abs(shape) < 1e-9:  # exponential tail
            level = top - upper / math.log(2.0) * math.log(ratio)
        else:
            scale = upper * shape * 2.0**shape / (2.0**shape - 1.0)  # the Pareto scale at the anchor
            level = top + scale / shape * (ratio**-shape - 1.0)
    except OverflowError:  # a tail too heavy for float64
        return empirical
    return min(level, empirical)  # the normal points are a subset: their tail is no heavier than all points'
