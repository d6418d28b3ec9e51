"""Cut a log into windows: by line count, by time span, or by session id.

A window is the sorted array of the line numbers it holds (session windows are not
contiguous: sessions interleave). It is anomalous when any of its lines is. Windows are
cut inside a range of lines ``[start, end)`` so that the parts of a time-ordered split never
share a window.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from anomamind.envs.log_loaders import LogData
from anomamind.types import DataError

WINDOW_KINDS = ("lines", "time", "session")


@dataclass
class LogWindowSpec:
    """How a log is cut: ``by`` lines (``size`` lines), time (``size`` seconds) or session.

    ``stride`` is the step between window starts (default ``size``: windows do not overlap);
    it does not apply to session windows.
    """

    by: str = "lines"
    size: float = 20
    stride: float | None = None

    def __post_init__(self) -> None:
        if self.by not in WINDOW_KINDS:
            raise DataError(f"log windows are cut by one of {WINDOW_KINDS}, got {self.by!r}")
        if self.by != "session" and not self.size > 0:
            raise DataError(f"log window size must be positive, got {self.size}")
        if self.stride is not None and not self.stride > 0:
            raise DataError(f"log window stride must be positive, got {self.stride}")
        if self.by == "lines" and (int(self.size) != self.size or (self.stride and int(self.stride) != self.stride)):
            raise DataError(f"windows by lines need whole numbers of lines, got size {self.size}, stride {self.stride}")

    @property
    def step(self) -> float:
        return self.stride or self.size

    def describe(self) -> str:
        if self.by == "session":
            return "one window per session"
        unit = "lines" if self.by == "lines" else "s"
        overlap = f", stride {self.step:g} {unit}" if self.step != self.size else ""
        return f"windows of {self.size:g} {unit}{overlap}"


def make_windows(data: LogData, spec: LogWindowSpec, start: int = 0, end: int | None = None) -> list[np.ndarray]:
    """The windows of lines ``[start, end)`` of ``data`` (see the module docstring)."""
    end = len(data) if end is None else end
    if not 0 <= start <= end <= len(data):
        raise DataError(f"line range {start}..{end} lies outside the {len(data)} lines of {data.name}")
    if start == end:
        return []
    if spec.by == "lines":
        size, step = int(spec.size), int(spec.step)
        return [np.arange(a, min(a + size, end)) for a in range(start, end, step)]
    if spec.by == "time":
        return _time_windows(data, spec, start, end)
    return _session_windows(data, start, end)


def _time_windows(data: LogData, spec: LogWindowSpec, start: int, end: int) -> list[np.ndarray]:
    if data.times is None or np.isnan(data.times[start:end]).any():
        raise DataError(f"{data.source or data.name}: windows by time need a time on every line; "
                        f"the {data.format or 'given'} lines have none")
    times = data.times[start:end]
    order = np.argsort(times, kind="stable")
    sorted_times = times[order]
    windows = []
    t = sorted_times[0]
    while t <= sorted_times[-1]:
        lo, hi = np.searchsorted(sorted_times, [t, t + spec.size], side="left")
        if hi > lo:
            windows.append(np.sort(order[lo:hi]) + start)
        t += spec.step
    return windows


def _session_windows(data: LogData, start: int, end: int) -> list[np.ndarray]:
    if not data.has_sessions:
        raise DataError(f"{data.source or data.name}: windows by session need session ids; "
                        f"the {data.format or 'given'} lines carry none")
    groups: dict[str, list[int]] = {}
    for i in range(start, end):
        session = data.sessions[i]
        if session is not None:
            groups.setdefault(session, []).append(i)
    return [np.asarray(rows, dtype=np.int64) for rows in groups.values()]


def window_labels(data: LogData, windows: list[np.ndarray]) -> np.ndarray:
    """1 for a window holding at least one anomalous line, else 0."""
    if data.labels is None:
        raise DataError(f"{data.source or data.name}: the log has no labels")
    return np.array([int(data.labels[w].any()) for w in windows], dtype=np.int8)


def window_lines(data: LogData, windows: list[np.ndarray]) -> list[list[str]]:
    """The raw lines of every window (what a rule's ``detect(lines)`` receives)."""
    return [[data.lines[i] for i in w] for w in windows]
