"""Point precision/recall/F1, Best-F1 rules and macro averages (hand-computed values)."""

import math

import numpy as np
import pytest

from anomamind.eval.convert import intervals_to_binary, intervals_to_scores
from anomamind.eval.point_metrics import (
    assign_folds,
    best_f1_oracle,
    choose_threshold,
    cross_fitted_best_f1,
    f1_at_thresholds,
    macro_average,
    point_prf,
)
from anomamind.types import Interval


def test_point_prf_hand_computed():
    labels = [0, 1, 1, 1, 0, 0, 0, 0, 0, 0]
    pred = [0, 0, 1, 1, 1, 0, 0, 0, 0, 0]
    p, r, f = point_prf(labels, pred)
    assert p == pytest.approx(2 / 3)
    assert r == pytest.approx(2 / 3)
    assert f == pytest.approx(2 / 3)


@pytest.mark.parametrize(
    "labels, pred, expected",
    [
        ([0, 0, 0, 0], [0, 0, 0, 0], (0.0, 0.0, 0.0)),  # no anomalies, nothing predicted
        ([0, 0, 0, 0], [0, 1, 0, 0], (0.0, 0.0, 0.0)),  # no anomalies, a false alarm
        ([0, 1, 1, 0], [0, 0, 0, 0], (0.0, 0.0, 0.0)),  # empty prediction
        ([1, 1, 1, 1], [1, 1, 1, 1], (1.0, 1.0, 1.0)),
    ],
)
def test_point_prf_edge_cases_never_raise(labels, pred, expected):
    assert point_prf(labels, pred) == pytest.approx(expected)


def test_point_prf_length_mismatch_is_named():
    with pytest.raises(ValueError, match="labels have 3 points but pred has 2"):
        point_prf([0, 1, 0], [0, 1])


def test_failed_window_counts_as_predicting_nothing():
    # Two windows of 5 points; the second window failed, so it contributes no intervals.
    labels = np.array([0, 1, 1, 0, 0, 0, 0, 1, 1, 0])
    window_detections = [[Interval(start=1, end=2)], None]  # None = failed window
    intervals = [iv for det in window_detections if det for iv in det]
    pred = intervals_to_binary(intervals, labels.size)
    p, r, f = point_prf(labels, pred)
    assert (p, r) == (1.0, 0.5)  # the missed anomaly of the failed window still counts
    assert f == pytest.approx(2 / 3)


def test_f1_at_thresholds_matches_direct_computation():
    rng = np.random.default_rng(1)
    labels = (rng.random(300) < 0.1).astype(int)
    scores = rng.integers(0, 4, 300).astype(float)
    thresholds = [0.5, 1, 2, 3, 4]
    expected = [point_prf(labels, scores >= t)[2] for t in thresholds]
    assert f1_at_thresholds(labels, scores, thresholds) == pytest.approx(expected)


def test_best_f1_oracle_picks_level_on_own_labels():
    labels = np.zeros(20, dtype=int)
    labels[5:10] = 1
    intervals = [
        Interval(start=5, end=9, confidence=3),
        Interval(start=12, end=13, confidence=1),
        Interval(start=15, end=15, confidence=2),
    ]
    result = best_f1_oracle(labels, intervals_to_scores(intervals, 20))
    assert result["rule"] == "oracle"
    assert result["threshold"] == 3.0
    assert result["f1"] == 1.0
    # level 1 would predict 8 points, 5 right: F1 = 2*5/(8+5)
    assert f1_at_thresholds(labels, intervals_to_scores(intervals, 20), [1])[0] == pytest.approx(
        10 / 13
    )


def test_choose_threshold_maximises_mean_f1_over_calibration_series():
    # series A prefers level 1 (F1 1.0 vs 0.5); series B prefers level 3 (F1 1.0 vs 0.4)
    labels_a = np.array([1, 1, 1, 1, 0, 0])
    scores_a = np.array([3, 1, 1, 1, 0, 0])
    labels_b = np.array([1, 0, 0, 0, 0, 0])
    scores_b = np.array([3, 2, 1, 1, 0, 0])
    f1_a = f1_at_thresholds(labels_a, scores_a, [1, 2, 3])
    f1_b = f1_at_thresholds(labels_b, scores_b, [1, 2, 3])
    assert f1_a.tolist() == pytest.approx([1.0, 0.4, 0.4])
    assert f1_b.tolist() == pytest.approx([0.4, 2 / 3, 1.0])
    # means: level 1 -> 0.7, level 2 -> 0.533, level 3 -> 0.7: tie goes to the lowest
    assert choose_threshold([labels_a, labels_b], [scores_a, scores_b], [3, 2, 1]) == 1.0
    assert choose_threshold([labels_b], [scores_b], [1, 2, 3]) == 3.0


def test_choose_threshold_rejects_bad_input():
    with pytest.raises(ValueError, match="calibration"):
        choose_threshold([], [], [1, 2, 3])
    with pytest.raises(ValueError, match="2 label arrays but 1 score"):
        choose_threshold([np.zeros(3), np.zeros(3)], [np.zeros(3)], [1])


def test_assign_folds_is_deterministic_balanced_and_name_based():
    names = [f"YAHOO/s{i}" for i in range(7)]
    folds = assign_folds(names, 2)
    assert folds == assign_folds(list(names), 2)
    assert sorted(folds).count(0) == 4 and sorted(folds).count(1) == 3
    # a series keeps its fold relation with its neighbours under reordering
    reordered = assign_folds(names[::-1], 2)[::-1]
    assert reordered == folds


def test_cross_fitted_best_f1_never_uses_own_labels():
    # Series in one fold prefer level 3, in the other level 1. Cross-fitting must apply
    # the OTHER fold's choice, so every series scores its worse level.
    names = ["a", "b", "c", "d"]
    folds = assign_folds(names, 2)
    prefers_1 = (np.array([1, 1, 1, 1, 0, 0]), np.array([3, 1, 1, 1, 0, 0]))  # F1 1.0 / 0.4
    prefers_3 = (np.array([1, 0, 0, 0, 0, 0]), np.array([3, 2, 1, 1, 0, 0]))  # F1 0.4 / 1.0
    data = [prefers_1 if fold == 0 else prefers_3 for fold in folds]
    per_series, thresholds = cross_fitted_best_f1(
        [d[0] for d in data], [d[1] for d in data], names, [1, 2, 3]
    )
    for fold, f1, threshold in zip(folds, per_series, thresholds):
        assert threshold == (3.0 if fold == 0 else 1.0)
        assert f1 == pytest.approx(0.4)


def test_cross_fitted_best_f1_single_series_is_nan_with_warning():
    with pytest.warns(UserWarning, match="no other fold"):
        f1, thr = cross_fitted_best_f1([np.array([0, 1])], [np.array([0, 3])], ["x"], [1, 2, 3])
    assert math.isnan(f1[0]) and math.isnan(thr[0])


def test_macro_average_groups_and_skips_nan():
    rows = [
        {"dataset": "A", "detector": "sr", "f1": 1.0, "vus_pr": 0.5},
        {"dataset": "A", "detector": "sr", "f1": 0.0, "vus_pr": float("nan")},
        {"dataset": "B", "detector": "sr", "f1": 0.5, "vus_pr": 0.25},
    ]
    out = macro_average(rows, by=("dataset", "detector"))
    assert out[0] == {
        "dataset": "A",
        "detector": "sr",
        "n_series": 2,
        "f1": 0.5,
        "vus_pr": 0.5,
        "n_vus_pr": 1,
    }
    assert out[1]["f1"] == 0.5 and out[1]["n_series"] == 1
    assert macro_average(rows, by="detector")[0]["f1"] == pytest.approx(0.5)
    with pytest.raises(KeyError, match="grouping key"):
        macro_average([{"f1": 1.0}], by="dataset")
