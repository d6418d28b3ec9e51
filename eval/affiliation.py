"""Affiliation precision and recall (Huet et al., KDD 2022), vectorised.

TSB-AD 1.5 calls the reference ``affiliation`` package, which loops in Python over every
(zone, predicted event) pair. This module computes the same quantities in closed form
over numpy arrays:

* A positive index ``i`` is the interval ``[i, i + 1)``; the time range is ``(0, n)``.
* Each true event ``J`` owns an affiliation zone ``E`` bounded by the midpoints between
  neighbouring true events (and by 0 and n at the ends).
* Precision of a zone: the mean over predicted time inside ``E`` of the survival function
  ``1 - (min(d, m) + d + |J|) / |E|`` of the distance ``d`` to ``J`` (1 inside ``J``),
  where ``m`` is the distance from ``J`` to the nearer edge of ``E``. Zones without
  predictions are skipped; no predictions at all gives NaN.
* Recall of a zone: the mean over ``J`` of ``1 - (min(d, m_t) + d) / |E|`` with ``d`` the
  distance from ``t`` to the affiliated predicted piece and ``m_t`` the distance from ``t``
  to the nearer edge of ``E`` (1 inside a piece; 0 when the piece's pivot lies on an edge
  of ``E``). Zones without predictions score 0.

Results match the reference implementation to rounding (about 1e-15).
"""

from __future__ import annotations

import math

import numpy as np

from anomamind.eval.convert import run_bounds

#: TSB-AD's epsilon in ``Affiliation-F = 2 P R / (P + R + eps)``.
AFFILIATION_EPS = 1e-15


def _events(flags: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Half-open ``[start, stop)`` float arrays of the runs of True."""
    starts, ends = run_bounds(flags)
    return starts.astype(np.float64), ends.astype(np.float64) + 1.0


def _zones(gt_start: np.ndarray, gt_stop: np.ndarray, n: int) -> np.ndarray:
    """Zone boundaries: ``z[j]..z[j+1]`` is the affiliation zone of true event ``j``."""
    middles = (gt_stop[:-1] + gt_start[1:]) / 2
    return np.concatenate(([0.0], middles, [float(n)]))


def _split_pieces(
    pred_start: np.ndarray, pred_stop: np.ndarray, bounds: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cut predicted events at zone boundaries: (zone index, piece start, piece stop).

    Only pieces of positive length are kept, as the reference's interval intersection does.
    """
    first = np.searchsorted(bounds[1:], pred_start, side="right")
    last = np.searchsorted(bounds[:-1], pred_stop, side="left") - 1
    count = np.maximum(last - first + 1, 0)
    owner = np.repeat(np.arange(pred_start.size), count)
    offset = np.arange(owner.size) - np.repeat(np.cumsum(count) - count, count)
    zone = np.repeat(first, count) + offset
    start = np.maximum(pred_start[owner], bounds[zone])
    stop = np.minimum(pred_stop[owner], bounds[zone + 1])
    keep = stop > start
    return zone[keep], start[keep], stop[keep]


def _precision_part(
    d_min: np.ndarray, d_max: np.ndarray, m: np.ndarray, j_len: np.ndarray, e_len: np.ndarray
) -> np.ndarray:
    """Integral of the precision survival function over distances ``d_min..d_max``."""
    a = np.minimum(d_max, m) ** 2 - np.minimum(d_min, m) ** 2
    b = np.maximum(d_max, m) - np.maximum(d_min, m)
    min_piece = 0.5 * a + m * b
    linear_piece = 0.5 * (d_max**2 - d_min**2)
    remaining = j_len * (d_max - d_min)
    return (d_max - d_min) - (min_piece + linear_piece + remaining) / e_len


def _recall_part(
    t_a: np.ndarray, t_b: np.ndarray, pivot: np.ndarray, e_lo: np.ndarray, e_hi: np.ndarray
) -> np.ndarray:
    """Integral over ``t in [t_a, t_b]`` of ``1 - (min(|t-p|, t-e_lo, e_hi-t) + |t-p|)/|E|``.

    The integrand is piecewise linear with kinks only at ``(e_lo+p)/2``, ``(e_hi+p)/2`` and
    the zone centre, so trapezoids between those points are exact. The part scores 0 when
    the pivot lies on or outside the zone edge, as in the reference.
    """
    length = np.maximum(t_b - t_a, 0.0)
    kinks = np.stack([(e_lo + pivot) / 2, (e_hi + pivot) / 2, (e_lo + e_hi) / 2], axis=1)
    points = np.sort(
        np.concatenate([t_a[:, None], np.clip(kinks, t_a[:, None], t_b[:, None]), t_b[:, None]], axis=1),
        axis=1,
    )
    dist = np.abs(points - pivot[:, None])
    edge = np.minimum(points - e_lo[:, None], e_hi[:, None] - points)
    h = np.minimum(dist, edge) + dist
    integral = np.sum(np.diff(points, axis=1) * (h[:, 1:] + h[:, :-1]) / 2, axis=1)
    value = length - integral / (e_hi - e_lo)
    inside = (pivot > e_lo) & (pivot < e_hi) & (length > 0)
    return np.where(inside, value, 0.0)


def affiliation_precision_recall(labels: np.ndarray, pred: np.ndarray) -> tuple[float, float]:
    """Affiliation (precision, recall) of a 0/1 prediction; (NaN, NaN) without true events."""
    gt_start, gt_stop = _events(np.asarray(labels) > 0)
    if gt_start.size == 0:
        return math.nan, math.nan
    n = int(np.asarray(labels).size)
    bounds = _zones(gt_start, gt_stop, n)
    n_zones = gt_start.size
    e_lo, e_hi = bounds[:-1], bounds[1:]
    pred_start, pred_stop = _events(np.asarray(pred) > 0)
    zone, p_start, p_stop = _split_pieces(pred_start, pred_stop, bounds)
    if zone.size == 0:
        return math.nan, 0.0

    # precision: each piece against its zone's true event
    a, b = gt_start[zone], gt_stop[zone]
    lo, hi = e_lo[zone], e_hi[zone]
    m = np.minimum(a - lo, hi - b)
    j_len, e_len = b - a, hi - lo
    before_end = np.minimum(p_stop, a)
    before = np.where(
        p_start < a, _precision_part(a - before_end, a - p_start, m, j_len, e_len), 0.0
    )
    after_start = np.maximum(p_start, b)
    after = np.where(
        p_stop > b, _precision_part(after_start - b, p_stop - b, m, j_len, e_len), 0.0
    )
    middle = np.maximum(np.minimum(p_stop, b) - np.maximum(p_start, a), 0.0)
    zone_integral = np.bincount(zone, weights=before + middle + after, minlength=n_zones)
    zone_length = np.bincount(zone, weights=p_stop - p_start, minlength=n_zones)
    has_pred = zone_length > 0
    precision = float(np.mean(zone_integral[has_pred] / zone_length[has_pred]))

    # recall: the true event is shared among the zone's pieces by midpoints between them
    same_zone_prev = np.concatenate(([False], zone[1:] == zone[:-1]))
    same_zone_next = np.concatenate((zone[:-1] == zone[1:], [False]))
    sub_lo = np.where(same_zone_prev, (np.roll(p_stop, 1) + p_start) / 2, lo)
    sub_hi = np.where(same_zone_next, (p_stop + np.roll(p_start, -1)) / 2, hi)
    j_lo, j_hi = np.maximum(a, sub_lo), np.minimum(b, sub_hi)
    part = np.flatnonzero(j_hi > j_lo)  # only pieces whose sub-zone meets the true event
    j_lo, j_hi, lo, hi = j_lo[part], j_hi[part], lo[part], hi[part]
    u, v = p_start[part], p_stop[part]
    left = _recall_part(j_lo, np.minimum(j_hi, u), u, lo, hi)
    right = _recall_part(np.maximum(j_lo, v), j_hi, v, lo, hi)
    covered = np.maximum(np.minimum(j_hi, v) - np.maximum(j_lo, u), 0.0)
    per_piece = left + covered + right
    zone_recall = np.bincount(zone[part], weights=per_piece, minlength=n_zones) / (
        gt_stop - gt_start
    )
    recall = float(np.mean(zone_recall))
    return precision, recall


def affiliation_f(labels: np.ndarray, pred: np.ndarray) -> float:
    """TSB-AD's Affiliation-F: ``2 P R / (P + R + 1e-15)``; NaN when precision is undefined."""
    precision, recall = affiliation_precision_recall(labels, pred)
    return 2 * precision * recall / (precision + recall + AFFILIATION_EPS)
