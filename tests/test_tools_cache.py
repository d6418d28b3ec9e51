"""Per-series caches must survive the trip to a benchmark worker process (pickling)."""

from __future__ import annotations

import pickle

import numpy as np

from anomamind.tools.context import ToolContext
from anomamind.types import Series


def test_context_keeps_an_unpickled_array_object():
    series = pickle.loads(pickle.dumps(Series(values=np.sin(np.arange(500) / 7.0), name="s")))
    first = ToolContext(values=series.values, window_start=0, window_end=100)
    second = ToolContext(values=series.values, window_start=100, window_end=200)
    # the same object, so the per-series statistics and feature profile are built once
    assert first.values is series.values and second.values is series.values
    assert first._features is second._features


def test_workflow_builds_the_feature_profile_once_per_unpickled_series(monkeypatch):
    from anomamind.envs.detectors import make_heuristic_agent
    from anomamind.envs.synthetic import generate_series
    from anomamind.tools import features_profile

    builds = []
    original = features_profile.FeatureProfile.build
    monkeypatch.setattr(
        features_profile.FeatureProfile, "build", staticmethod(lambda *a, **k: builds.append(1) or original(*a, **k))
    )
    series = pickle.loads(pickle.dumps(generate_series(seed=3, length=1000)))
    make_heuristic_agent().detect(series)
    assert len(builds) == 1
