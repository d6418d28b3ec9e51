"""Render windows to PNG the way the locator (a VLM) sees them, and whole series with
their detections for people (``anomamind detect``'s detection.png).

``render_window`` draws a window (optionally with context on both sides) with absolute
index ticks, a light grid every 10 points and min-max normalised values, at a fixed pixel
size. The default 768x256 px keeps a window to a few hundred image tokens (the reference
draws ~3570x1170 px at dpi 300, thousands of tokens); ``high_res=True`` gives that size.

``render_detection`` draws a whole series of any length (min/max per pixel column beyond a
few thousand points, so 10M points draw in about a second) with every detected interval
visible: a minimum drawn width, markers on short detections, a strip of the detected (and
labelled) ranges under the series, colour by confidence, and, for long series, a zoom
panel per cluster of detections. Times, when the series has them, label the x axis.

Figures use the object-oriented Agg API (no pyplot state, safe in threads), fixed PNG
metadata and fixed fonts, so identical input gives identical bytes.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
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


#: Colour of a detection by its confidence (1 low .. 3 high), and of labelled anomalies.
CONFIDENCE_COLOURS: dict[int, str] = {1: "#f4a261", 2: "#e76f51", 3: "#9d0208"}
LABEL_COLOUR = "#2a9d8f"
#: Width (inches) and dpi of detection.png; narrowest drawn detection, in pixels.
DETECTION_WIDTH, DETECTION_DPI = 14.0, 100
MIN_DRAWN_PIXELS = 3.0
#: Points per pixel column beyond which the series is drawn as its min/max envelope.
ENVELOPE_POINTS_PER_PIXEL = 2
#: Series longer than this get zoom panels (at most ZOOM_PANELS, ZOOM_COLUMNS per row).
ZOOM_MIN_LENGTH, ZOOM_PANELS, ZOOM_COLUMNS = 2000, 6, 3
#: Detections at most this many points apart form one zoom cluster.
ZOOM_CLUSTER_GAP = 50
#: Largest drawn marker count per confidence level (more add nothing visible).
MAX_MARKERS = 5000
_LEFT, _RIGHT = 0.95, 0.3  # inches
_TOP, _MAIN, _GAP, _STRIP, _TICKS = 0.5, 3.0, 0.06, 0.5, 0.5
_ZOOM_TITLE, _ZOOM, _BOTTOM = 0.35, 2.0, 0.1


@dataclass(frozen=True)
class DetectionLayout:
    """Figure size (inches) and the axes rectangles (figure fractions: left, bottom, width,
    height) of detection.png; tests locate pixels with it."""

    size: tuple[float, float]
    main: tuple[float, float, float, float]
    strip: tuple[float, float, float, float]
    zooms: tuple[tuple[float, float, float, float], ...]


def detection_layout(n_zooms: int) -> DetectionLayout:
    """The layout of a detection plot with ``n_zooms`` zoom panels."""
    rows = -(-n_zooms // ZOOM_COLUMNS)
    height = _TOP + _MAIN + _GAP + _STRIP + _TICKS + rows * (_ZOOM_TITLE + _ZOOM + _TICKS) + _BOTTOM
    width = DETECTION_WIDTH
    inner = width - _LEFT - _RIGHT

    def rect(left: float, top: float, w: float, h: float) -> tuple[float, float, float, float]:
        return (left / width, 1 - (top + h) / height, w / width, h / height)

    main = rect(_LEFT, _TOP, inner, _MAIN)
    strip = rect(_LEFT, _TOP + _MAIN + _GAP, inner, _STRIP)
    zooms = []
    panel_gap = 0.35
    panel_w = (inner - (ZOOM_COLUMNS - 1) * panel_gap) / ZOOM_COLUMNS
    for k in range(n_zooms):
        row, col = divmod(k, ZOOM_COLUMNS)
        top = _TOP + _MAIN + _GAP + _STRIP + _TICKS + row * (_ZOOM_TITLE + _ZOOM + _TICKS) + _ZOOM_TITLE
        zooms.append(rect(_LEFT + col * (panel_w + panel_gap), top, panel_w, _ZOOM))
    return DetectionLayout((width, height), main, strip, tuple(zooms))


def detection_clusters(spans: Sequence[tuple[int, int, int]], gap: int = ZOOM_CLUSTER_GAP) -> list[tuple[int, int, int]]:
    """Detections (start, end, confidence), sorted, grouped into clusters no more than
    ``gap`` points apart: (start, end, highest confidence) per cluster."""
    clusters: list[list[int]] = []
    for s, e, c in sorted(spans):
        if clusters and s <= clusters[-1][1] + gap:
            clusters[-1][1] = max(clusters[-1][1], e)
            clusters[-1][2] = max(clusters[-1][2], c)
        else:
            clusters.append([s, e, c])
    return [(s, e, c) for s, e, c in clusters]


def render_detection(
    values: np.ndarray,
    intervals: Sequence[Any],
    *,
    labels: np.ndarray | None = None,
    timestamps: np.ndarray | None = None,
    title: str = "",
) -> bytes:
    """PNG bytes of a whole series with its detections (Interval objects or
    ``(start, end[, confidence])`` tuples; inclusive, absolute), labelled anomalies when
    ``labels`` is given, and ``timestamps`` (one per value) as x tick labels."""
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    n = values.size
    for name, other in (("labels", labels), ("timestamps", timestamps)):
        if other is not None and np.asarray(other).shape != values.shape:
            raise ValueError(f"{name} have {np.asarray(other).size} points but values have {n}")
    spans = [_span_with_confidence(iv) for iv in intervals]
    y, unit = drawable(values)
    clusters = detection_clusters(spans) if n > ZOOM_MIN_LENGTH and spans else []
    shown = sorted(sorted(clusters, key=lambda c: (-c[2], -_deviation(y, c[0], c[1]), c[0]))[:ZOOM_PANELS])
    layout = detection_layout(len(shown))
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=layout.size, dpi=DETECTION_DPI)
    FigureCanvasAgg(figure)
    main = figure.add_axes(layout.main)
    _draw_panel(main, y, spans, labels, 0, n, layout.main[2] * layout.size[0] * DETECTION_DPI, every_point=False)
    main.tick_params(labelbottom=False, labelsize=9)
    if unit:
        main.set_ylabel(f"value ({unit})", fontsize=9)
    strip = figure.add_axes(layout.strip, sharex=main)
    _draw_strip(strip, spans, labels, n, layout.strip[2] * layout.size[0] * DETECTION_DPI)
    _label_x(strip, 0, n, timestamps)
    heading = f"{title or 'series'}: {len(spans)} detected interval(s)"
    if len(clusters) > len(shown):
        heading += f"; zooms on the {len(shown)} most confident of {len(clusters)} clusters"
    figure.suptitle(heading, fontsize=11, x=_LEFT / layout.size[0], y=1 - 0.12 / layout.size[1], ha="left")
    _legend(figure, layout, labels is not None and bool(np.any(labels)))
    for k, (cs, ce, cc) in enumerate(shown):
        context = max(30, ce - cs + 1)
        lo, hi = max(0, cs - context), min(n, ce + context + 1)
        axes = figure.add_axes(layout.zooms[k])
        width_px = layout.zooms[k][2] * layout.size[0] * DETECTION_DPI
        _draw_panel(axes, y, spans, labels, lo, hi, width_px)
        _label_x(axes, lo, hi, timestamps, max_ticks=4)
        axes.tick_params(labelsize=8)
        where = f"point {cs:,}" if cs == ce else f"points {cs:,}-{ce:,}"
        axes.set_title(f"zoom {k + 1}: {where} (confidence {cc})", fontsize=9)
    return _png_bytes(figure)


def _span_with_confidence(item: Any) -> tuple[int, int, int]:
    if hasattr(item, "start") and hasattr(item, "end"):
        return int(item.start), int(item.end), int(getattr(item, "confidence", 2))
    start, end, *rest = item
    return int(start), int(end), int(rest[0]) if rest else 2


#: Above this magnitude values are drawn in units of a power of ten: matplotlib's axis
#: arithmetic (ranges, margins, ticks) overflows near the float64 limit (~1.8e308).
PLOT_MAGNITUDE = 1e100


def drawable(values: np.ndarray) -> tuple[np.ndarray, str]:
    """Values matplotlib can lay out (non-finite ones become gaps), and the unit they are
    drawn in ("" or "x 1eK" beyond :data:`PLOT_MAGNITUDE`)."""
    values = np.asarray(values, dtype=np.float64)
    values = np.where(np.isfinite(values), values, np.nan)
    peak = float(np.nanmax(np.abs(values))) if np.isfinite(values).any() else 0.0
    if peak < PLOT_MAGNITUDE:
        return values, ""
    exponent = int(np.floor(np.log10(peak)))
    return values / 10.0**exponent, f"x 1e{exponent}"


def envelope(y: np.ndarray, lo: int, hi: int, width_px: float) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) to draw ``y[lo:hi]``: the points themselves, or beyond a few points per pixel
    the min and max of each pixel column's bin (every extreme stays visible)."""
    count = hi - lo
    bins = int(width_px)
    if count <= ENVELOPE_POINTS_PER_PIXEL * bins:
        return np.arange(lo, hi), y[lo:hi]
    size = -(-count // bins)
    padded = np.full(bins * size, np.nan)
    padded[:count] = y[lo:hi]
    blocks = padded.reshape(bins, size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN tail bin
        low, high = np.nanmin(blocks, axis=1), np.nanmax(blocks, axis=1)
    starts = lo + np.arange(bins) * size
    keep = starts < hi
    x = np.repeat(starts[keep] + size / 2, 2)
    return x, np.column_stack((low[keep], high[keep])).reshape(-1)


def _spans_in(spans: Sequence[tuple[int, int, int]], lo: int, hi: int, count: int, width_px: float):
    """Per confidence, (left, width) bars of the spans inside [lo, hi), at least
    MIN_DRAWN_PIXELS wide."""
    min_width = MIN_DRAWN_PIXELS * count / max(width_px, 1.0)
    bars: dict[int, list[tuple[float, float]]] = {}
    for s, e, c in spans:
        if e < lo or s >= hi:
            continue
        width = e - s + 1
        left = s - 0.5
        if width < min_width:
            left, width = (s + e) / 2 - min_width / 2, min_width
        bars.setdefault(min(max(c, 1), 3), []).append((left, width))
    return bars


def _deviation(y: np.ndarray, start: int, end: int) -> float:
    """How far the most extreme value of ``y[start..end]`` lies from the series median."""
    part = y[start : end + 1]
    part = part[np.isfinite(part)]
    return float(np.abs(part - np.nanmedian(y)).max()) if part.size else 0.0


def _marked_points(spans, lo: int, hi: int, confidence: int, y: np.ndarray, every_point: bool) -> list[int]:
    """Points to mark on the curve: every point of short detections (zoom panels), or
    the most extreme point of each (the whole-series panel, where neighbours would blur)."""
    median = np.nanmedian(y)
    points = []
    for s, e, c in spans:
        if c != confidence or e - s >= 20 or e < lo or s >= hi:
            continue
        inside = range(max(s, lo), min(e, hi - 1) + 1)
        points += list(inside) if every_point else [max(inside, key=lambda t: abs(y[t] - median))]
    return points


def _draw_panel(
    axes: Any, y: np.ndarray, spans, labels, lo: int, hi: int, width_px: float, every_point: bool = True
) -> None:
    """Series line (or envelope), shaded detections with a minimum width, markers on short
    detections, labelled anomalies as a band at the bottom."""
    x, line = envelope(y, lo, hi, width_px)
    axes.plot(x, line, color="#1d3557", linewidth=0.8, zorder=2)
    transform = axes.get_xaxis_transform()
    for confidence, bars in sorted(_spans_in(spans, lo, hi, hi - lo, width_px).items()):
        axes.broken_barh(bars, (0, 1), transform=transform, color=CONFIDENCE_COLOURS[confidence], alpha=0.35, linewidth=0, zorder=1)
    for confidence in (1, 2, 3):
        points = _marked_points(spans, lo, hi, confidence, y, every_point)
        if points:
            idx = np.asarray(points[:MAX_MARKERS])
            axes.scatter(idx, y[idx], s=22, color=CONFIDENCE_COLOURS[confidence], edgecolors="black", linewidths=0.4, zorder=3)
    if labels is not None:
        from anomamind.tools.evidence import runs

        bars = [(s - 0.5, e - s + 1) for s, e in runs(np.asarray(labels[lo:hi]).astype(bool), lo)]
        if bars:
            axes.broken_barh(bars, (0, 0.04), transform=transform, color=LABEL_COLOUR, linewidth=0, zorder=1)
    axes.set_xlim(lo - 0.5, hi - 0.5)
    finite = line[np.isfinite(line)]
    if finite.size:
        low, high = float(finite.min()), float(finite.max())
        pad = 0.06 * (high - low) if high > low else max(abs(high), 1.0) * 0.06
        axes.set_ylim(low - pad, high + pad)
    axes.grid(True, color="#dddddd", linewidth=0.5)


def _draw_strip(axes: Any, spans, labels, n: int, width_px: float) -> None:
    """Detected ranges as solid bars (colour = confidence, at least MIN_DRAWN_PIXELS wide)
    and, with labels, the labelled ranges in a second row."""
    rows = {"detected": (0.55, 0.4)} if labels is not None else {"detected": (0.1, 0.8)}
    for confidence, bars in sorted(_spans_in(spans, 0, n, n, width_px).items()):
        axes.broken_barh(bars, rows["detected"], color=CONFIDENCE_COLOURS[confidence], linewidth=0)
    ticks, names = [sum(rows["detected"]) - rows["detected"][1] / 2], ["detected"]
    if labels is not None:
        from anomamind.tools.evidence import runs

        label_spans = [(s, e, 1) for s, e in runs(np.asarray(labels).astype(bool))]
        bars = [b for group in _spans_in(label_spans, 0, n, n, width_px).values() for b in group]
        axes.broken_barh(bars, (0.05, 0.4), color=LABEL_COLOUR, linewidth=0)
        ticks.append(0.25)
        names.append("labelled")
    axes.set_ylim(0, 1)
    axes.set_yticks(ticks)
    axes.set_yticklabels(names, fontsize=9)
    axes.tick_params(axis="x", labelsize=9)
    axes.grid(True, axis="x", color="#dddddd", linewidth=0.5)


def _label_x(axes: Any, lo: int, hi: int, timestamps: np.ndarray | None, max_ticks: int = 10) -> None:
    """Index ticks (thousands separated), or the timestamps at those indices."""
    step = _tick_step(max(hi - lo, 1), max_ticks)
    ticks = np.arange(int(np.ceil(lo / step) * step), hi, step)
    axes.set_xticks(ticks)
    if timestamps is None:
        axes.set_xticklabels([f"{t:,}" for t in ticks])
        return
    stamps = np.asarray(timestamps)[ticks]
    if np.issubdtype(stamps.dtype, np.datetime64):
        text = [str(t)[:16].replace("T", "\n") for t in np.datetime_as_string(stamps, unit="m")]
    else:
        text = [f"{t:g}" for t in stamps]
    axes.set_xticklabels(text)


def _legend(figure: Any, layout: DetectionLayout, with_labels: bool) -> None:
    """Colour key above the main panel, right-aligned (never over the data)."""
    from matplotlib.patches import Patch

    handles = [Patch(color=CONFIDENCE_COLOURS[c], label=f"confidence {c}") for c in (1, 2, 3)]
    if with_labels:
        handles.append(Patch(color=LABEL_COLOUR, label="labelled anomaly"))
    width, height = layout.size
    figure.legend(
        handles=handles, loc="upper right", bbox_to_anchor=(1 - _RIGHT / width, 1 - 0.02 / height),
        fontsize=9, ncol=len(handles), frameon=False,
    )
