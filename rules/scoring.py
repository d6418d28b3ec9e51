"""Scores of rule flags against labels over many series, and the AND/OR combination.

The training loop scores thousands of candidate flag arrays, so scores are computed on
one concatenated array with per-series sums (``np.add.reduceat``) rather than one
``point_prf`` call per series; the numbers are the same macro-averaged point F1 that
:func:`anomamind.eval.point_metrics.point_prf` gives series by series (checked in tests).
"""

from __future__ import annotations

import numpy as np

from anomamind.rules.rule import COMBINE_MODES


def combine(base: np.ndarray | None, flags: np.ndarray, mode: str | None) -> np.ndarray:
    """Flags after combination with a base detector's 0/1 prediction.

    ``and`` keeps only base detections the rules confirm (removes false positives);
    ``or`` adds rule detections to the base's (recovers missed anomalies).
    """
    if base is None or mode is None:
        return flags
    if mode not in COMBINE_MODES:
        raise ValueError(f"unknown combination mode {mode!r}; use one of {COMBINE_MODES}")
    return (base & flags) if mode == "and" else (base | flags)


class MacroF1:
    """Macro-averaged point F1 of flag arrays over a fixed set of concatenated series."""

    def __init__(self, labels: np.ndarray, starts: np.ndarray):
        self.labels = np.asarray(labels, dtype=bool)
        self.starts = np.asarray(starts, dtype=np.int64)
        self.n_true = np.add.reduceat(self.labels, self.starts, dtype=np.int64)

    def per_series(self, flags: np.ndarray) -> np.ndarray:
        """Point F1 of every series (0 where a series has no anomalies or no detections)."""
        flags = np.asarray(flags, dtype=bool)
        tp = np.add.reduceat(flags & self.labels, self.starts, dtype=np.int64)
        n_pred = np.add.reduceat(flags, self.starts, dtype=np.int64)
        denominator = n_pred + self.n_true
        return np.divide(2.0 * tp, denominator, out=np.zeros(tp.size), where=denominator > 0)

    def __call__(self, flags: np.ndarray) -> float:
        return float(self.per_series(flags).mean()) if self.starts.size else 0.0
