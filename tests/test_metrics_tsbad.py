"""Parity with TSB-AD 1.5 on the reference fixtures, plus the deliberate differences.

tests/fixtures/tsbad_metrics/ holds 42 cases with the values TSB-AD 1.5 returned (see its
README). Where TSB-AD raised (cases 38-41: labels all 0 or all 1), the fixtures record each
metric run on its own; ours must not raise, must give NaN plus a warning where TSB-AD
failed, and TSB-AD's value everywhere else.
"""

from __future__ import annotations

import json
import math
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

from anomamind.eval.tsbad import (
    PRED_METRICS,
    SCORE_METRICS,
    MetricInputError,
    find_length_rank,
    get_metrics,
    get_metrics_pred,
)

FIXTURES = Path(__file__).parent / "fixtures" / "tsbad_metrics"
CASES = np.load(FIXTURES / "tsbad_metric_cases.npz")
EXPECTED = json.loads((FIXTURES / "tsbad_metric_expected.json").read_text())
TOLERANCE = 1e-9

#: Deliberate differences from TSB-AD, documented in docs/metrics.md:
#: case 38 (labels all 0, pred empty): TSB-AD's Standard-F1 raises IndexError (one class);
#: we return 0.0, scikit-learn's zero_division=0 value, which is also what TSB-AD returns
#: for the other all-0 cases (39, 40).
DELIBERATE = {(38, "get_metrics_pred", "Standard-F1"): 0.0}


@lru_cache(maxsize=None)
def _ours(case: int, entry: str) -> dict[str, float]:
    labels = CASES[f"labels_{case}"]
    score = CASES[f"score_{case}"]
    window = int(CASES["sliding_window"][case])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if entry == "get_metrics":
            return get_metrics(score, labels, sliding_window=window, version="opt", thre=250)
        return get_metrics_pred(score, labels, CASES[f"pred_{case}"], sliding_window=window)


def _expected(case: dict, entry: str, key: str):
    """TSB-AD's value, or ``"raised"`` when that metric raised on its own."""
    if case[entry] is not None:
        return case[entry][key]
    result = case["per_metric"][entry][key]
    return result["value"] if "value" in result else "raised"


PARAMS = [
    pytest.param(case["case"], entry, key, id=f"case{case['case']}-{entry}-{key}")
    for case in EXPECTED
    for entry, keys in (("get_metrics", SCORE_METRICS), ("get_metrics_pred", PRED_METRICS))
    for key in keys
]


@pytest.mark.parametrize("case_id, entry, key", PARAMS)
def test_matches_tsb_ad(case_id: int, entry: str, key: str) -> None:
    case = EXPECTED[case_id]
    got = _ours(case_id, entry)[key]
    expected = DELIBERATE.get((case_id, entry, key), _expected(case, entry, key))
    if expected is None or expected == "raised":
        assert math.isnan(got), f"{case['description']}: expected NaN, got {got}"
    else:
        assert got == pytest.approx(expected, abs=TOLERANCE, rel=0), case["description"]


def test_every_fixture_case_is_covered() -> None:
    assert len(EXPECTED) == 42 and len(PARAMS) == 42 * (len(SCORE_METRICS) + len(PRED_METRICS))


def test_key_order_matches_tsb_ad() -> None:
    assert tuple(EXPECTED[0]["get_metrics"]) == SCORE_METRICS
    assert tuple(EXPECTED[0]["get_metrics_pred"]) == PRED_METRICS


@pytest.mark.parametrize("case_id", [38, 39, 40, 41])
def test_degenerate_labels_warn_instead_of_raising(case_id: int) -> None:
    labels = CASES[f"labels_{case_id}"]
    score = CASES[f"score_{case_id}"]
    pred = CASES[f"pred_{case_id}"]
    window = int(CASES["sliding_window"][case_id])
    with pytest.warns(UserWarning, match="undefined"):
        get_metrics(score, labels, sliding_window=window)
    with pytest.warns(UserWarning, match="undefined"):
        get_metrics_pred(score, labels, pred, sliding_window=window)


def test_bad_input_is_named() -> None:
    with pytest.raises(MetricInputError, match="score has 3 points but labels have 2"):
        get_metrics([0.1, 0.2, 0.3], [0, 1])
    with pytest.raises(MetricInputError, match="NaN"):
        get_metrics([0.1, float("nan")], [0, 1])
    with pytest.raises(MetricInputError, match="labels must contain only 0 and 1"):
        get_metrics([0.1, 0.2], [0, 2])
    with pytest.raises(MetricInputError, match="pred must contain only 0 and 1"):
        get_metrics_pred([0.1, 0.2], [0, 1], [0, 3])
    with pytest.raises(ValueError, match="version"):
        get_metrics([0.1, 0.2], [0, 1], version="numba")


def test_find_length_rank_finds_the_period() -> None:
    t = np.arange(5000)
    rng = np.random.default_rng(0)
    values = np.sin(2 * np.pi * t / 48) + 0.1 * rng.standard_normal(t.size)
    assert find_length_rank(values, rank=1) == 48
    # the second pick is a later local maximum of the ACF: a multiple of the period
    assert find_length_rank(values, rank=2) % 48 in (0, 1, 47)
    assert find_length_rank(values, rank=0) == 1
    assert find_length_rank(np.ones(500)) == 125  # no autocorrelation maximum
    assert find_length_rank(rng.standard_normal((100, 2))) == 0


def test_keys_subset_gives_the_same_values() -> None:
    case = 28
    labels, score = CASES[f"labels_{case}"], CASES[f"score_{case}"]
    window = int(CASES["sliding_window"][case])
    subset = get_metrics(score, labels, sliding_window=window, keys=("VUS-PR", "AUC-ROC"))
    assert list(subset) == ["AUC-ROC", "VUS-PR"]
    full = _ours(case, "get_metrics")
    assert subset == {k: full[k] for k in subset}
    with pytest.raises(ValueError, match="unknown metric"):
        get_metrics(score, labels, keys=("F1",))
