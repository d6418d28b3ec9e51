"""Localization: merge high-saliency points into candidate anomalous intervals.

The numeric counterpart of the VLM locator (and what the actor calls to get candidates):
each point gets a combined score = the largest of its evidence scores, each divided by
the threshold the knowledge memory holds for this dataset (value z, first-difference z,
spike score, seasonal-residual z). Points scoring >= 1 are candidates; nearby candidates
are merged into intervals.
"""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np

from anomamind.tools.context import Bounds, ToolContext
from anomamind.tools.evidence import POINT_CAP, describe_runs, num, runs
from anomamind.tools.features_global import seasonal_zscore
from anomamind.tools.features_local import spike_score

#: Evidence used for candidates and the threshold each gets when the knowledge has none.
DEFAULT_THRESHOLDS: dict[str, float] = {"value_z": 4.0, "diff_z": 5.0, "spike": 4.0, "seasonal_z": 4.5}


def evidence_scores(ctx: ToolContext, start: int, end: int) -> dict[str, np.ndarray]:
    """Absolute evidence scores of ``start..end`` by name (see :data:`DEFAULT_THRESHOLDS`)."""
    feats = ctx.features
    x = ctx.values[start : end + 1]
    med, scale = feats.value_location_scale
    d_lo = max(0, start - 1)
    d = np.diff(ctx.values[d_lo : end + 1])
    d = np.concatenate((np.zeros(x.size - d.size), d))
    d_med, d_scale = feats.diff_location_scale(1)
    return {
        "value_z": np.abs(x - med) / scale,
        "diff_z": np.abs(d - d_med) / d_scale,
        "spike": np.abs(spike_score(ctx, start, end)),
        "seasonal_z": np.abs(seasonal_zscore(ctx, start, end, feats.period[0])),
    }


def candidate_thresholds(ctx: ToolContext) -> dict[str, float]:
    """Per-evidence thresholds for this series' dataset (knowledge memory, else defaults)."""
    from anomamind.tools.knowledge import default_memory

    known = default_memory().for_series(ctx.dataset, ctx.domain).thresholds
    return {name: float(known.get(name, default)) for name, default in DEFAULT_THRESHOLDS.items()}


def locate_candidates(
    ctx: ToolContext,
    *,
    start: int | None = None,
    end: int | None = None,
    sensitivity: Annotated[float, Bounds(exclusive_minimum=0, maximum=10)] = 1.0,
    max_gap: Annotated[int, Bounds(minimum=0, maximum=50)] = 3,
    pad: Annotated[int, Bounds(minimum=0, maximum=20)] = 1,
) -> dict[str, Any]:
    """Candidate anomalous intervals in the range, from combined numeric evidence.

    Each point's score is the largest of its value z-score, first-difference z-score,
    spike score and seasonal-residual z-score, each divided by this dataset's typical
    threshold (from the knowledge memory). Points whose score is at least
    1/`sensitivity` are merged into intervals (gaps up to `max_gap` bridged, `pad`
    points added each side, clipped to the range). Output: intervals with peak score,
    peak index and the evidence that fired, strongest first; use them as candidates to
    verify with the feature tools, not as final answers.

    Args:
        start: first index of the range (absolute, inclusive; default window start).
        end: last index of the range (absolute, inclusive; default window end).
        sensitivity: above 1 finds weaker candidates, below 1 only the strongest.
        max_gap: candidate points this close are merged into one interval.
        pad: points added on each side of an interval.
    """
    start, end = ctx.resolve_range(start, end)
    thresholds = candidate_thresholds(ctx)
    raw = evidence_scores(ctx, start, end)
    names = list(raw)
    normalised = np.stack([raw[n] / thresholds[n] for n in names])
    combined = normalised.max(axis=0) * sensitivity
    intervals = []
    for s, e in runs(combined >= 1.0, 0, max_gap=max_gap):
        peak = s + int(np.argmax(combined[s : e + 1]))
        fired = [n for i, n in enumerate(names) if (normalised[i, s : e + 1] * sensitivity >= 1.0).any()]
        intervals.append(
            {
                "interval": [max(start, start + s - pad), min(end, start + e + pad)],
                "peak_index": start + peak,
                "peak_score": num(combined[peak], 3),
                "evidence": fired,
            }
        )
    intervals.sort(key=lambda item: -item["peak_score"])
    shown = intervals[:POINT_CAP]
    spans = sorted(tuple(c["interval"]) for c in shown)
    return {
        "range": [start, end],
        "thresholds": {n: num(t, 3) for n, t in thresholds.items()},
        "count": len(intervals),
        "candidates": shown,
        "summary": (
            f"{len(intervals)} candidate interval(s): {describe_runs(spans, limit=5)}"
            if intervals
            else f"no candidate in [{start},{end}] (max combined score {num(combined.max(), 3)})"
        ),
    }
