"""Heuristic roles and feature profiles on tiny synthetic series."""

from __future__ import annotations

import numpy as np
import pytest

from anomamind.agents.heuristic import DetectionSettings, make_heuristic_roles
from anomamind.tools.registry import TaskTools
from anomamind.tools.features_profile import FeatureProfile, estimate_period, runs_above
from anomamind.agents.parsing import is_well_formatted, parse_detection
from anomamind.agents.roles import WindowTask
from anomamind.envs.windowing import make_windows
from anomamind.types import Detection, Interval, Series


def _series(n: int = 600, spike_at: int = 250, spike: float = 4.0, seed: int = 0) -> Series:
    rng = np.random.default_rng(seed)
    x = np.sin(2 * np.pi * np.arange(n) / 25) + rng.normal(0, 0.05, n)
    x[spike_at] += spike
    y = np.zeros(n, dtype=int)
    y[spike_at] = 1
    return Series(x, y, name="toy", dataset="TOY")


def _task(series: Series, window_index: int, disabled=(), knowledge=None) -> WindowTask:
    window = make_windows(series, 100, 100)[window_index]
    profile = None if "feature_extraction" in disabled else FeatureProfile.build(series.values)
    return WindowTask(series, window, profile, knowledge, {"mode": "whole-series"}, tuple(disabled))


def _run(task: WindowTask, roles=None):
    roles = roles or make_heuristic_roles()
    located = roles.locator.locate(task)
    task.upstream["located"] = located
    plan = roles.planner.plan(task, located)
    task.upstream["plan"] = plan
    evidence = roles.actor.act(task, plan, TaskTools())
    task.upstream["evidence"] = evidence
    text, step = roles.detector.detect(task, [])
    return located, plan, evidence, text


def test_period_and_spike_zscore():
    s = _series()
    assert estimate_period(s.values) == 25
    profile = FeatureProfile.build(s.values)
    z = profile.zscores("spike", 200, 300)
    assert int(np.argmax(z)) == 50 and z.max() > 20
    assert np.median(z) < 1.5


def test_causal_profile_ignores_the_future():
    s = _series()
    changed = s.values.copy()
    changed[400:] += 50.0
    a = FeatureProfile.build(s.values, causal=True, period_from=300)
    b = FeatureProfile.build(changed, causal=True, period_from=300)
    assert a.period == b.period == 25
    for feature in a.features:
        np.testing.assert_allclose(a.residual[feature][:400], b.residual[feature][:400])
        np.testing.assert_allclose(a.zscores(feature, 300, 400), b.zscores(feature, 300, 400))
    # whole-series mode does look ahead (centred references)
    c = FeatureProfile.build(s.values)
    d = FeatureProfile.build(changed)
    assert not np.allclose(c.residual["level"][360:400], d.residual["level"][360:400])


def test_runs_above_hysteresis():
    z = np.array([0, 2, 5, 2, 0, 2.5, 0, 6])
    assert runs_above(z, 4, 1.5, offset=10) == [[11, 13, 5.0], [17, 17, 6.0]]


def test_detector_finds_the_spike_and_writes_the_canonical_format():
    s = _series()
    task = _task(s, 2)
    located, plan, evidence, text = _run(task)
    assert is_well_formatted(text)
    detection = parse_detection(text, 200, 300)
    assert detection.ok and not detection.notes
    assert any(iv.start <= 250 <= iv.end for iv in detection.intervals)
    assert all(iv.length < 10 for iv in detection.intervals)
    hit = next(iv for iv in detection.intervals if iv.start <= 250 <= iv.end)
    assert hit.confidence == 3 and hit.type.startswith("point")
    assert any(c.start <= 250 <= c.end for c in located.candidates)


def test_normal_window_predicts_nothing():
    task = _task(_series(), 4)
    *_, text = _run(task)
    assert parse_detection(text, 400, 500).intervals == []


def test_confidence_grows_with_the_evidence():
    confidences = []
    for spike in (0.45, 4.0):
        task = _task(_series(spike=spike), 2)
        *_, text = _run(task)
        hits = [iv for iv in parse_detection(text, 200, 300).intervals if iv.start <= 250 <= iv.end]
        confidences.append(hits[0].confidence if hits else 0)
    assert confidences[0] < confidences[1]


def test_planner_reads_thresholds_from_the_knowledge_memory():
    s = _series()
    strict = DetectionSettings(thresholds={"spike": 99.0})
    _, plan, evidence, text = _run(_task(s, 2, knowledge=strict))
    assert [c.arguments["feature"] for c in plan.tool_calls] == ["spike"]
    assert "knowledge memory" in plan.step.info["settings_source"]
    assert parse_detection(text, 200, 300).intervals == []
    _, plan_off, _, _ = _run(_task(s, 2, disabled=["knowledge_memory"], knowledge=strict))
    assert plan_off.step.info["settings_source"].startswith("generic defaults")
    assert len(plan_off.tool_calls) > 1


def test_feature_extraction_off_leaves_only_raw_values():
    _, plan, evidence, text = _run(_task(_series(), 2, disabled=["feature_extraction"]))
    assert {c.name for c in plan.tool_calls} == {"raw_value_outliers"}
    assert all(r.name == "raw_value_outliers" for r in evidence.tool_results)


def test_localization_off_means_no_candidates_and_no_second_round():
    s = _series(spike=0.35)  # weak: round 1 misses it, the locator's candidate rescues it
    roles = make_heuristic_roles(locator={"saliency_threshold": 2.0})
    located, _, evidence, text = _run(_task(s, 2), roles)
    off, _, evidence_off, text_off = _run(_task(s, 2, disabled=["localization"]), roles)
    assert off.candidates == [] and len(evidence_off.steps) == 1
    assert any(c.start <= 250 <= c.end for c in located.candidates) and len(evidence.steps) == 2
    assert [(iv.start, iv.end) for iv in parse_detection(text, 200, 300).intervals] == [(250, 250)]
    assert parse_detection(text_off, 200, 300).intervals == []


def test_toolbox_reports_bad_calls_as_errors():
    from anomamind.types import ToolCall

    task = _task(_series(), 0)
    results = TaskTools().run_calls(
        [ToolCall("nope", {}), ToolCall("feature_runs", {"feature": "bogus", "threshold": 3})], task
    )
    assert all(not r.ok for r in results)
    assert "unknown tool" in results[0].error and "bogus" in results[1].error


def test_evaluator_flags_window_long_and_unsupported_intervals():
    s = _series()
    task = _task(s, 2)
    roles = make_heuristic_roles()
    _, plan, evidence, _ = _run(task, roles)
    detection = Detection(intervals=[Interval(200, 299, "level-shift", "", 1), Interval(210, 212, "other", "", 2)])
    verdict = roles.evaluator.evaluate(task, plan, evidence, detection)
    assert verdict.needs_refinement
    reasons = {tuple(f[:2]): f[2] for f in verdict.quality["flagged"]}
    assert reasons[(210, 212)] == "unsupported"
    good = parse_detection(_run(_task(s, 2), roles)[3], 200, 300)
    assert not roles.evaluator.evaluate(task, plan, evidence, good).needs_refinement


def test_settings_reject_unknown_keys():
    with pytest.raises(ValueError, match="unknown detection setting"):
        DetectionSettings.from_dict({"treshold": 3})


def test_causal_scales_use_at_least_the_training_prefix():
    s = _series()
    early = FeatureProfile.build(s.values, causal=True, period_from=300)
    with_prefix = FeatureProfile.build(s.values, causal=True, period_from=300, min_reference=400)
    assert early.center_and_scale("level", 0) != with_prefix.center_and_scale("level", 0)
    assert with_prefix.center_and_scale("level", 0) == with_prefix.center_and_scale("level", 300)
    # past the training prefix, the prefix before the window (power of two) takes over
    assert with_prefix.center_and_scale("level", 520) == early.center_and_scale("level", 520)
