"""The rule-set detector: batched and per-series runs agree, and a rule that fails on one
series is reported for that series only."""

import numpy as np

from anomamind.rules.detector import RuleSetDetector
from anomamind.rules.rule import Rule, RuleSet
from anomamind.rules.sandbox import SandboxLimits
from anomamind.types import Series

SPIKES = """
import numpy as np
from anomamind.rules import features as F

def detect(values):
    # a spike: far from the window's median
    return np.abs(F.robust_zscore(values)) > 5
"""

FRAGILE = """
import numpy as np

def detect(values):
    # refuses windows with huge values (to test error reporting)
    if np.max(values) > 50:
        raise ValueError("value too large")
    return values > 3
"""


def make(seed: int, spike: float) -> Series:
    values = np.random.default_rng(seed).normal(size=500)
    values[123] = spike
    return Series(values, (np.arange(500) == 123).astype(int), name=f"s{seed}")


def test_detect_many_matches_detect_and_isolates_failures():
    rule_set = RuleSet([Rule("spikes", SPIKES), Rule("fragile", FRAGILE)], window_length=200)
    detector = RuleSetDetector(rule_set, limits=SandboxLimits(time_limit_s=5.0))
    series = [make(0, 10.0), make(1, 100.0), make(2, 10.0)]
    try:
        batched = detector.detect_many(series)
        single = [detector.detect(s) for s in series]
    finally:
        detector.close()
    for b, s in zip(batched, single):
        assert np.array_equal(b.pred, s.pred) and np.array_equal(b.scores, s.scores)
    assert [p.failed_windows for p in batched] == [0, 3, 0]
    assert "value too large" in batched[1].info["rule_errors"][0]
    assert batched[0].pred[123] == 1 and batched[0].scores[123] == 1.0  # both rules fire
    assert batched[1].pred[123] == 1 and batched[1].scores[123] == 0.5  # only the spike rule ran
    assert batched[0].info["threshold_candidates"] == [0.5, 1.0]
