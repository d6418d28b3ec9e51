"""Label-free calibration: the peaks-over-threshold level, its use by the feature profile and
the heuristic planner for a dataset without a knowledge entry, and the labelling
convention from the series' period."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import yaml

from anomamind.agents.heuristic import DetectionSettings
from anomamind.envs.detectors import make_heuristic_agent
from anomamind.tools.calibration import pot_threshold
from anomamind.tools.features_profile import FeatureProfile
from anomamind.tools.knowledge import KNOWLEDGE_DIR
from anomamind.types import Series


def test_pot_level_matches_a_known_tail():
    x = np.random.default_rng(0).exponential(size=200_000)
    for rate in (1e-3, 1e-4):  # beyond the empirical 2% tail: the Pareto fit extrapolates
        assert pot_threshold(x, rate) == pytest.approx(-np.log(rate), rel=0.05)


def test_heavier_tails_get_higher_levels_and_edge_cases_are_defined():
    rng = np.random.default_rng(1)
    normal = np.abs(rng.standard_normal(20_000))
    heavy = np.abs(rng.standard_t(1.5, 20_000))
    assert pot_threshold(heavy, 1e-3) > 3 * pot_threshold(normal, 1e-3)
    assert pot_threshold(np.array([1.0, 2.0, np.nan, 3.0]), 0.01) == 3.0  # too short: the largest value
    assert pot_threshold(np.r_[np.zeros(1000), np.inf], 0.5) == 0.0  # inf ignored, rate in the bulk: quantile
    with pytest.raises(ValueError, match="false-alarm rate"):
        pot_threshold(normal, 0.0)


def test_causal_tail_threshold_reads_only_the_prefix():
    rng = np.random.default_rng(2)
    values = rng.standard_normal(4000)
    changed = values.copy()
    changed[2500:] += rng.standard_t(1.2, 1500) * 50  # the future becomes wild
    before = FeatureProfile.build(values, causal=True).tail_threshold("spike", 2048, 0.001)
    after = FeatureProfile.build(changed, causal=True).tail_threshold("spike", 2048, 0.001)
    assert before == after
    whole = FeatureProfile.build(changed).tail_threshold("spike", 2048, 0.001)
    assert whole > before  # whole-series mode sees the wild part


def _knowledge(tmp_path, rate: float | None):
    """The repository's knowledge with fixed label-free settings (independent of tuning)."""
    folder = tmp_path / f"knowledge-{rate}"
    shutil.copytree(KNOWLEDGE_DIR, folder)
    generic = yaml.safe_load((folder / "generic.yaml").read_text())
    generic["label_free_detector"] = {
        "thresholds": {"spike": 6.0, "jump": None, "level": 8.0, "seasonal": 8.0, "global": 8.0},
        "hysteresis": 1.0, "merge_gap": 0, "false_alarm_rate": rate, "event_fraction": 0.01,
    }
    (folder / "generic.yaml").write_text(yaml.safe_dump(generic))
    return [f"knowledge_dir={folder}"]


def _planned(series: Series, overrides: list[str]) -> tuple[dict[str, float], object, object]:
    outcome = make_heuristic_agent(overrides=overrides).run(series)
    planner = next(s for s in outcome.trajectories[5].steps if s.role == "planner")
    return {c.arguments["feature"]: c.arguments["threshold"] for c in planner.tool_calls}, planner, outcome


def test_unknown_dataset_thresholds_rise_with_the_series_own_tail(tmp_path):
    calibrated = _knowledge(tmp_path, 0.01)
    rng = np.random.default_rng(3)
    quiet, _, _ = _planned(Series(rng.standard_normal(3000), name="quiet", dataset="NEVER-SEEN"), calibrated)
    heavy = Series(rng.standard_t(1.5, 3000), name="noisy", dataset="NEVER-SEEN")  # no anomalies, heavy noise
    noisy, planner, outcome = _planned(heavy, calibrated)
    assert planner.info["false_alarm_rate"] == 0.01 and "label-free" in planner.info["settings_source"]
    assert quiet == {"spike": 6.0, "level": 8.0, "global": 8.0}  # light tails: the floors
    assert all(noisy[f] > quiet[f] for f in quiet), (quiet, noisy)
    # the same settings without the calibration flag far more of the noise
    uncalibrated = make_heuristic_agent(overrides=_knowledge(tmp_path, None)).detect(heavy)
    assert outcome.prediction.pred.sum() < 0.6 * uncalibrated.pred.sum(), (
        outcome.prediction.pred.sum(), uncalibrated.pred.sum())


def test_labelling_convention_follows_the_expected_anomaly_length():
    settings = DetectionSettings.from_dict(
        {"hysteresis": 1.0, "merge_gap": 0, "event_fraction": 0.01, "false_alarm_rate": 0.01,
         "ranges": {"hysteresis": 0.4, "merge_gap": 6, "max_fraction": 1.0}}
    )
    assert settings.event_length(0) == 1 and settings.event_length(24) == 1 and settings.event_length(1440) == 14
    points, convention = settings.for_period(24)
    assert convention == "points" and (points.hysteresis, points.merge_gap) == (1.0, 0)
    ranges, convention = settings.for_period(1440)
    assert convention == "ranges" and (ranges.hysteresis, ranges.merge_gap, ranges.max_fraction) == (0.4, 6, 1.0)
    assert ranges.false_alarm_rate == 0.01 and ranges.ranges is None
    with pytest.raises(ValueError, match="false_alarm_rate"):
        DetectionSettings.from_dict({"false_alarm_rate": 2})
    with pytest.raises(ValueError, match="ranges"):
        DetectionSettings.from_dict({"ranges": {"ranges": {}}})
