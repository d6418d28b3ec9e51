"""Volume Under the Surface (VUS-ROC, VUS-PR) and VUS precision/recall of a fixed prediction.

Reimplements TSB-AD 1.5's ``RangeAUC_volume_opt`` and ``metric_VUS_pred`` on numpy:

* For each buffer width ``b = 0..w``, every true range ``[s, e]`` gets soft labels
  ``sqrt(1 - d/b)`` on the ``b//2`` points each side (``d`` = distance to the range; values
  summed where margins meet, capped at 1). Margins merge ranges into ``b``-segments.
* At a threshold, with ``A`` the true points and ``m`` the margin soft labels of predicted
  points: ``TP = |A & pred| + sum(m)``, ``P_new = P + sum(m)/2``,
  ``recall = min(TP / P_new, 1)``, ``TPR = recall * (share of b-segments hit)``,
  ``FPR = (|pred| - TP) / (n - P_new)``, ``precision = TP / |pred|``.
* VUS-ROC is the trapezoid area of (FPR, TPR) with (0,0) and (1,1) added, VUS-PR the step
  sum ``sum (TPR_k - TPR_{k-1}) * precision_k``; both are averaged over the ``w+1`` widths.
* Thresholds are the scores at 0-based ranks ``floor(k (n-1) / (thre-1))`` of the scores
  sorted in decreasing order; a point is predicted when ``score >= threshold``.

Instead of re-thresholding the whole series per (width, threshold) as TSB-AD does, points
are sorted once by score, so every threshold is a prefix and sums become cumulative sums.
"""

from __future__ import annotations

import numpy as np

from anomamind.eval.range_f1 import segment_max, transition_ranges


class NoAnomalyRangesError(ValueError):
    """VUS is undefined: the labels contain no range (all 0, or all 1 without a transition)."""


def _soft_margins(base: np.ndarray, starts: np.ndarray, ends: np.ndarray, width: int) -> np.ndarray:
    """TSB-AD's ``sequencing``: ``base`` plus the soft labels of width ``width``, capped at 1."""
    out = base.astype(np.float64)
    half = width // 2
    if half > 0:
        n = out.size
        offsets = np.arange(1, half + 1)
        values = np.sqrt(1 - offsets / width)
        right = ends[:, None] + offsets[None, :]
        left = starts[:, None] - offsets[None, :]
        weights = np.broadcast_to(values, right.shape)
        ok_right, ok_left = right < n, left >= 0
        np.add.at(out, right[ok_right], weights[ok_right])
        np.add.at(out, left[ok_left], weights[ok_left])
    return np.minimum(out, 1.0)


def _merged_segments(
    starts: np.ndarray, ends: np.ndarray, width: int, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """TSB-AD's ``new_sequence``: ranges widened by ``width//2``, merged where they meet."""
    half = width // 2
    separate = ends[:-1] + half < starts[1:] - half
    first = np.concatenate(([True], separate))
    last = np.concatenate((separate, [True]))
    seg_starts = starts[first] - half
    seg_ends = ends[last] + half
    seg_starts[0] = max(seg_starts[0], 0)
    seg_ends[-1] = min(seg_ends[-1], n - 1)
    return seg_starts, seg_ends


def _true_ranges(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    starts, ends = transition_ranges(labels == 1)
    if starts.size == 0:
        raise NoAnomalyRangesError(
            "VUS needs at least one anomaly range in the labels (TSB-AD raises IndexError "
            "for all-0 and all-1 labels)"
        )
    return starts, ends


def vus_roc_pr(
    labels: np.ndarray, score: np.ndarray, window: int, n_thresholds: int = 250
) -> tuple[float, float]:
    """(VUS-ROC, VUS-PR) of a continuous score, averaged over buffer widths ``0..window``."""
    labels = np.asarray(labels)
    score = np.asarray(score, dtype=np.float64)
    n = labels.size
    starts, ends = _true_ranges(labels)
    truth = labels == 1
    n_true = float(np.sum(labels))

    order = np.argsort(-score, kind="stable")
    ranks = np.linspace(0, n - 1, n_thresholds).astype(int)
    thresholds = score[order][ranks]
    sorted_ascending = np.sort(score)
    n_pred = (n - np.searchsorted(sorted_ascending, thresholds, side="left")).astype(np.float64)
    prefix = n_pred.astype(np.int64) - 1  # last sorted position predicted at each threshold
    tp_true = np.cumsum(truth[order])[prefix].astype(np.float64)

    roc = np.empty(window + 1)
    pr = np.empty(window + 1)
    for width in range(window + 1):
        margins = np.where(truth, 0.0, _soft_margins(labels, starts, ends, width))
        soft = np.cumsum(margins[order])[prefix]
        tp = tp_true + soft
        p_new = (n_true + (n_true + soft)) / 2
        recall = np.minimum(tp / p_new, 1.0)
        seg_starts, seg_ends = _merged_segments(starts, ends, width, n)
        seg_max = np.sort(segment_max(score, seg_starts, seg_ends))
        hit = seg_max.size - np.searchsorted(seg_max, thresholds, side="left")
        tpr = np.concatenate(([0.0], recall * (hit / seg_starts.size), [1.0]))
        fpr = np.concatenate(([0.0], (n_pred - tp) / (n - p_new), [1.0]))
        precision = tp / n_pred
        roc[width] = np.dot(np.diff(fpr), (tpr[1:] + tpr[:-1]) / 2)
        pr[width] = np.dot(np.diff(tpr[:-1]), precision)
    return float(np.sum(roc) / roc.size), float(np.sum(pr) / pr.size)


def vus_pred(labels: np.ndarray, pred: np.ndarray, window: int) -> tuple[float, float, float]:
    """(VUS-Recall, VUS-Precision, VUS-F) of a fixed 0/1 prediction over widths ``0..window``.

    TSB-AD quirk kept: from the second width on, the soft labels are added to the previous
    width's *masked* labels (margins already multiplied by ``pred``), not to the original
    labels, so predicted margin points get larger soft labels than the formula alone gives.
    Empty ``pred``: precision is NaN (0/0) and F is 0, as in TSB-AD.
    """
    labels = np.asarray(labels)
    predicted = np.asarray(pred) > 0
    starts, ends = _true_ranges(labels)
    truth = labels == 1
    n_true = float(np.sum(labels))
    n_pred = float(np.count_nonzero(predicted))
    tp_true = float(np.count_nonzero(truth & predicted))

    recalls = np.empty(window + 1)
    precisions = np.empty(window + 1)
    f_scores = np.empty(window + 1)
    current = labels.astype(np.float64)
    for width in range(window + 1):
        extended = _soft_margins(current, starts, ends, width)
        masked_margins = np.where(truth, 0.0, extended) * predicted
        soft = float(np.sum(masked_margins))
        tp = tp_true + soft
        p_new = (n_true + (n_true + soft)) / 2
        recall = min(tp / p_new, 1.0)
        precision = tp / n_pred if n_pred > 0 else float("nan")
        recalls[width] = recall
        precisions[width] = precision
        total = precision + recall
        f_scores[width] = 2 * precision * recall / total if total > 0 else 0.0
        current = np.where(truth, 1.0, masked_margins)
    size = window + 1
    return (
        float(np.sum(recalls) / size),
        float(np.sum(precisions) / size),
        float(np.sum(f_scores) / size),
    )
