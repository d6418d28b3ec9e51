"""scripts/derive_knowledge.py's label-free search: calibrated levels come from the current
calibration (never from a cache), and the ranges convention is refined on its own series."""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest

from anomamind.envs.synthetic import generate_series, write_tsbad_csv
from anomamind.paths import REPO_ROOT
from anomamind.tools.calibration import tail_level


@pytest.fixture(scope="module")
def derive():
    spec = importlib.util.spec_from_file_location("derive_knowledge", REPO_ROOT / "scripts" / "derive_knowledge.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules[spec.name]


def test_series_evidence_levels_follow_the_calibration_not_the_cache(derive, tmp_path, monkeypatch):
    path = write_tsbad_csv(generate_series(3, length=1500), tmp_path / "TOY")
    first = derive.series_evidence(path, tmp_path / "cache")
    assert first.tails[("spike", 0.002, 0.15)] == tail_level(first.z["spike"], 0.002, 0.15)
    monkeypatch.setattr(derive, "tail_level", lambda z, rate, share: 42.0)  # another calibration, same cache
    assert derive.series_evidence(path, tmp_path / "cache").tails[("spike", 0.002, 0.15)] == 42.0


def test_the_ranges_stage_is_judged_on_the_ranges_series_only(derive, monkeypatch):
    def evidence(dataset: str, period: int):
        return derive.SeriesEvidence(dataset, f"{dataset}{period}", period, {}, {}, np.zeros(51, dtype=np.int64),
                                     np.zeros((0, 2), dtype=np.int64))

    # A has one ranges series among many point series, B only ranges series
    pool = [evidence("A", 24) for _ in range(9)] + [evidence("A", 1440)] + [evidence("B", 1440) for _ in range(3)]
    judged = []
    monkeypatch.setattr(derive, "_coordinate_search", lambda replica, settings, ef, grid: judged.append(replica) or settings)
    monkeypatch.setattr(derive, "label_free_score", lambda replica, settings, ef: (0.0, {}))
    derive.tune_label_free(pool, 0.01, {"thresholds": {}})
    shared, ranges = judged
    assert len(shared.evidence) == 13 and [ev.period for ev in ranges.evidence] == [1440] * 4
    assert derive.dataset_weights(ranges.evidence).tolist() == [0.5, 1 / 6, 1 / 6, 1 / 6]
