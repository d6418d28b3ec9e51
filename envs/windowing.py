"""Cut a series into windows that cover every point, the tail included.

The reference implementation drops the last partial window; here the last window is
anchored at the end of the series, so with stride == length every point lies in exactly
one window (the tail window is shorter), and with stride < length windows overlap.
"""

from __future__ import annotations

from anomamind.types import DataError, Series, Window


def window_bounds(n: int, length: int = 100, stride: int = 100) -> list[tuple[int, int]]:
    """Return ``[start, end)`` pairs covering ``range(n)``; the last one ends at ``n``."""
    if length <= 0 or stride <= 0:
        raise DataError(f"window length and stride must be positive (got {length}, {stride})")
    if n <= 0:
        raise DataError("cannot window an empty series")
    bounds = []
    start = 0
    while True:
        end = min(start + length, n)
        bounds.append((start, end))
        if end >= n:
            break
        start += stride
    return bounds


def make_windows(series: Series, length: int = 100, stride: int = 100) -> list[Window]:
    """Windows of ``series`` with absolute offsets and their slice of the labels."""
    windows = []
    for i, (start, end) in enumerate(window_bounds(len(series), length, stride)):
        labels = None if series.labels is None else series.labels[start:end]
        windows.append(
            Window(
                series_name=series.name,
                index=i,
                start=start,
                end=end,
                values=series.values[start:end],
                labels=labels,
            )
        )
    return windows
