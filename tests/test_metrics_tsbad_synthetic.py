"""Parity with TSB-AD 1.5 on 64 more random cases (ties, ranges at both ends, windows 0..100).

tests/fixtures/tsbad_metrics_synthetic/ holds the inputs and TSB-AD 1.5's outputs; its
generate.py says how they were produced (in a separate venv with TSB-AD installed).
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest

from anomamind.eval.tsbad import get_metrics, get_metrics_pred

FIXTURES = Path(__file__).parent / "fixtures" / "tsbad_metrics_synthetic"
CASES = np.load(FIXTURES / "cases.npz")
EXPECTED = json.loads((FIXTURES / "expected.json").read_text())


@pytest.mark.parametrize("case", EXPECTED, ids=lambda c: f"case{c['case']}")
def test_matches_tsb_ad_on_random_case(case: dict) -> None:
    k = case["case"]
    labels, score, pred = CASES[f"labels_{k}"], CASES[f"score_{k}"], CASES[f"pred_{k}"]
    window = int(CASES[f"window_{k}"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = {
            "get_metrics": get_metrics(score, labels, sliding_window=window),
            "get_metrics_pred": get_metrics_pred(score, labels, pred, sliding_window=window),
        }
    mismatches = []
    for entry in ("get_metrics", "get_metrics_pred"):
        for key, expected in case[entry].items():
            got = ours[entry][key]
            same = math.isnan(got) if expected is None else abs(got - expected) <= 1e-9
            if not same:
                mismatches.append(f"{entry}[{key}]: ours {got}, TSB-AD {expected}")
    assert not mismatches, mismatches
