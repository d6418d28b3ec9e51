"""Compact, JSON-serialisable evidence: capped point lists, runs, rounded numbers.

Tool outputs go into LLM prompts, so they must be short: numbers carry four significant
digits, point lists keep the strongest ``cap`` points (in index order) plus a count and a
summary of what was left out, and consecutive flagged points are merged into runs.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

#: Default maximum number of points or intervals listed in one tool output.
POINT_CAP = 20


def num(x: float | int | None, digits: int = 4) -> float | int | None:
    """Round to ``digits`` significant digits (ints stay ints, NaN/inf become None)."""
    if x is None:
        return None
    if isinstance(x, (int, np.integer)) and not isinstance(x, bool):
        return int(x)
    x = float(x)
    if not math.isfinite(x):
        return None
    if x == 0.0:
        return 0.0
    return float(f"{x:.{digits}g}")


def runs(mask: np.ndarray, offset: int = 0, max_gap: int = 0) -> list[tuple[int, int]]:
    """Inclusive absolute ``(start, end)`` runs of True in ``mask``; gaps <= max_gap are bridged."""
    idx = np.flatnonzero(mask)
    if idx.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(idx) > max_gap + 1)
    starts = np.concatenate(([idx[0]], idx[breaks + 1]))
    ends = np.concatenate((idx[breaks], [idx[-1]]))
    return [(int(s) + offset, int(e) + offset) for s, e in zip(starts, ends)]


def flagged_points(
    indices: np.ndarray,
    scores: np.ndarray,
    values: np.ndarray,
    cap: int = POINT_CAP,
    max_gap: int = 0,
    strength: np.ndarray | None = None,
) -> dict[str, Any]:
    """Evidence for flagged points: count, the ``cap`` strongest (index order), their runs.

    ``indices`` are absolute; ``scores`` and ``values`` align with them; ``strength``
    ranks the points (default ``|scores|``).
    """
    indices = np.asarray(indices, dtype=np.int64)
    scores = np.asarray(scores, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    out: dict[str, Any] = {"count": int(indices.size)}
    if indices.size == 0:
        out["points"] = []
        out["runs"] = []
        return out
    strength = np.abs(scores) if strength is None else np.asarray(strength, dtype=np.float64)
    keep = np.argsort(-strength, kind="stable")[:cap]
    keep.sort()
    out["points"] = [
        {"index": int(indices[k]), "value": num(values[k]), "score": num(scores[k], 3)} for k in keep
    ]
    mask = np.zeros(int(indices[-1] - indices[0]) + 1, dtype=bool)
    mask[indices - indices[0]] = True
    all_runs = runs(mask, int(indices[0]), max_gap=max_gap)
    out["runs"] = [[s, e] for s, e in all_runs[:cap]]
    if indices.size > cap:
        rest = np.delete(np.arange(indices.size), keep)
        out["omitted"] = {
            "count": int(rest.size),
            "index_range": [int(indices[rest].min()), int(indices[rest].max())],
            "max_abs_score": num(float(np.abs(scores[rest]).max()), 3),
        }
    if len(all_runs) > cap:
        out["omitted_runs"] = len(all_runs) - cap
    return out


def describe_runs(spans: list[tuple[int, int]] | list[list[int]], limit: int = 3) -> str:
    """``"120-124, 180"`` style text for the first ``limit`` runs (for summary lines)."""
    parts = [f"{s}" if s == e else f"{s}-{e}" for s, e in spans[:limit]]
    if len(spans) > limit:
        parts.append(f"... (+{len(spans) - limit} more)")
    return ", ".join(parts)
