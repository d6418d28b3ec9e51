"""Label-free calibration: the tail level extrapolated from the bulk of a series' scores, its
use by the feature profile and the heuristic planner for a dataset without a knowledge
entry, and the labelling convention from the series' period."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import yaml
from scipy import stats

from anomamind.agents.heuristic import DetectionSettings
from anomamind.envs.detectors import make_heuristic_agent
from anomamind.tools.calibration import tail_level
from anomamind.tools.features_profile import FeatureProfile
from anomamind.tools.knowledge import KNOWLEDGE_DIR
from anomamind.types import Series


@pytest.mark.parametrize("shape", [-0.3, 0.0, 0.3])
def test_tail_level_extrapolates_a_pareto_tail_from_the_bulk(shape):
    x = stats.genpareto.rvs(shape, size=200_000, random_state=np.random.default_rng(0))
    for rate in (1e-3, 1e-4):  # far beyond the quantiles the shape comes from
        assert tail_level(x, rate) == pytest.approx(stats.genpareto.isf(rate, shape), rel=0.1)


def test_heavier_tails_get_higher_levels_and_edge_cases_are_defined():
    rng = np.random.default_rng(1)
    normal = np.abs(rng.standard_normal(20_000))
    heavy = np.abs(rng.standard_t(1.5, 20_000))
    assert tail_level(heavy, 1e-3) > 3 * tail_level(normal, 1e-3)
    assert tail_level(np.array([1.0, 2.0, np.nan, 3.0]), 0.01) == pytest.approx(2.98)  # no bulk: the quantile
    assert tail_level(np.r_[np.zeros(1000), np.inf, 5.0], 0.001) == 0.0  # flat bulk: the quantile; inf ignored
    assert tail_level(np.array([np.nan]), 0.01) == np.inf
    overflowing = np.r_[np.zeros(70), np.full(15, 1e-300), np.ones(15)]  # shape ~1000: beyond float64
    assert tail_level(overflowing, 0.01, 0.1) == 1.0  # the series' own quantile
    gap = np.r_[rng.uniform(0.0, 1.0, 900), rng.uniform(5.0, 6.0, 100)]  # a bulk no Pareto tail fits
    assert tail_level(gap, 0.01, 0.1) == np.quantile(gap, 0.99)  # never above the series' own quantile
    for bad in ({"rate": 0.0}, {"rate": 0.01, "contamination": 0.3}):
        with pytest.raises(ValueError, match="false-alarm rate|contamination"):
            tail_level(normal, **{"contamination": 0.1, **bad})


def test_dense_anomalies_do_not_raise_the_level_but_heavy_noise_does():
    """6% of the points far above the noise (TODS-like): the level rises a little above the
    noise's own (2.5 -> 3.8 at contamination 0.15), not into the anomalies, where the
    series' top quantiles lie."""
    rng = np.random.default_rng(4)
    noise = np.abs(rng.standard_normal(10_000))
    dense = noise.copy()
    dense[rng.choice(dense.size, 600, replace=False)] = rng.uniform(8.0, 30.0, 600)
    rate = 0.005
    assert np.quantile(dense, 1 - rate) > 8.0  # the top 0.5% is all anomalies
    for share in (0.1, 0.15):  # the default contamination and a derived one
        assert tail_level(noise, rate, share) < tail_level(dense, rate, share) < 6.0
    heavy = np.abs(rng.standard_t(2.0, 10_000))  # no anomalies, heavy noise: the level rises with it
    assert tail_level(heavy, rate) > 2 * tail_level(noise, rate)


def test_causal_tail_threshold_reads_only_the_prefix():
    rng = np.random.default_rng(2)
    values = rng.standard_normal(4000)
    changed = values.copy()
    changed[2500:] += rng.standard_t(1.2, 1500) * 50  # the future becomes wild
    before = FeatureProfile.build(values, causal=True).tail_threshold("spike", 2048, 0.001, 0.1)
    after = FeatureProfile.build(changed, causal=True).tail_threshold("spike", 2048, 0.001, 0.1)
    assert before == after
    whole = FeatureProfile.build(changed).tail_threshold("spike", 2048, 0.001, 0.1)
    assert whole > before  # whole-series mode sees the wild part


def _knowledge(tmp_path, rate: float | None):
    """The repository's knowledge with fixed label-free settings (independent of tuning)."""
    folder = tmp_path / f"knowledge-{rate}"
    shutil.copytree(KNOWLEDGE_DIR, folder)
    generic = yaml.safe_load((folder / "generic.yaml").read_text())
    generic["label_free_detector"] = {
        "thresholds": {"spike": 6.0, "jump": None, "level": 8.0, "seasonal": 8.0, "global": 8.0},
        "hysteresis": 1.0, "merge_gap": 0, "false_alarm_rate": rate, "contamination": 0.15, "event_fraction": 0.01,
    }
    (folder / "generic.yaml").write_text(yaml.safe_dump(generic))
    return [f"knowledge_dir={folder}"]


def _planned(series: Series, overrides: list[str]) -> tuple[dict[str, float], object, object]:
    outcome = make_heuristic_agent(overrides=overrides).run(series)
    planner = next(s for s in outcome.trajectories[5].steps if s.role == "planner")
    return {c.arguments["feature"]: c.arguments["threshold"] for c in planner.tool_calls}, planner, outcome


def test_unknown_dataset_thresholds_rise_with_the_series_own_tail(tmp_path):
    calibrated = _knowledge(tmp_path, 0.002)
    rng = np.random.default_rng(3)
    quiet, _, _ = _planned(Series(rng.standard_normal(3000), name="quiet", dataset="NEVER-SEEN"), calibrated)
    heavy = Series(rng.standard_t(1.5, 3000), name="noisy", dataset="NEVER-SEEN")  # no anomalies, heavy noise
    noisy, planner, outcome = _planned(heavy, calibrated)
    assert planner.info["false_alarm_rate"] == 0.002 and planner.info["contamination"] == 0.15
    assert "label-free" in planner.info["settings_source"]
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
    with pytest.raises(ValueError, match="contamination"):
        DetectionSettings.from_dict({"contamination": 0.5})
    with pytest.raises(ValueError, match="ranges"):
        DetectionSettings.from_dict({"ranges": {"ranges": {}}})


def test_dense_point_anomalies_keep_the_floors_and_are_found(tmp_path):
    """6% of the points are spikes (TODS's density): the thresholds stay at the floors, where
    the series' own top quantiles (inside the spikes) would have raised them above most."""
    rng = np.random.default_rng(5)
    values = rng.standard_normal(5000)
    spikes = rng.choice(np.arange(2, 4998), 300, replace=False)
    values[spikes] += rng.choice([-1.0, 1.0], 300) * rng.uniform(10.0, 25.0, 300)
    labels = np.zeros(values.size, dtype=np.int8)
    labels[spikes] = 1
    series = Series(values, labels=labels, name="dense", dataset="NEVER-SEEN")
    planned, _, outcome = _planned(series, _knowledge(tmp_path, 0.002))
    assert planned == {"spike": 6.0, "level": 8.0, "global": 8.0}
    spike_z = FeatureProfile.build(values).zscores("spike", 0, values.size)
    assert np.quantile(spike_z, 1 - 0.002) > 2 * planned["spike"]  # what a fit to the top would start from
    pred = outcome.prediction.pred.astype(bool)
    assert pred[spikes].mean() > 0.9 and labels[pred].mean() > 0.9, (pred[spikes].mean(), labels[pred].mean())
