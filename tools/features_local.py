"""Local structural feature tools: difference z-scores, spikes/dips, level shifts,
variance changes, flat (stuck) segments.

"Local" means the evidence comes from a point's neighbourhood (its differences, a rolling
median around it); scores are still scaled by statistics of the reference context so that
a threshold means the same thing across windows of a series. Raw numpy functions first.
"""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
import pandas as pd
from scipy import ndimage, signal

from anomamind.tools.context import Bounds, ToolArgumentError, ToolContext, robust_location_scale, tail_scale
from anomamind.tools.evidence import POINT_CAP, describe_runs, flagged_points, num, runs
from anomamind.tools.features_statistical import _zscore_output

#: Reference points used for the scale of local statistics (the trailing part of the reference).
LOCAL_REFERENCE_CAP = 20_000


def diff_zscore(x: np.ndarray, ref: np.ndarray | None = None, order: int = 1, robust: bool = True) -> np.ndarray:
    """Z-score of the ``order``-th difference ending at each point, scaled by ``ref``'s differences.

    Aligned with ``x``: entry ``t`` scores ``diff(x, order)[t - order]``; the first
    ``order`` entries are 0. ``ref`` (a series, not its differences) defaults to ``x``.
    """
    x = np.asarray(x, dtype=np.float64)
    d = np.diff(x, n=order)
    dref = d if ref is None else np.diff(np.asarray(ref, dtype=np.float64), n=order)
    if robust:
        loc, scale = robust_location_scale(dref)
    else:
        loc, scale = float(dref.mean()), float(dref.std()) or 1e-9
    z = np.zeros_like(x)
    z[order:] = (d - loc) / scale
    return z


def local_residual(x: np.ndarray, half_width: int = 5) -> np.ndarray:
    """``x`` minus its centred rolling median of width ``2*half_width+1`` (edges: nearest)."""
    x = np.asarray(x, dtype=np.float64)
    return x - ndimage.median_filter(x, size=2 * half_width + 1, mode="nearest")


def sliding_median(x: np.ndarray, width: int) -> np.ndarray:
    """``median(x[j:j+width])`` for ``j = 0..len(x)-width`` (numpy for small inputs, pandas else)."""
    x = np.asarray(x, dtype=np.float64)
    if x.size < width:
        return np.zeros(0)
    if x.size * width <= 20_000:
        return np.median(np.lib.stride_tricks.sliding_window_view(x, width), axis=1)
    return pd.Series(x).rolling(width).median().to_numpy()[width - 1 :]


def level_step(x: np.ndarray, width: int = 10) -> np.ndarray:
    """``median(x[t:t+w]) - median(x[t-w:t])`` per point ``t``; NaN where a side is short."""
    x = np.asarray(x, dtype=np.float64)
    medians = sliding_median(x, width)  # medians[j] = median(x[j:j+w])
    step = np.full(x.size, np.nan)
    if x.size >= 2 * width:
        t = np.arange(width, x.size - width + 1)
        step[t] = medians[t] - medians[t - width]
    return step


def rolling_volatility(x: np.ndarray, width: int = 10) -> np.ndarray:
    """Robust volatility around each point: 1.4826 * centred rolling median of |diff|.

    Aligned with ``x`` (the difference ending at ``t`` is attributed to ``t``).
    """
    x = np.asarray(x, dtype=np.float64)
    d = np.abs(np.diff(x, prepend=x[:1]))
    if x.size > 1:
        d[0] = d[1]
    return 1.4826 * ndimage.median_filter(d, size=width, mode="nearest")


def flat_runs(x: np.ndarray, min_length: int = 5, tolerance: float = 0.0) -> list[tuple[int, int]]:
    """Inclusive ``(start, end)`` runs of >= ``min_length`` points with |step| <= tolerance.

    ``tolerance`` 0 means equal up to floating-point rounding.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.size < 2:
        return []
    tol = tolerance if tolerance > 0 else 1e-12 * max(1.0, float(np.abs(x).max()))
    still = np.abs(np.diff(x)) <= tol
    return [(s, e + 1) for s, e in runs(still) if e + 2 - s >= min_length]


def _range(ctx: ToolContext, start: int | None, end: int | None) -> tuple[int, int]:
    return ctx.resolve_range(start, end)


def _diff_range(ctx: ToolContext, start: int, end: int, order: int) -> tuple[np.ndarray, np.ndarray]:
    """Values of the range and the ``order``-th differences ending at each of its points."""
    lo = max(0, start - order)
    seg = ctx.values[lo : end + 1]
    d = np.diff(seg, n=order)
    pad = (end - start + 1) - d.size
    return ctx.values[start : end + 1], np.concatenate((np.full(pad, np.nan), d))


def global_diff_zscore(
    ctx: ToolContext,
    *,
    start: int | None = None,
    end: int | None = None,
    threshold: Annotated[float, Bounds(exclusive_minimum=0)] = 3.5,
    order: Annotated[int, Bounds(minimum=1, maximum=2)] = 1,
    robust: bool = True,
) -> dict[str, Any]:
    """Z-score of each point's first (order=1) or second (order=2) difference against the
    differences of the whole reference context; flags |z| > threshold. (Robust scale:
    the MAD-based std, raised for heavy-tailed steps so that about 1% of reference steps
    exceed 2.58.)

    A large |z| is an abrupt jump or drop relative to how the series usually moves: the
    edges of spikes, level shifts and sudden accelerations. Second differences highlight
    changes of slope. The score of point t uses the difference ending at t.

    Args:
        start: first index of the range (absolute, inclusive; default window start).
        end: last index of the range (absolute, inclusive; default window end).
        threshold: |z| above which a point is flagged.
        order: 1 for first differences, 2 for second differences.
        robust: median/MAD (true) or mean/std (false) of the reference differences.
    """
    start, end = _range(ctx, start, end)
    x, d = _diff_range(ctx, start, end, order)
    loc, scale = ctx.features.diff_location_scale(order) if robust else ctx.features.diff_mean_std(order)
    z = np.nan_to_num((d - loc) / scale)
    return _zscore_output(f"diff{order} z-score (global)", start, x, z, threshold)


def local_diff_zscore(
    ctx: ToolContext,
    *,
    start: int | None = None,
    end: int | None = None,
    threshold: Annotated[float, Bounds(exclusive_minimum=0)] = 3.5,
    order: Annotated[int, Bounds(minimum=1, maximum=2)] = 1,
) -> dict[str, Any]:
    """Robust z-score of each point's difference against the differences inside the range
    itself; flags |z| > threshold.

    Unlike the global version this adapts to the range's own volatility: it finds the
    jumps that stand out locally even in a noisy stretch (and misses a range that is
    uniformly abnormal). The range needs at least 4 points.

    Args:
        start: first index of the range (absolute, inclusive; default window start).
        end: last index of the range (absolute, inclusive; default window end).
        threshold: |z| above which a point is flagged.
        order: 1 for first differences, 2 for second differences.
    """
    start, end = _range(ctx, start, end)
    if end - start + 1 < 4:
        raise ToolArgumentError("local_diff_zscore needs a range of at least 4 points")
    x, d = _diff_range(ctx, start, end, order)
    valid = d[np.isfinite(d)]
    loc, scale = robust_location_scale(valid)
    scale = max(scale, 1e-3 * ctx.features.diff_location_scale(order)[1])
    z = np.nan_to_num((d - loc) / scale)
    return _zscore_output(f"diff{order} z-score (local)", start, x, z, threshold)


def _local_residual_scale(ctx: ToolContext, half_width: int) -> float:
    feats = ctx.features
    return feats.cached(
        ("local_residual_scale", half_width),
        lambda: tail_scale(local_residual(feats.reference[-LOCAL_REFERENCE_CAP:], half_width)),
    )


def spike_score(ctx: ToolContext, start: int, end: int, half_width: int = 5) -> np.ndarray:
    """Per-point spike score of ``start..end`` (see :func:`spikes_and_dips`)."""
    lo, hi = max(0, start - half_width), min(ctx.visible_end, end + half_width + 1)
    resid = local_residual(ctx.values[lo:hi], half_width)[start - lo : end - lo + 1]
    return resid / _local_residual_scale(ctx, half_width)


def spikes_and_dips(
    ctx: ToolContext,
    *,
    start: int | None = None,
    end: int | None = None,
    threshold: Annotated[float, Bounds(exclusive_minimum=0)] = 4.0,
    half_width: Annotated[int, Bounds(minimum=1, maximum=100)] = 5,
) -> dict[str, Any]:
    """Points far above (spikes) or below (dips) their neighbourhood's rolling median.

    Score = (x - rolling median of 2*half_width+1 points around it) / scale of the same
    residual over the reference (robust std, raised so that about 1% of reference points
    exceed 2.58: seasonal peaks and quantisation do not count as spikes). Short excursions score high; level shifts and
    slow trends do not (the median follows them). Output: spikes and dips separately,
    each with flagged points (capped) and runs.

    Args:
        start: first index of the range (absolute, inclusive; default window start).
        end: last index of the range (absolute, inclusive; default window end).
        threshold: score above which a point is a spike (or below -threshold a dip).
        half_width: half the rolling-median window; excursions up to about this long are found.
    """
    start, end = _range(ctx, start, end)
    score = spike_score(ctx, start, end, half_width)
    x = ctx.values[start : end + 1]
    up, down = np.flatnonzero(score > threshold), np.flatnonzero(score < -threshold)
    spikes = flagged_points(start + up, score[up], x[up])
    dips = flagged_points(start + down, score[down], x[down])
    parts = []
    for name, ev in (("spike", spikes), ("dip", dips)):
        if ev["count"]:
            parts.append(f"{ev['count']} {name} point(s) at {describe_runs(ev['runs'])}")
    return {
        "range": [start, end],
        "threshold": threshold,
        "spikes": spikes,
        "dips": dips,
        "max_score": num(score.max(), 3),
        "min_score": num(score.min(), 3),
        "summary": "; ".join(parts) if parts else f"no spike or dip beyond {threshold} in [{start},{end}]",
    }


def level_step_scale(ctx: ToolContext, width: int, deseasonalise: bool = True) -> float:
    """Tail scale of :func:`level_step` over the trailing reference (cached)."""
    from anomamind.tools.features_global import deseasonalised

    feats = ctx.features

    def compute() -> float:
        lo = max(0, feats.reference_end - LOCAL_REFERENCE_CAP)
        ref = deseasonalised(ctx, lo, feats.reference_end)[0] if deseasonalise else feats.reference[lo:]
        step = level_step(ref, width)
        step = step[np.isfinite(step)]
        return tail_scale(step) if step.size else feats.noise_scale

    return max(feats.cached(("level_step_scale", width, deseasonalise), compute), 1e-12)


def level_shifts(
    ctx: ToolContext,
    *,
    start: int | None = None,
    end: int | None = None,
    threshold: Annotated[float, Bounds(exclusive_minimum=0)] = 5.0,
    width: Annotated[int, Bounds(minimum=2, maximum=500)] = 10,
    deseasonalise: bool = True,
) -> dict[str, Any]:
    """Points where the level changes: median of the next `width` points minus median of
    the previous `width` points, scaled by how much that statistic varies in the reference
    (robust std, raised so that about 1% of the reference exceeds 2.58).

    Output: shifts (at most one per `width` points) with index (first point of the new
    level), level before/after (after removing the seasonal profile when deseasonalise
    is on), step in raw units and its score; a score above the
    threshold means a step larger than the series' usual drift or seasonal swing over
    `width` points. Near the series ends there are too few points to score.

    Args:
        start: first index of the range (absolute, inclusive; default window start).
        end: last index of the range (absolute, inclusive; default window end).
        threshold: |score| above which a step is reported.
        width: points on each side compared (the new level must last about this long).
        deseasonalise: remove the reference's seasonal profile first (when it has a period).
    """
    start, end = _range(ctx, start, end)
    from anomamind.tools.features_global import deseasonalised

    lo, hi = max(0, start - width), min(ctx.visible_end, end + width + 1)
    seg = deseasonalised(ctx, lo, hi)[0] if deseasonalise else ctx.values[lo:hi]
    step = level_step(seg, width)
    score = np.nan_to_num(step / level_step_scale(ctx, width, deseasonalise))
    offset = start - lo
    in_range = np.zeros(seg.size, dtype=bool)
    in_range[offset : end - lo + 1] = True
    peaks, _ = signal.find_peaks(np.abs(score), height=threshold, distance=width)
    peaks = peaks[in_range[peaks]]
    order = np.argsort(-np.abs(score[peaks]), kind="stable")[:POINT_CAP]
    shifts = []
    for p in sorted(peaks[order]):
        before = float(np.median(seg[max(0, p - width) : p]))
        after = float(np.median(seg[p : p + width]))
        shifts.append(
            {
                "index": lo + int(p),
                "before": num(before),
                "after": num(after),
                "step": num(after - before),
                "score": num(score[p], 3),
                "direction": "up" if step[p] > 0 else "down",
            }
        )
    ranged = np.abs(score[offset : end - lo + 1])
    best = int(np.argmax(ranged))
    summary = (
        f"{len(peaks)} level shift(s) above {threshold}: "
        + ", ".join(f"{s['direction']} {s['step']} at {s['index']} (score {s['score']})" for s in shifts[:3])
        if shifts
        else f"no level shift above {threshold}; max |score| {num(ranged[best], 3)} at {start + best}"
    )
    return {
        "range": [start, end],
        "threshold": threshold,
        "count": int(len(peaks)),
        "shifts": shifts,
        "max_abs_score": num(ranged[best], 3),
        "argmax": start + best,
        "summary": summary,
    }


def variance_changes(
    ctx: ToolContext,
    *,
    start: int | None = None,
    end: int | None = None,
    threshold: Annotated[float, Bounds(exclusive_minimum=1)] = 3.0,
    width: Annotated[int, Bounds(minimum=3, maximum=500)] = 10,
) -> dict[str, Any]:
    """Stretches whose local volatility differs from the reference's by a factor.

    Volatility = robust scale of the first differences in a centred `width`-point window;
    ratio = local / reference. Segments with ratio > threshold are "volatile" (bursts of
    noise, oscillation), with ratio < 1/threshold "calm" (damped or frozen signal). Output:
    segments with kind, span and peak ratio, and the range's median ratio.

    Args:
        start: first index of the range (absolute, inclusive; default window start).
        end: last index of the range (absolute, inclusive; default window end).
        threshold: factor (> 1) by which the volatility must differ.
        width: points in the rolling window.
    """
    start, end = _range(ctx, start, end)
    half = width // 2 + 1
    lo, hi = max(0, start - half), min(ctx.visible_end, end + half + 1)
    vol = rolling_volatility(ctx.values[lo:hi], width)[start - lo : end - lo + 1]
    ref_scale = ctx.features.diff_location_scale(1)[1]
    ratio = np.nan_to_num(vol / ref_scale, nan=1.0)
    segments = []
    for kind, mask in (("volatile", ratio > threshold), ("calm", ratio < 1.0 / threshold)):
        for s, e in runs(mask, start):
            seg = ratio[s - start : e - start + 1]
            peak = seg.max() if kind == "volatile" else seg.min()
            segments.append({"kind": kind, "interval": [s, e], "peak_ratio": num(peak, 3)})
    segments.sort(key=lambda item: item["interval"][0])
    median_ratio = float(np.median(ratio))
    return {
        "range": [start, end],
        "threshold": threshold,
        "median_ratio": num(median_ratio, 3),
        "max_ratio": num(ratio.max(), 3),
        "segments": segments[:POINT_CAP],
        "segment_count": len(segments),
        "summary": (
            ", ".join(f"{s['kind']} {s['interval'][0]}-{s['interval'][1]} (x{s['peak_ratio']})" for s in segments[:3])
            if segments
            else f"volatility within x{threshold} of the reference (median ratio {num(median_ratio, 3)})"
        ),
    }


def _reference_flat_runs(ctx: ToolContext) -> tuple[np.ndarray, float]:
    """(sorted lengths of runs of repeated values, share of zero steps) in the reference."""
    feats = ctx.features

    def compute() -> tuple[np.ndarray, float]:
        ref = feats.reference
        if ref.size < 2:
            return np.zeros(0, dtype=np.int64), 0.0
        tol = 1e-12 * max(1.0, float(np.abs(ref).max()))
        still = np.abs(np.diff(ref)) <= tol
        lengths = np.sort(np.array([e - s + 2 for s, e in runs(still)], dtype=np.int64))
        return lengths, float(still.mean())

    return feats.cached("flat_runs", compute)


def flat_segments(
    ctx: ToolContext,
    *,
    start: int | None = None,
    end: int | None = None,
    min_length: Annotated[int, Bounds(minimum=2)] = 5,
    tolerance: Annotated[float, Bounds(minimum=0)] = 0.0,
) -> dict[str, Any]:
    """Stuck or flat stretches: at least `min_length` consecutive points whose steps are
    all within `tolerance` (0: exactly repeated values).

    Sensor dropouts and missing data often show as a constant value. Output: segments with
    span, length, value and how many runs of exactly repeated values in the reference are
    at least as long (the segment itself counts when it lies in the reference: 1 means
    unique), the reference's longest run and share of zero steps. For quantised data
    (counts) repeats are normal; a segment matters when few reference runs are as long.

    Args:
        start: first index of the range (absolute, inclusive; default window start).
        end: last index of the range (absolute, inclusive; default window end).
        min_length: minimum number of points in a flat segment.
        tolerance: largest absolute step still counted as flat.
    """
    start, end = _range(ctx, start, end)
    x = ctx.values[start : end + 1]
    found = [(s + start, e + start) for s, e in flat_runs(x, min_length, tolerance)]
    ref_lengths, zero_share = _reference_flat_runs(ctx)
    longest_ref = int(ref_lengths[-1]) if ref_lengths.size else 1
    segments = [
        {
            "interval": [s, e],
            "length": e - s + 1,
            "value": num(ctx.values[s]),
            "runs_as_long_in_reference": int(ref_lengths.size - np.searchsorted(ref_lengths, e - s + 1)),
        }
        for s, e in found[:POINT_CAP]
    ]
    longest = max((e - s + 1 for s, e in found), default=0)
    return {
        "range": [start, end],
        "segments": segments,
        "segment_count": len(found),
        "longest": longest,
        "reference_longest_run": longest_ref,
        "reference_zero_step_share": num(zero_share, 3),
        "summary": (
            f"{len(found)} flat segment(s) of >= {min_length} points at {describe_runs(found)}; "
            f"longest {longest} vs {longest_ref} in the reference"
            if found
            else f"no flat segment of >= {min_length} points (reference longest run {longest_ref})"
        ),
    }
