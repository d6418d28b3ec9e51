"""Render windows to PNG the way the locator (a VLM) sees them, and series for reports.

``render_window`` draws a window (optionally with context on both sides) with absolute
index ticks, a light grid every 10 points and min-max normalised values, at a fixed pixel
size. The default 768x256 px keeps a window to a few hundred image tokens (the reference
draws ~3570x1170 px at dpi 300, thousands of tokens); ``high_res=True`` gives that size.
Figures use the object-oriented Agg API (no pyplot state, safe in threads), fixed PNG
metadata and fixed fonts, so identical input gives identical bytes.
"""

from __future__ import annotations

import io
from typing import Any, Iterable, Sequence

import numpy as np

#: (width, height) in inches and dpi of the default and the high-resolution figure.
DEFAULT_SIZE, DEFAULT_DPI = (7.68, 2.56), 100
HIGH_RES_SIZE, HIGH_RES_DPI = (11.9, 3.9), 300
#: Shading colours by interval kind; unknown kinds use "other".
SHADE_COLOURS: dict[str, str] = {
    "candidate": "#ff9f1c",
    "detected": "#e63946",
    "label": "#2a9d8f",
    "other": "#8d99ae",
}
_PNG_METADATA = {"Software": "anomamind", "Title": None, "Author": None, "Description": None}


def _shade_spans(shade: Any) -> list[tuple[int, int, str]]:
    """Normalise shading input: (start, end[, kind]) tuples, dicts or Interval objects."""
    spans = []
    for item in shade or ():
        if hasattr(item, "start") and hasattr(item, "end"):
            spans.append((int(item.start), int(item.end), str(getattr(item, "kind", "detected"))))
        elif isinstance(item, dict):
            start, end = item["interval"] if "interval" in item else (item["start"], item["end"])
            spans.append((int(start), int(end), str(item.get("kind", "detected"))))
        else:
            start, end, *kind = item
            spans.append((int(start), int(end), str(kind[0]) if kind else "detected"))
    return spans


def _tick_step(span: int, max_ticks: int = 12) -> int:
    """A 1-2-5 step giving at most ``max_ticks`` labels over ``span`` points."""
    for base in (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 2500, 5000, 10000):
        if span / base <= max_ticks:
            return base
    return int(10 ** np.ceil(np.log10(span / max_ticks)))


def _new_figure(size: tuple[float, float], dpi: int) -> tuple[Any, Any]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=size, dpi=dpi)
    FigureCanvasAgg(figure)
    return figure, figure.add_axes((0.06, 0.14, 0.92, 0.8))


def _png_bytes(figure: Any) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata=_PNG_METADATA)
    return buffer.getvalue()


def render_window(
    values: np.ndarray,
    start: int,
    end: int,
    *,
    context: int = 0,
    shade: Iterable[Any] | None = None,
    high_res: bool = False,
    normalise: bool = True,
) -> bytes:
    """PNG bytes of ``values[start:end]`` (``end`` exclusive) plus ``context`` points each side.

    Ticks are absolute series indices; context outside the window is greyed. ``shade``
    holds intervals to colour, as ``(start, end, kind)`` tuples (inclusive, absolute),
    dicts with ``interval``/``start``+``end`` and ``kind``, or objects with ``start``/``end``;
    kinds: candidate, detected, label (others drawn grey). With ``normalise`` the
    drawn values are min-max scaled to [0, 1] over the drawn span.
    """
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    if not 0 <= start < end <= values.size:
        raise ValueError(f"window [{start}, {end}) is not inside a series of {values.size} points")
    if context < 0:
        raise ValueError(f"context must be >= 0, got {context}")
    lo, hi = max(0, start - context), min(values.size, end + context)
    y = values[lo:hi]
    if normalise:
        span = float(y.max() - y.min())
        y = (y - y.min()) / span if span > 0 else np.zeros_like(y)
    x = np.arange(lo, hi)
    size, dpi = (HIGH_RES_SIZE, HIGH_RES_DPI) if high_res else (DEFAULT_SIZE, DEFAULT_DPI)
    figure, axes = _new_figure(size, dpi)
    line_width = 1.2 if high_res else 1.0
    axes.plot(x, y, color="#1d3557", linewidth=line_width)
    if lo < start:
        axes.axvspan(lo - 0.5, start - 0.5, color="#000000", alpha=0.06, linewidth=0)
    if end < hi:
        axes.axvspan(end - 0.5, hi - 0.5, color="#000000", alpha=0.06, linewidth=0)
    for s, e, kind in _shade_spans(shade):
        colour = SHADE_COLOURS.get(kind, SHADE_COLOURS["other"])
        axes.axvspan(max(s, lo) - 0.5, min(e, hi - 1) + 0.5, color=colour, alpha=0.3, linewidth=0)
    axes.set_xlim(lo - 0.5, hi - 0.5)
    if normalise:
        axes.set_ylim(-0.05, 1.05)
    step = _tick_step(hi - lo)
    first = int(np.ceil(lo / step) * step)
    axes.set_xticks(np.arange(first, hi, step))
    grid_step = 10 if (hi - lo) <= 400 else step
    axes.set_xticks(np.arange(int(np.ceil(lo / grid_step) * grid_step), hi, grid_step), minor=True)
    axes.grid(True, which="minor", axis="x", color="#cccccc", linewidth=0.5)
    axes.grid(True, which="major", axis="both", color="#bbbbbb", linewidth=0.6)
    axes.tick_params(labelsize=7 if not high_res else 9)
    return _png_bytes(figure)


def plot_series_with_intervals(
    values: np.ndarray,
    *,
    labels: np.ndarray | None = None,
    detections: Sequence[Any] | None = None,
    title: str = "",
    high_res: bool = False,
) -> bytes:
    """PNG of a whole series for reports: true anomalies (labels, 0/1 per point) shaded
    green, detected intervals (inclusive ``(start, end)`` pairs or Interval objects) red."""
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    if labels is not None and np.asarray(labels).shape != values.shape:
        raise ValueError(f"labels have {np.asarray(labels).size} points but values have {values.size}")
    from anomamind.tools.evidence import runs

    size, dpi = (HIGH_RES_SIZE, HIGH_RES_DPI) if high_res else ((12.0, 3.0), DEFAULT_DPI)
    figure, axes = _new_figure(size, dpi)
    axes.plot(np.arange(values.size), values, color="#1d3557", linewidth=0.8)
    if labels is not None:
        for s, e in runs(np.asarray(labels).astype(bool)):
            axes.axvspan(s - 0.5, e + 0.5, color=SHADE_COLOURS["label"], alpha=0.3, linewidth=0)
    for s, e, _ in _shade_spans(detections):
        axes.axvspan(s - 0.5, e + 0.5, ymin=0.0, ymax=0.5, color=SHADE_COLOURS["detected"], alpha=0.35, linewidth=0)
    axes.set_xlim(-0.5, values.size - 0.5)
    axes.grid(True, color="#dddddd", linewidth=0.5)
    axes.tick_params(labelsize=7)
    if title:
        axes.set_title(title, fontsize=9)
    return _png_bytes(figure)
