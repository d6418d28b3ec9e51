"""Training data for log rules: a time-ordered split of one log into train / validation / test.

The first ``train`` share of the lines is where rules are searched (and where Drain learns
its templates and the baselines are fitted), the next ``validation`` share is where
candidates are compared and the rule set is selected, and the rest is the test part, used
only for the reported numbers. Each part is cut into windows on its own, so no window spans
two parts (a session that straddles a boundary is cut in two).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from anomamind.envs.log_loaders import LogData
from anomamind.envs.log_templates import TemplateOptions, parse_templates
from anomamind.envs.log_windows import LogWindowSpec, make_windows, window_labels, window_lines
from anomamind.eval.point_metrics import point_prf
from anomamind.types import DataError

PART_NAMES = ("train", "validation", "test")


@dataclass
class LogSplitSpec:
    """Shares of the lines (in time order) for training and validation; the rest is test."""

    train: float = 0.6
    validation: float = 0.2

    def __post_init__(self) -> None:
        if not (0 < self.train < 1 and 0 < self.validation < 1 and self.train + self.validation <= 1):
            raise DataError(f"log split shares must be positive and sum to at most 1: train {self.train}, "
                            f"validation {self.validation}")

    def bounds(self, n_lines: int) -> dict[str, tuple[int, int]]:
        """Line range ``[start, end)`` of each part."""
        a = int(round(self.train * n_lines))
        b = int(round((self.train + self.validation) * n_lines))
        return {"train": (0, a), "validation": (a, b), "test": (b, n_lines)}


@dataclass
class LogPart:
    """One part of the split: its windows (line numbers into ``data``), their labels and the
    template column of each line (fitted on the training part)."""

    name: str
    data: LogData
    start: int
    end: int
    windows: list[np.ndarray]
    labels: np.ndarray  # 0/1 per window
    columns: np.ndarray  # template column per line of the whole log (-1: unseen in training)
    templates: list[str]  # the text of each template column (Drain's, fitted on the training part)
    base: np.ndarray | None = None  # a base detector's 0/1 per window, when training for combination

    @property
    def n_templates(self) -> int:
        return len(self.templates)

    @property
    def n_lines(self) -> int:
        return self.end - self.start

    def texts(self, indices: list[int] | np.ndarray | None = None) -> list[list[str]]:
        """The raw lines of the windows (all, or those at ``indices``)."""
        chosen = range(len(self.windows)) if indices is None else indices
        return window_lines(self.data, [self.windows[k] for k in chosen])

    def counts(self) -> np.ndarray:
        """Window x template count matrix; the last column counts lines of no training template."""
        out = np.zeros((len(self.windows), self.n_templates + 1), dtype=np.float64)
        for k, rows in enumerate(self.windows):
            np.add.at(out[k], self.columns[rows], 1.0)  # column -1 is the "unseen" column
        return out

    def line_recall(self, flags: np.ndarray) -> float:
        """Share of the part's anomalous lines that lie in a flagged window (NaN without any)."""
        labels = self.data.labels[self.start:self.end].astype(bool)
        if not labels.any():
            return float("nan")
        covered = np.zeros(self.n_lines, dtype=bool)
        for k in np.flatnonzero(flags):
            covered[self.windows[k] - self.start] = True
        return float((covered & labels).sum() / labels.sum())

    def scores(self, flags: np.ndarray) -> dict[str, float]:
        """Window-level precision, recall and F1 of 0/1 ``flags``, and line-level recall."""
        precision, recall, f1 = point_prf(self.labels, flags)
        return {"precision": precision, "recall": recall, "f1": f1, "line_recall": self.line_recall(flags),
                "flagged": int(np.count_nonzero(flags))}

    def summary(self) -> dict[str, int]:
        return {"lines": self.n_lines, "windows": len(self.windows),
                "alert_windows": int(self.labels.sum()),
                "alert_lines": int(self.data.labels[self.start:self.end].sum())}


def split_log(
    data: LogData,
    window: LogWindowSpec,
    spec: LogSplitSpec | None = None,
    templates: TemplateOptions | None = None,
) -> dict[str, LogPart]:
    """Cut ``data`` into its train / validation / test parts (see the module docstring)."""
    if not data.has_labels:
        raise DataError(f"{data.source or data.name}: rule training needs labels, and this log has none")
    spec = spec or LogSplitSpec()
    bounds = spec.bounds(len(data))
    train_end = bounds["train"][1]
    columns, names = parse_templates(data.messages, fit_end=train_end, options=templates)
    parts = {}
    for name in PART_NAMES:
        start, end = bounds[name]
        windows = make_windows(data, window, start, end)
        parts[name] = LogPart(name, data, start, end, windows, window_labels(data, windows) if windows else
                              np.zeros(0, dtype=np.int8), columns, names)
    for name in ("train", "validation"):
        if not parts[name].windows:
            raise DataError(f"{data.name}: the {name} part has no window ({bounds[name]} lines, {window.describe()})")
    if not parts["train"].labels.any():
        raise DataError(f"{data.name}: the training part holds no anomalous window; rules cannot be searched")
    return parts
