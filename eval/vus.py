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
are sorted once by score, so every threshold is a prefix and sums become cumulative sums;
per width, only the margin points (within ``window // 2`` of a true range) are touched, and
the widened segments' maxima come from running maxima precomputed per range.
"""

from __future__ import annotations

import numpy as np

from anomamind.eval.range_f1 import segment_max, transition_ranges


class NoAnomalyRangesError(ValueError):
    """VUS is undefined: the labels contain no range (all 0, or all 1 without a transition)."""


class _Margins:
    """The points within ``max_width // 2`` of a true range (outside every range).

    Only these points ever get soft labels, so each width's sums run over them alone
    instead of the whole series.
    """

    def __init__(self, starts: np.ndarray, ends: np.ndarray, truth: np.ndarray, max_width: int):
        self.starts, self.ends, self.n = starts, ends, truth.size
        offsets = np.arange(1, max_width // 2 + 1)
        near = np.concatenate([(ends[:, None] + offsets).ravel(), (starts[:, None] - offsets).ravel()])
        near = np.unique(near[(near >= 0) & (near < self.n)])
        self.positions = near[~truth[near]]
        self._index = np.full(self.n, -1, dtype=np.int64)
        self._index[self.positions] = np.arange(self.positions.size)

    def widen(self, base: np.ndarray, width: int) -> np.ndarray:
        """TSB-AD's ``sequencing`` on the margin points: ``base`` plus soft labels, capped at 1.

        Each range adds ``sqrt(1 - d/width)`` at distance ``d = 1..width//2`` on both sides.
        """
        out = base.astype(np.float64, copy=True)
        half = width // 2
        if half > 0:
            offsets = np.arange(1, half + 1)
            values = np.sqrt(1 - offsets / width)
            for points in (self.ends[:, None] + offsets, self.starts[:, None] - offsets):
                weights = np.broadcast_to(values, points.shape)
                inside = (points >= 0) & (points < self.n)
                index = self._index[points[inside]]
                margin = index >= 0  # points inside another true range are labelled 1 anyway
                np.add.at(out, index[margin], weights[inside][margin])
        return np.minimum(out, 1.0)


def _widened_range_max(
    score: np.ndarray, starts: np.ndarray, ends: np.ndarray, max_half: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per true range: max score inside, and running maxima over ``1..max_half`` points each side.

    ``left[i, d-1]`` is the max of the ``d`` points before range ``i`` (``-inf`` beyond the
    series), ``right[i, d-1]`` the same after it.
    """
    inside = segment_max(score, starts, ends)
    offsets = np.arange(1, max_half + 1)
    padded = np.concatenate((score, [-np.inf]))  # index -1 and n both read -inf
    before = starts[:, None] - offsets
    after = ends[:, None] + offsets
    before = np.where(before >= 0, before, score.size)
    after = np.where(after < score.size, after, score.size)
    left = np.maximum.accumulate(padded[before], axis=1)
    right = np.maximum.accumulate(padded[after], axis=1)
    return inside, left, right


def _segment_maxima(
    starts: np.ndarray, ends: np.ndarray, width: int, inside: np.ndarray, left: np.ndarray, right: np.ndarray
) -> np.ndarray:
    """Max score over each of TSB-AD's ``new_sequence`` segments for ``width``.

    Ranges are widened by ``width // 2`` each side (clipped to the series) and merged where
    the widened ranges meet.
    """
    half = width // 2
    widened = inside
    if half > 0:
        widened = np.maximum(inside, np.maximum(left[:, half - 1], right[:, half - 1]))
    separate = ends[:-1] + half < starts[1:] - half
    first = np.flatnonzero(np.concatenate(([True], separate)))
    return np.maximum.reduceat(widened, first)


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
    n_pred = (n - np.searchsorted(np.sort(score), thresholds, side="left")).astype(np.float64)
    tp_true = np.cumsum(truth[order])[n_pred.astype(np.int64) - 1].astype(np.float64)

    margins = _Margins(starts, ends, truth, window)
    rank_of = np.empty(n, dtype=np.int64)
    rank_of[order] = np.arange(n)
    by_rank = np.argsort(rank_of[margins.positions], kind="stable")
    margin_ranks = rank_of[margins.positions][by_rank]
    predicted_margins = np.searchsorted(margin_ranks, n_pred.astype(np.int64), side="left")
    inside, left, right = _widened_range_max(score, starts, ends, window // 2)
    no_margin = np.zeros(margins.positions.size)

    roc = np.empty(window + 1)
    pr = np.empty(window + 1)
    for width in range(window + 1):
        soft_sums = np.concatenate(([0.0], np.cumsum(margins.widen(no_margin, width)[by_rank])))
        soft = soft_sums[predicted_margins]
        tp = tp_true + soft
        p_new = (n_true + (n_true + soft)) / 2
        recall = np.minimum(tp / p_new, 1.0)
        seg_max = np.sort(_segment_maxima(starts, ends, width, inside, left, right))
        hit = seg_max.size - np.searchsorted(seg_max, thresholds, side="left")
        tpr = np.concatenate(([0.0], recall * (hit / seg_max.size), [1.0]))
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

    margins = _Margins(starts, ends, truth, window)
    margin_predicted = predicted[margins.positions]
    recalls = np.empty(window + 1)
    precisions = np.empty(window + 1)
    f_scores = np.empty(window + 1)
    current = np.zeros(margins.positions.size)  # the labels at the margin points
    for width in range(window + 1):
        masked = margins.widen(current, width) * margin_predicted
        soft = float(np.sum(masked))
        tp = tp_true + soft
        p_new = (n_true + (n_true + soft)) / 2
        recall = min(tp / p_new, 1.0)
        precision = tp / n_pred if n_pred > 0 else float("nan")
        recalls[width] = recall
        precisions[width] = precision
        total = precision + recall
        f_scores[width] = 2 * precision * recall / total if total > 0 else 0.0
        current = masked
    size = window + 1
    return (
        float(np.sum(recalls) / size),
        float(np.sum(precisions) / size),
        float(np.sum(f_scores) / size),
    )
