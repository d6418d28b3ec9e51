"""Synthetic series and the recorded flags of the honest rule sets of benchmarks/rules/.

``python tests/honest_rule_sets.py`` re-records ``fixtures/rules_honest_flags.json`` (only
when a rule set is retrained on purpose); ``test_rules_honest_flags.py`` compares the
sandbox's current flags with it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RULE_SETS = ("YAHOO", "TODS", "IOPS", "WSD", "combined-sr-and/YAHOO", "combined-sr-or/YAHOO")
FIXTURE = Path(__file__).parent / "fixtures" / "rules_honest_flags.json"


def synthetic_series() -> list[np.ndarray]:
    """Five 4500-point series: noisy ones with spikes, level shifts, a variance burst and a
    flat stretch, and a smooth one with tall upward spikes."""
    rng = np.random.default_rng(20240611)
    t = np.arange(4500)
    out = []
    for k in range(4):
        values = np.sin(t / (17.0 + 9 * k)) * (1 + k) + rng.normal(scale=0.2 + 0.1 * k, size=t.size)
        values[rng.choice(t.size, 6, replace=False)] += rng.choice([-1, 1], 6) * (4 + 2 * k)
        values[1200 + 300 * k: 1500 + 300 * k] += 2.5
        values[3000:3150] *= 4.0
        values[3600:3700] = values[3600]
        out.append(values)
    smooth = np.sin(t / 50.0) + rng.normal(scale=0.01, size=t.size)
    smooth[[700, 2100, 3900]] += 10.0
    out.append(smooth)
    return out


def rule_set_flags() -> dict[str, list[list[list[int]]]]:
    """rule set -> series -> rule -> flagged point indices, from the current sandbox."""
    from anomamind.rules.detector import make_rule_detector
    from anomamind.types import Series

    series = [Series(v, None, name=f"synthetic-{k}") for k, v in enumerate(synthetic_series())]
    recorded = {}
    for name in RULE_SETS:
        detector = make_rule_detector(REPO / "benchmarks" / "rules" / name)
        try:
            matrices = [detector.rule_flags([s])[0] for s in series]
        finally:
            detector.close()
        recorded[name] = [[np.flatnonzero(row).tolist() for row in matrix] for matrix in matrices]
    return recorded


if __name__ == "__main__":
    FIXTURE.write_text(json.dumps(rule_set_flags()) + "\n")
    print(f"wrote {FIXTURE}")
