"""Statistical feature tools: descriptive statistics, value z-scores, percentiles, shifts.

Raw, vectorised numpy functions come first (reused by the heuristic agent and the rule
synthesiser); the tool functions after them wrap them into compact evidence for a model.
"""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
from scipy import special

from anomamind.tools.context import Bounds, ToolArgumentError, ToolContext, robust_location_scale
from anomamind.tools.evidence import describe_runs, flagged_points, num


def robust_zscore(x: np.ndarray, ref: np.ndarray | None = None) -> np.ndarray:
    """``(x - median(ref)) / (1.4826 * MAD(ref))``; ``ref`` defaults to ``x``."""
    x = np.asarray(x, dtype=np.float64)
    med, scale = robust_location_scale(x if ref is None else ref)
    return (x - med) / scale


def standard_zscore(x: np.ndarray, ref: np.ndarray | None = None) -> np.ndarray:
    """``(x - mean(ref)) / std(ref)``; ``ref`` defaults to ``x``."""
    x = np.asarray(x, dtype=np.float64)
    ref = x if ref is None else np.asarray(ref, dtype=np.float64)
    std = float(ref.std())
    return (x - float(ref.mean())) / (std if std > 0 else 1e-9 * max(1.0, abs(float(ref.mean()))))


def percentile_rank(x: np.ndarray, sorted_ref: np.ndarray) -> np.ndarray:
    """Percentile (0..100) of each ``x`` within an already sorted reference (mid-rank)."""
    lo = np.searchsorted(sorted_ref, x, side="left")
    hi = np.searchsorted(sorted_ref, x, side="right")
    return 100.0 * (lo + hi) / (2.0 * sorted_ref.size)


def ks_two_sample(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov statistic and asymptotic two-sided p-value.

    The statistic equals ``scipy.stats.ks_2samp``'s; the p-value is the limiting
    Kolmogorov distribution's (``scipy.stats.kstwobign.sf(sqrt(n*m/(n+m)) * D)``),
    slightly smaller than scipy's finite-n approximation. Written out because
    ``ks_2samp``'s per-call overhead (about 1 ms) dominates on 100-point windows.
    """
    a, b = np.sort(a), np.sort(b)
    grid = np.concatenate((a, b))
    cdf_a = np.searchsorted(a, grid, side="right") / a.size
    cdf_b = np.searchsorted(b, grid, side="right") / b.size
    d = float(np.abs(cdf_a - cdf_b).max())
    en = a.size * b.size / (a.size + b.size)
    return d, float(np.clip(special.kolmogorov(np.sqrt(en) * d), 0.0, 1.0))


def _range_values(ctx: ToolContext, start: int | None, end: int | None) -> tuple[int, int, np.ndarray]:
    start, end = ctx.resolve_range(start, end)
    return start, end, ctx.values[start : end + 1]


def segment_statistics(ctx: ToolContext, *, start: int | None = None, end: int | None = None) -> dict[str, Any]:
    """Descriptive statistics of values[start..end] next to those of the reference context.

    Output: count, mean, std, median, min/max with their indices, 5th/95th percentiles and
    the least-squares slope per step of the range; the reference's mean, std, median and
    robust std; `mean_shift_sigma` = (range median - reference median) / reference robust
    std, and `std_ratio` = range std / reference std (about 1 for normal data).

    Args:
        start: first index of the range (absolute, inclusive; default window start).
        end: last index of the range (absolute, inclusive; default window end).
    """
    start, end, x = _range_values(ctx, start, end)
    feats = ctx.features
    ref_med, ref_scale = feats.value_location_scale
    ref_mean, ref_std = feats.value_mean_std
    imin, imax = int(np.argmin(x)), int(np.argmax(x))
    t = np.arange(x.size) - (x.size - 1) / 2.0
    slope = float((t * (x - x.mean())).sum() / (t * t).sum()) if x.size > 1 else 0.0
    q05, med, q95 = np.percentile(x, [5, 50, 95])
    shift = (med - ref_med) / ref_scale
    std_ratio = float(x.std()) / ref_std
    return {
        "range": [start, end],
        "count": int(x.size),
        "mean": num(x.mean()),
        "std": num(x.std()),
        "median": num(med),
        "min": {"index": start + imin, "value": num(x[imin])},
        "max": {"index": start + imax, "value": num(x[imax])},
        "p05": num(q05),
        "p95": num(q95),
        "slope_per_step": num(slope),
        "reference": {
            "points": int(feats.reference_end),
            "mean": num(ref_mean),
            "std": num(ref_std),
            "median": num(ref_med),
            "robust_std": num(ref_scale),
        },
        "mean_shift_sigma": num(shift, 3),
        "std_ratio": num(std_ratio, 3),
        "summary": (
            f"[{start},{end}] median {num(med)} vs reference {num(ref_med)} "
            f"({num(shift, 3)} robust sigma), std ratio {num(std_ratio, 3)}, "
            f"min {num(x[imin])}@{start + imin}, max {num(x[imax])}@{start + imax}"
        ),
    }


def global_value_zscore(
    ctx: ToolContext,
    *,
    start: int | None = None,
    end: int | None = None,
    threshold: Annotated[float, Bounds(exclusive_minimum=0)] = 3.5,
    robust: bool = True,
) -> dict[str, Any]:
    """Z-score of each value against the whole reference context; flags |z| > threshold.

    With robust=True the score is (x - median) / (1.4826 * MAD) of the reference, which a
    few anomalies cannot inflate; robust=False uses mean and standard deviation (the
    reference implementation's global z-score). Large |z| means a value far outside the
    series' usual range: a global point anomaly or part of a level shift. Output: flagged
    points (strongest first, capped) and their runs, the range's max |z| and its index.

    Args:
        start: first index of the range (absolute, inclusive; default window start).
        end: last index of the range (absolute, inclusive; default window end).
        threshold: |z| above which a point is flagged.
        robust: median/MAD (true) or mean/std (false) of the reference.
    """
    start, end, x = _range_values(ctx, start, end)
    feats = ctx.features
    loc, scale = feats.value_location_scale if robust else feats.value_mean_std
    z = (x - loc) / scale
    return _zscore_output("value z-score", start, x, z, threshold)


def _zscore_output(label: str, start: int, x: np.ndarray, z: np.ndarray, threshold: float) -> dict[str, Any]:
    hit = np.flatnonzero(np.abs(z) > threshold)
    k = int(np.argmax(np.abs(z)))
    evidence = flagged_points(start + hit, z[hit], x[hit])
    summary = (
        f"{evidence['count']} of {x.size} points with |{label}| > {threshold}"
        + (f" at {describe_runs(evidence['runs'])}" if evidence["count"] else "")
        + f"; max |z| {num(abs(z[k]), 3)} at {start + k}"
    )
    return {
        "range": [start, start + x.size - 1],
        "threshold": threshold,
        "max_abs_z": num(abs(z[k]), 3),
        "argmax": start + k,
        "flagged": evidence,
        "summary": summary,
    }


def value_percentiles(
    ctx: ToolContext,
    *,
    start: int | None = None,
    end: int | None = None,
    tail: Annotated[float, Bounds(exclusive_minimum=0, maximum=10)] = 0.5,
) -> dict[str, Any]:
    """Where the range's values sit in the reference distribution, in percentiles (0-100).

    Points below the `tail` percentile or above 100 - `tail` of the reference are flagged
    (score = their percentile). Output also gives the percentile of the range's min,
    median and max; a median far from 50 means the whole range sits high or low.

    Args:
        start: first index of the range (absolute, inclusive; default window start).
        end: last index of the range (absolute, inclusive; default window end).
        tail: size of each tail in percent (0.5 flags the outer 1% of the reference).
    """
    start, end, x = _range_values(ctx, start, end)
    pct = percentile_rank(x, ctx.features.sorted_reference)
    hit = np.flatnonzero((pct < tail) | (pct > 100.0 - tail))
    # the strongest points are those closest to either end of the distribution
    evidence = flagged_points(start + hit, pct[hit], x[hit], strength=np.abs(pct[hit] - 50.0))
    median_pct = float(percentile_rank(np.array([np.median(x)]), ctx.features.sorted_reference)[0])
    return {
        "range": [start, end],
        "tail_percent": tail,
        "min_percentile": num(pct.min(), 4),
        "median_percentile": num(median_pct, 4),
        "max_percentile": num(pct.max(), 4),
        "flagged": evidence,
        "summary": (
            f"{evidence['count']} of {x.size} points in the outer {tail}% tails of the reference"
            + (f" at {describe_runs(evidence['runs'])}" if evidence["count"] else "")
            + f"; range median at percentile {num(median_pct, 3)}"
        ),
    }


def distribution_shift(
    ctx: ToolContext,
    *,
    start: int | None = None,
    end: int | None = None,
    split: int | None = None,
) -> dict[str, Any]:
    """Does the distribution change between two sub-ranges? (Kolmogorov-Smirnov test.)

    With `split`, compares values[start..split-1] with values[split..end]. Without it,
    compares the range with the same number of points just before it (the baseline),
    or with the reference when nothing precedes the range. Output: KS statistic and
    p-value (asymptotic), median shift in robust-sigma units of the baseline, and the std ratio.
    A small p-value with a large shift means a level shift or a distribution change.

    Args:
        start: first index of the range (absolute, inclusive; default window start).
        end: last index of the range (absolute, inclusive; default window end).
        split: first index of the second sub-range (must lie in start+2..end-1).
    """
    start, end = ctx.resolve_range(start, end)
    values = ctx.visible()
    if split is not None:
        if not start + 2 <= split <= end - 1:
            raise ToolArgumentError(f"split must lie in {start + 2}..{end - 1} to leave two points each side, got {split}")
        before, after = values[start:split], values[split : end + 1]
        compared = f"[{start},{split - 1}] vs [{split},{end}]"
    else:
        length = end - start + 1
        lo = max(0, start - length)
        if start - lo >= 2:
            before = values[lo:start]
            compared = f"baseline [{lo},{start - 1}] vs range [{start},{end}]"
        else:
            before = ctx.features.reference
            compared = f"reference [0,{ctx.features.reference_end - 1}] vs range [{start},{end}]"
        after = values[start : end + 1]
    if after.size < 2:
        raise ToolArgumentError("the range needs at least two points for a distribution test")
    ks, p_value = ks_two_sample(before, after)
    med, scale = robust_location_scale(before)
    # a flat baseline has no spread: measure the shift against the series' noise instead
    scale = max(scale, ctx.features.noise_scale)
    shift = (float(np.median(after)) - med) / scale
    std_before = float(before.std())
    ratio = float(after.std()) / std_before if std_before > 0 else None
    return {
        "compared": compared,
        "ks_statistic": num(ks, 3),
        "p_value": num(p_value, 3),
        "median_shift_sigma": num(shift, 3),
        "std_ratio": num(ratio, 3),
        "summary": (
            f"{compared}: KS {num(ks, 3)} (p={num(p_value, 2)}), "
            f"median shift {num(shift, 3)} sigma, std ratio {num(ratio, 3)}"
        ),
    }
