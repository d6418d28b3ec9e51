"""TSB-AD 1.5's evaluation entry points, without the TSB-AD package.

``get_metrics(score, labels)`` gives the threshold-free metrics (AUC-ROC, AUC-PR, VUS-ROC,
VUS-PR) and, for the threshold-dependent ones, TSB-AD's *oracle* search: the best value
over thresholds chosen on the evaluated labels (Standard-F1 over every scikit-learn
precision-recall threshold; PA-F1, Event-based-F1, R-based-F1 and Affiliation-F over 100
evenly spaced thresholds with ``score > t``). Those are upper bounds, not honest scores.
``get_metrics_pred(score, labels, pred)`` scores a fixed 0/1 prediction.

Key names and values match TSB-AD 1.5 (tests/fixtures/tsbad_metrics). Deliberate
difference: where TSB-AD raises on degenerate labels (all 0 or all 1), these functions
return NaN for the undefined metrics with a warning, and TSB-AD's per-metric values for
the rest; see docs/metrics.md.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score

from anomamind.eval.affiliation import affiliation_f
from anomamind.eval.range_f1 import (
    event_f1,
    event_f1_grid,
    pa_f1,
    pa_f1_grid,
    per_distinct_prediction,
    range_f1,
    range_f1_grid,
)
from anomamind.eval.vus import NoAnomalyRangesError, vus_pred, vus_roc_pr

#: Key order of ``get_metrics`` (TSB-AD 1.5).
SCORE_METRICS: tuple[str, ...] = (
    "AUC-PR",
    "AUC-ROC",
    "VUS-PR",
    "VUS-ROC",
    "Standard-F1",
    "PA-F1",
    "Event-based-F1",
    "R-based-F1",
    "Affiliation-F",
)
#: Key order of ``get_metrics_pred`` (TSB-AD 1.5).
PRED_METRICS: tuple[str, ...] = (
    "Standard-F1",
    "PA-F1",
    "Event-based-F1",
    "R-based-F1",
    "Affiliation-F",
    "VUS-Recall",
    "VUS-Precision",
    "VUS-F",
)
#: Number of evenly spaced thresholds of TSB-AD's oracle search for PA/Event/R/Affiliation.
ORACLE_GRID_SIZE = 100
#: Epsilon of TSB-AD's oracle Standard-F1, ``2PR / (P + R + 1e-5)`` (a perfect score is 0.999995).
STANDARD_F1_EPS = 1e-5


class MetricInputError(ValueError):
    """Arrays that cannot be scored (wrong shape, NaN scores, non-binary labels)."""


def _check_inputs(
    score: np.ndarray | Sequence[float],
    labels: np.ndarray | Sequence[int],
    pred: np.ndarray | Sequence[int] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    score_arr = np.asarray(score, dtype=np.float64).reshape(-1)
    labels_arr = np.asarray(labels).reshape(-1)
    if labels_arr.size == 0:
        raise MetricInputError("labels are empty")
    if score_arr.size != labels_arr.size:
        raise MetricInputError(
            f"score has {score_arr.size} points but labels have {labels_arr.size}"
        )
    if not np.isfinite(score_arr).all():
        raise MetricInputError(
            f"score has {int((~np.isfinite(score_arr)).sum())} NaN/inf values; "
            "replace them before evaluating"
        )
    if not np.isin(labels_arr, (0, 1)).all():
        raise MetricInputError("labels must contain only 0 and 1")
    labels_arr = labels_arr.astype(np.int64)
    pred_arr = None
    if pred is not None:
        pred_arr = np.asarray(pred).reshape(-1)
        if pred_arr.size != labels_arr.size:
            raise MetricInputError(
                f"pred has {pred_arr.size} points but labels have {labels_arr.size}"
            )
        if not np.isin(pred_arr, (0, 1)).all():
            raise MetricInputError("pred must contain only 0 and 1")
        pred_arr = pred_arr.astype(np.int64)
    return score_arr, labels_arr, pred_arr


def _warn_undefined(names: Sequence[str], why: str) -> None:
    warnings.warn(f"{', '.join(names)} undefined ({why}); reported as NaN", stacklevel=3)


def _oracle_max(values: np.ndarray) -> float:
    """Python ``max`` over a list, as TSB-AD takes it: a NaN first value wins, later NaNs lose."""
    if values.size == 0 or math.isnan(values[0]):
        return math.nan
    return float(np.nanmax(values))


def _oracle_grid(score: np.ndarray) -> np.ndarray:
    return np.linspace(score.min(), score.max(), ORACLE_GRID_SIZE)


def _oracle_standard_f1(labels: np.ndarray, score: np.ndarray) -> float:
    if not labels.any():
        return 0.0  # scikit-learn sets precision 0 at every threshold
    precision, recall, _ = precision_recall_curve(labels, score)
    return float(np.max(2 * precision * recall / (precision + recall + STANDARD_F1_EPS)))


def _oracle_affiliation(labels: np.ndarray, score: np.ndarray) -> float:
    return _oracle_max(per_distinct_prediction(affiliation_f, labels, score, _oracle_grid(score)))


def point_f1(labels: np.ndarray, pred: np.ndarray) -> float:
    """Standard-F1 of a fixed prediction (scikit-learn's F1 with ``zero_division=0``)."""
    tp = np.count_nonzero((labels == 1) & (pred == 1))
    denom = 2 * tp + np.count_nonzero(labels != pred)
    return 2 * tp / denom if denom else 0.0


def get_metrics(
    score: np.ndarray | Sequence[float],
    labels: np.ndarray | Sequence[int],
    sliding_window: int = 100,
    version: str = "opt",
    thre: int = 250,
    *,
    keys: Sequence[str] | None = None,
) -> dict[str, float]:
    """TSB-AD's ``get_metrics(score, labels, slidingWindow, pred=None, version, thre)``.

    The F1-type keys are TSB-AD's oracle maxima over thresholds picked on ``labels``.
    ``version`` is accepted for compatibility ("opt" and "opt_mem" give identical values).
    ``keys`` (an addition to TSB-AD's signature) computes only the named metrics, e.g.
    ``keys=("VUS-PR", "AUC-PR")`` skips the oracle F1 searches.
    """
    if version not in ("opt", "opt_mem"):
        raise ValueError(f"version must be 'opt' or 'opt_mem', got {version!r}")
    if sliding_window < 0 or thre < 2:
        raise ValueError(f"need sliding_window >= 0 and thre >= 2 (got {sliding_window}, {thre})")
    wanted = _wanted_keys(keys, SCORE_METRICS)
    score, labels, _ = _check_inputs(score, labels)
    has_positive, has_negative = bool(labels.any()), not bool(labels.all())
    out: dict[str, float] = {}
    undefined: list[str] = []

    if "AUC-PR" in wanted:
        out["AUC-PR"] = float(average_precision_score(labels, score)) if has_positive else 0.0
    if "AUC-ROC" in wanted:
        if has_positive and has_negative:
            out["AUC-ROC"] = float(roc_auc_score(labels, score))
        else:
            out["AUC-ROC"] = math.nan
            undefined.append("AUC-ROC")
    if wanted & {"VUS-PR", "VUS-ROC"}:
        try:
            out["VUS-ROC"], out["VUS-PR"] = vus_roc_pr(labels, score, sliding_window, thre)
        except NoAnomalyRangesError:
            out["VUS-ROC"] = out["VUS-PR"] = math.nan
            undefined += sorted(wanted & {"VUS-PR", "VUS-ROC"})

    grid = _oracle_grid(score)
    if "Standard-F1" in wanted:
        out["Standard-F1"] = _oracle_standard_f1(labels, score)
    if "PA-F1" in wanted:
        out["PA-F1"] = _oracle_max(pa_f1_grid(labels, score, grid))
    if "Event-based-F1" in wanted:
        out["Event-based-F1"] = _oracle_max(event_f1_grid(labels, score, grid))
    if "R-based-F1" in wanted:
        out["R-based-F1"] = _oracle_max(range_f1_grid(labels, score, grid))
    if "Affiliation-F" in wanted:
        out["Affiliation-F"] = _oracle_affiliation(labels, score) if has_positive else math.nan
    if not has_positive:
        undefined += [k for k in ("Event-based-F1", "Affiliation-F") if k in wanted]
    if undefined:
        _warn_undefined(undefined, "labels are all 0" if not has_positive else "labels are all 1")
    return {key: out[key] for key in SCORE_METRICS if key in wanted}


def _wanted_keys(keys: Sequence[str] | None, known: Sequence[str]) -> set[str]:
    """The requested metric names (all when None); unknown names are an error."""
    if keys is None:
        return set(known)
    unknown = [k for k in keys if k not in known]
    if unknown:
        raise ValueError(f"unknown metric name(s) {unknown}; known: {', '.join(known)}")
    return set(keys)


def get_metrics_pred(
    score: np.ndarray | Sequence[float],
    labels: np.ndarray | Sequence[int],
    pred: np.ndarray | Sequence[int],
    sliding_window: int = 100,
) -> dict[str, float]:
    """TSB-AD's ``get_metrics_pred(score, labels, pred, slidingWindow)`` for a 0/1 ``pred``."""
    if sliding_window < 0:
        raise ValueError(f"need sliding_window >= 0 (got {sliding_window})")
    score, labels, pred = _check_inputs(score, labels, pred)
    has_positive = bool(labels.any())
    out: dict[str, float] = {
        "Standard-F1": point_f1(labels, pred),
        "PA-F1": pa_f1(labels, pred),
        "Event-based-F1": event_f1(labels, pred),
        "R-based-F1": range_f1(labels, pred),
        "Affiliation-F": affiliation_f(labels, pred) if has_positive else math.nan,
    }
    undefined = [] if has_positive else ["Event-based-F1", "Affiliation-F"]
    try:
        out["VUS-Recall"], out["VUS-Precision"], out["VUS-F"] = vus_pred(
            labels, pred, sliding_window
        )
    except NoAnomalyRangesError:
        out["VUS-Recall"] = out["VUS-Precision"] = out["VUS-F"] = math.nan
        undefined += ["VUS-Recall", "VUS-Precision", "VUS-F"]
    if undefined:
        _warn_undefined(undefined, "labels are all 0" if not has_positive else "labels are all 1")
    return {key: out[key] for key in PRED_METRICS}


def find_length_rank(values: np.ndarray | Sequence[float], rank: int = 1) -> int:
    """TSB-AD's sliding-window heuristic: the period from the autocorrelation's local maxima.

    Looks at lags 3..400 of the ACF of the first 20,000 points and returns the lag of the
    highest local maximum (``rank=1``) or, for ranks 2 and 3, TSB-AD's later-lag picks;
    125 when no usable maximum exists (or it lies outside lags 3..302). 0 for multivariate
    input, 1 for ``rank=0``, as in TSB-AD.
    """
    from scipy.signal import argrelextrema
    from statsmodels.tsa.stattools import acf

    data = np.squeeze(np.asarray(values, dtype=np.float64))
    if data.ndim > 1:
        return 0
    if rank == 0:
        return 1
    data = data[: min(20000, data.size)]
    base = 3
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # constant input: ACF is NaN
        auto_corr = acf(data, nlags=400, fft=True)[base:]
    local_max = argrelextrema(auto_corr, np.greater)[0]
    if local_max.size == 0:
        return 125
    by_height = np.argsort(auto_corr[local_max])[::-1]
    chosen = _pick_ranked_maximum(by_height, rank)
    if chosen is None:
        return 125
    lag = int(local_max[chosen])
    if lag < 3 or lag > 300:
        return 125
    return lag + base


def _pick_ranked_maximum(by_height: np.ndarray, rank: int) -> int | None:
    """Index into the local maxima chosen for ``rank``, replicating TSB-AD's loops.

    Rank 2: the first lower maximum at a later lag than the highest. Rank 3 repeats that
    search TSB-AD's way (slicing and indexing by the rank-2 candidate's *value*), falling
    back to 125 (None) where TSB-AD's code fails.
    """
    chosen = int(by_height[0])
    if rank == 2:
        for i in by_height[1:]:
            if i > by_height[0]:
                return int(i)
    elif rank == 3:
        later = [int(i) for i in by_height[1:] if i > by_height[0]]
        if not later:
            return None  # TSB-AD: NameError on id_tmp, caught -> 125
        id_tmp = later[0]
        for i in by_height[id_tmp:]:  # an empty slice when id_tmp is past the end
            if i > by_height[id_tmp]:
                return int(i)
    return chosen

