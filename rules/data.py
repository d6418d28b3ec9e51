"""Training data for rules: the deterministic train/validation/test split by series, and
the concatenated arrays the loop scores on.

Series are dealt into folds by the hash of their name
(:func:`anomamind.eval.point_metrics.assign_folds`), so the split depends only on the
names, never on the labels, and the same series always land in the same part.
Thresholds are searched on ``train``, candidates compared and selected on ``validation``,
and only ``test`` is reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from anomamind.eval.point_metrics import assign_folds
from anomamind.rules.rule import rule_windows
from anomamind.types import DataError, Series

SPLIT_NAMES = ("train", "validation", "test")


@dataclass
class SplitSpec:
    """Which of ``n_folds`` hash folds form each part (the rest of the folds are unused)."""

    n_folds: int = 5
    train: tuple[int, ...] = (0, 1)
    validation: tuple[int, ...] = (2,)
    test: tuple[int, ...] = (3, 4)

    def __post_init__(self) -> None:
        parts = [set(self.train), set(self.validation), set(self.test)]
        if any(not p for p in parts[:2]):
            raise DataError("the rule split needs at least one train fold and one validation fold")
        if parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2]:
            raise DataError(f"train, validation and test folds overlap: {self}")
        if any(f < 0 or f >= self.n_folds for p in parts for f in p):
            raise DataError(f"fold numbers must lie in 0..{self.n_folds - 1}: {self}")


def split_series(series: list[Series], spec: SplitSpec) -> dict[str, list[Series]]:
    """Deal ``series`` into train / validation / test by the hash of their names."""
    folds = assign_folds([s.name for s in series], spec.n_folds)
    parts: dict[str, list[Series]] = {name: [] for name in SPLIT_NAMES}
    for s, fold in zip(series, folds):
        for name in SPLIT_NAMES:
            if fold in getattr(spec, name):
                parts[name].append(s)
    return parts


@dataclass
class SplitData:
    """Series of one split concatenated end to end.

    ``starts`` are the series offsets; ``bounds`` the rule windows as absolute offsets into
    ``values`` (a window never crosses a series boundary); ``base`` the concatenated 0/1
    predictions of a base detector when rules are trained for combination with one.
    """

    series: list[Series]
    values: np.ndarray
    labels: np.ndarray
    starts: np.ndarray
    bounds: list[tuple[int, int]]
    base: np.ndarray | None = None
    window_series: list[int] = field(default_factory=list)  # series index of each window

    @property
    def n_points(self) -> int:
        return int(self.values.size)


def build_split(
    series: list[Series], window_length: int, base_predictions: list[np.ndarray] | None = None
) -> SplitData:
    """Concatenate labelled ``series`` and cut them into rule windows."""
    if not series:
        raise DataError("cannot build a rule training split from zero series")
    unlabelled = [s.name for s in series if s.labels is None]
    if unlabelled:
        raise DataError(f"rule training needs labels; unlabelled series: {unlabelled[:5]}")
    lengths = np.array([len(s) for s in series])
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    bounds: list[tuple[int, int]] = []
    window_series: list[int] = []
    for i, (s, offset) in enumerate(zip(series, starts)):
        for a, b in rule_windows(len(s), window_length):
            bounds.append((int(offset + a), int(offset + b)))
            window_series.append(i)
    base = None
    if base_predictions is not None:
        base = np.concatenate([np.asarray(p, dtype=bool) for p in base_predictions])
    return SplitData(
        series=series,
        values=np.concatenate([s.values for s in series]),
        labels=np.concatenate([s.labels for s in series]).astype(bool),
        starts=starts,
        bounds=bounds,
        base=base,
        window_series=window_series,
    )
