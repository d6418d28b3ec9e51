"""Range metrics: vectorised forms against direct definitions, and hand-computed quirks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from anomamind.eval.affiliation import affiliation_f, affiliation_precision_recall
from anomamind.eval.range_f1 import (
    event_f1,
    event_f1_grid,
    pa_f1,
    pa_f1_grid,
    range_f1,
    range_f1_grid,
    segment_max,
    transition_ranges,
)
from anomamind.eval.vus import NoAnomalyRangesError, vus_pred, vus_roc_pr


def _random_case(seed: int, n: int = 120) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.zeros(n, dtype=np.int64)
    for start in rng.choice(n - 10, size=3, replace=False):
        labels[start : start + int(rng.integers(1, 10))] = 1
    score = labels * rng.random() + rng.random(n)
    return labels, score


@pytest.mark.parametrize("seed", range(5))
def test_grid_forms_equal_fixed_prediction_forms(seed: int) -> None:
    labels, score = _random_case(seed)
    grid = np.linspace(score.min(), score.max(), 17)
    pa, ev, rf = pa_f1_grid(labels, score, grid), event_f1_grid(labels, score, grid), range_f1_grid(
        labels, score, grid
    )
    for k, t in enumerate(grid):
        pred = (score > t).astype(np.int64)
        assert pa[k] == pytest.approx(pa_f1(labels, pred))
        assert ev[k] == pytest.approx(event_f1(labels, pred))
        assert rf[k] == pytest.approx(range_f1(labels, pred))


def test_pa_f1_hand_computed_and_index_zero_quirk() -> None:
    labels = np.array([0, 1, 1, 1, 0, 0, 1, 1, 0, 0])
    pred = np.array([0, 0, 1, 0, 0, 1, 0, 0, 0, 0])
    # first range fully credited (3 TP), second missed (2 FN), one FP: F1 = 6 / (6 + 1 + 2)
    assert pa_f1(labels, pred) == pytest.approx(6 / 9)
    # a range starting at index 0, first hit at index 2: index 0 is never back-filled
    labels0 = np.array([1, 1, 1, 1, 0, 0])
    pred0 = np.array([0, 0, 1, 0, 0, 0])
    assert pa_f1(labels0, pred0) == pytest.approx(2 * 3 / (2 * 3 + 1))


def test_event_f1_drops_last_point_of_a_range_at_the_end() -> None:
    labels = np.array([0, 0, 0, 0, 1])
    assert event_f1(labels, labels.copy()) == 0.0  # the event at n-1 is empty
    labels2 = np.array([0, 1, 1, 0, 0])
    pred2 = np.array([0, 1, 0, 0, 1])  # all events hit (R_e = 1), precision 1/2
    assert event_f1(labels2, pred2) == pytest.approx(2 * 0.5 / 1.5)


def test_range_f1_hand_computed() -> None:
    labels = np.array([0, 1, 1, 1, 1, 0, 0, 0, 0, 0])
    pred = np.array([0, 0, 0, 1, 1, 1, 0, 0, 0, 0])
    # recall: existence 1, overlap 2/4 with one predicted range -> 0.2 + 0.8 * 0.5 = 0.6
    # precision: one predicted range [3,5], 2/3 of it true, one true range -> 2/3
    expected = 2 * 0.6 * (2 / 3) / (0.6 + 2 / 3)
    assert range_f1(labels, pred) == pytest.approx(expected)
    assert range_f1(labels, np.ones(10, dtype=int)) == 0.0  # all-ones pred has no range


def test_transition_ranges_and_segment_max() -> None:
    starts, ends = transition_ranges(np.array([1, 1, 0, 1]) == 1)
    assert starts.tolist() == [0, 3] and ends.tolist() == [1, 3]
    assert transition_ranges(np.ones(4, dtype=bool))[0].size == 0
    values = np.array([1.0, 5.0, 2.0, 7.0])
    out = segment_max(values, np.array([0, 2, 3]), np.array([1, 3, 2]))
    assert out.tolist() == [5.0, 7.0, -np.inf]


def _affiliation_by_integration(labels: np.ndarray, pred: np.ndarray, step: float = 1 / 64):
    """Affiliation P/R straight from the definitions, by midpoint-rule integration."""
    n = labels.size

    def events(x):
        idx = np.flatnonzero(np.diff(np.concatenate(([0], x, [0]))))
        return [(float(a), float(b)) for a, b in zip(idx[0::2], idx[1::2])]

    gt, pr = events(labels), events(pred)
    bounds = [0.0] + [(gt[j][1] + gt[j + 1][0]) / 2 for j in range(len(gt) - 1)] + [float(n)]
    grid = np.arange(0, n, step) + step / 2
    in_pred = np.zeros(grid.size, dtype=bool)
    for a, b in pr:
        in_pred |= (grid >= a) & (grid < b)
    precisions, recalls = [], []
    for j, (a, b) in enumerate(gt):
        e0, e1 = bounds[j], bounds[j + 1]
        zone = (grid >= e0) & (grid < e1)
        gap_left, gap_right = a - e0, e1 - b

        def survival_to_gt(d):  # P(distance of a uniform point of the zone to J >= d)
            outside = e1 - e0 - (b - a) - np.minimum(d, gap_left) - np.minimum(d, gap_right)
            return np.where(d > 0, outside / (e1 - e0), 1.0)

        x = grid[zone & in_pred]
        if x.size:
            d = np.maximum(np.maximum(a - x, x - b), 0)
            precisions.append(np.mean(survival_to_gt(d)))
        pieces = [(max(u, e0), min(v, e1)) for u, v in pr if min(v, e1) > max(u, e0)]
        if not pieces:
            recalls.append(0.0)
            continue
        t = grid[(grid >= a) & (grid < b)]
        dist = np.min([np.maximum(np.maximum(u - t, t - v), 0) for u, v in pieces], axis=0)
        recalls.append(
            np.mean((e1 - e0 - np.minimum(dist, t - e0) - np.minimum(dist, e1 - t)) / (e1 - e0))
        )
    return (np.mean(precisions) if precisions else math.nan), np.mean(recalls)


@pytest.mark.parametrize("seed", range(6))
def test_affiliation_matches_its_definition(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 80
    labels = np.zeros(n, dtype=np.int64)
    for start in rng.choice(n - 8, size=2, replace=False):
        labels[start : start + int(rng.integers(1, 8))] = 1
    pred = (rng.random(n) < 0.08).astype(np.int64)
    precision, recall = affiliation_precision_recall(labels, pred)
    ref_precision, ref_recall = _affiliation_by_integration(labels, pred)
    assert precision == pytest.approx(ref_precision, abs=2e-3)
    assert recall == pytest.approx(ref_recall, abs=2e-3)


def test_affiliation_edge_cases() -> None:
    labels = np.array([0, 0, 1, 1, 0, 0, 0, 0])
    assert affiliation_f(labels, labels.copy()) == pytest.approx(1.0)
    assert math.isnan(affiliation_f(labels, np.zeros(8, dtype=int)))  # precision 0/0
    assert math.isnan(affiliation_precision_recall(np.zeros(8), labels)[0])  # no true event


def test_vus_perfect_and_degenerate() -> None:
    labels = np.zeros(300, dtype=np.int64)
    labels[100:120] = 1
    roc, pr = vus_roc_pr(labels, labels.astype(float), window=0)
    assert roc == pytest.approx(1.0) and pr == pytest.approx(1.0)
    recall, precision, f = vus_pred(labels, labels, window=10)
    assert (recall, precision, f) == pytest.approx((1.0, 1.0, 1.0))
    recall, precision, f = vus_pred(labels, np.zeros(300, dtype=int), window=10)
    assert recall == 0.0 and math.isnan(precision) and f == 0.0
    with pytest.raises(NoAnomalyRangesError):
        vus_roc_pr(np.zeros(50, dtype=int), np.arange(50.0), window=5)


def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
    idx = np.flatnonzero(np.diff(np.concatenate(([0], flags.astype(int), [0]))))
    return [(int(a), int(b) - 1) for a, b in zip(idx[0::2], idx[1::2])]


def _direct_soft_labels(base: np.ndarray, ranges, width: int) -> np.ndarray:
    out = base.astype(float).copy()
    n = out.size
    for s, e in ranges:
        for d in range(1, width // 2 + 1):
            if e + d < n:
                out[e + d] += math.sqrt(1 - d / width)
            if s - d >= 0:
                out[s - d] += math.sqrt(1 - d / width)
    return np.minimum(out, 1.0)


def _direct_segments(ranges, width: int, n: int):
    half, merged = width // 2, []
    for s, e in ranges:
        if merged and merged[-1][1] >= s - half:
            merged[-1][1] = e + half
        else:
            merged.append([s - half, e + half])
    merged[0][0], merged[-1][1] = max(merged[0][0], 0), min(merged[-1][1], n - 1)
    return merged


def _direct_vus(labels: np.ndarray, score: np.ndarray, window: int, thre: int):
    """VUS-ROC/PR straight from the module docstring's definition, one threshold at a time."""
    n, truth, ranges = labels.size, labels == 1, _runs(labels == 1)
    desc = np.sort(score)[::-1]
    rocs, prs = [], []
    for width in range(window + 1):
        margins = np.where(truth, 0.0, _direct_soft_labels(labels, ranges, width))
        segments = _direct_segments(ranges, width, n)
        tpr, fpr, prec = [0.0], [0.0], []
        for k in range(thre):
            pred = score >= desc[int(k * (n - 1) / (thre - 1))]
            soft = margins[pred].sum()
            tp = (truth & pred).sum() + soft
            p_new = truth.sum() + soft / 2
            hit = sum(pred[a : b + 1].any() for a, b in segments) / len(segments)
            tpr.append(min(tp / p_new, 1) * hit)
            fpr.append((pred.sum() - tp) / (n - p_new))
            prec.append(tp / pred.sum())
        tpr.append(1.0)
        fpr.append(1.0)
        rocs.append(sum((fpr[i + 1] - fpr[i]) * (tpr[i + 1] + tpr[i]) / 2 for i in range(len(fpr) - 1)))
        prs.append(sum((tpr[k + 1] - tpr[k]) * prec[k] for k in range(thre)))
    return np.mean(rocs), np.mean(prs)


@pytest.mark.parametrize("seed", range(4))
def test_vus_matches_direct_definition(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 90
    labels = (rng.random(n) < 0.06).astype(np.int64)
    labels[rng.integers(0, n - 6) :][:5] = 1  # at least one longer range
    score = rng.integers(0, 4, n).astype(float) if seed % 2 else rng.random(n) + labels
    window = int(rng.integers(3, 25))
    assert vus_roc_pr(labels, score, window, n_thresholds=40) == pytest.approx(
        _direct_vus(labels, score, window, 40), abs=1e-12
    )


def test_vus_pred_widens_the_masked_labels() -> None:
    # one range [10, 12]; pred covers the right margin 13..14 only (plus the range)
    labels = np.zeros(30, dtype=np.int64)
    labels[10:13] = 1
    pred = np.zeros(30, dtype=np.int64)
    pred[10:15] = 1
    window = 6
    recalls, precisions = [], []
    current = labels.astype(float)
    for width in range(window + 1):
        widened = _direct_soft_labels(current, [(10, 12)], width)
        masked = np.where(labels == 1, 0.0, widened) * pred
        tp = 3 + masked.sum()
        recalls.append(min(tp / (3 + masked.sum() / 2), 1))
        precisions.append(tp / 5)
        current = np.where(labels == 1, 1.0, masked)  # the quirk: next width starts here
    recall, precision, _ = vus_pred(labels, pred, window)
    assert recall == pytest.approx(np.mean(recalls), abs=1e-12)
    assert precision == pytest.approx(np.mean(precisions), abs=1e-12)
