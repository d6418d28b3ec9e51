"""The workflow state machine over whole (tiny) series: prediction, ablations, refinement,
failures and trajectories."""

from __future__ import annotations

import json

import numpy as np
import pytest

from anomamind.agents.heuristic import make_heuristic_roles
from anomamind.tools.registry import TaskTools
from anomamind.agents.parsing import render_detection
from anomamind.envs.detectors import heuristic_context, make_heuristic_agent
from anomamind.envs.workflow import Workflow, WorkflowConfig, merge_intervals
from anomamind.eval.registry import create_detector
from anomamind.types import Interval, Series, Step


def _series(n: int = 800, seed: int = 1) -> Series:
    rng = np.random.default_rng(seed)
    x = np.sin(2 * np.pi * np.arange(n) / 25) + rng.normal(0, 0.05, n)
    y = np.zeros(n, dtype=int)
    for start, end, bump in ((230, 231, 3.0), (520, 540, 1.5)):
        if end <= n:
            x[start:end] += bump
            y[start:end] = 1
    return Series(x, y, name="toy", dataset="TOY")


#: Pins the toy dataset to the generic settings (an override makes it a known dataset), so
#: these workflow tests do not depend on the tuned label-free settings for unknown data.
TOY_SETTINGS = ["knowledge.TOY.hysteresis=0.7"]


def _f1(series: Series, pred: np.ndarray) -> float:
    y = series.labels.astype(bool)
    p = pred.astype(bool)
    tp = (y & p).sum()
    return 2 * tp / (y.sum() + p.sum())


def test_heuristic_agent_detects_point_and_sequence():
    s = _series()
    prediction = create_detector("heuristic-agent", overrides=TOY_SETTINGS).detect(s)
    assert prediction.pred.shape == prediction.scores.shape == (len(s),)
    assert prediction.failed_windows == 0 and prediction.info["windows"] == 8
    assert _f1(s, prediction.pred) > 0.8
    # score = confidence of the covering interval (0 outside) + evidence strength in [0, 1)
    levels = np.floor(prediction.scores)
    assert set(np.unique(levels)) <= {0, 1, 2, 3}
    np.testing.assert_array_equal(prediction.pred, (prediction.scores >= 1).astype(np.int8))
    for iv in prediction.intervals:
        assert (levels[iv.start : iv.end + 1] == iv.confidence).all()
    assert len(np.unique(prediction.scores)) > 100  # points are ranked, not just three levels
    assert all(0 <= iv.start <= iv.end < len(s) for iv in prediction.intervals)


def test_overlapping_windows_and_short_tail_cover_the_series():
    s = _series(n=730)
    outcome = make_heuristic_agent(window=100, stride=50, overrides=TOY_SETTINGS).run(s)
    assert outcome.trajectories[-1].info["window"] == [650, 730]
    assert _f1(s, outcome.prediction.pred) > 0.8


@pytest.mark.parametrize("ablation", ["feature_extraction", "knowledge_memory", "localization"])
def test_each_ablation_removes_its_input(ablation):
    s = _series()
    full = make_heuristic_agent(overrides=["knowledge.TOY.thresholds.spike=4.5"]).run(s)
    ablated = make_heuristic_agent(disable=[ablation], overrides=["knowledge.TOY.thresholds.spike=4.5"]).run(s)
    steps = {st.role: st for st in ablated.trajectories[2].steps}
    if ablation == "feature_extraction":
        assert {c.name for c in steps["planner"].tool_calls} == {"raw_value_outliers"}
    elif ablation == "knowledge_memory":
        assert steps["planner"].info["settings_source"].startswith("generic defaults")
        full_steps = {st.role: st for st in full.trajectories[2].steps}
        assert full_steps["planner"].info["settings_source"].startswith("knowledge memory")
    else:
        assert all(t.steps[0].info.get("disabled") for t in ablated.trajectories)
        assert all(sum(st.role == "actor" for st in t.steps) == 1 for t in ablated.trajectories)
    assert ablated.trajectories[0].info["disabled"] == [ablation]


def test_unknown_ablation_is_rejected():
    with pytest.raises(ValueError, match="unknown ablation"):
        make_heuristic_agent(disable=["vision"])


class _WholeWindowDetector:
    """A detector that first claims the whole window, then follows the feedback."""

    def __init__(self):
        self.calls = []

    def detect(self, task, messages):
        self.calls.append(messages)
        w = task.window
        if "feedback" in task.upstream:
            return render_detection([], "feedback taken"), Step("detector", messages, "")
        return render_detection([Interval(w.start, w.end - 1, "other", "", 1)], "all of it"), Step("detector")


def _workflow(detector=None, evaluator=True, max_refinements=1):
    roles = make_heuristic_roles(evaluator=evaluator)
    if detector is not None:
        roles.detector = detector
    return Workflow(
        roles,
        TaskTools(),
        context_factory=heuristic_context,
        config=WorkflowConfig(max_refinements=max_refinements),
    )


def test_evaluator_sends_the_answer_back_once_with_feedback():
    detector = _WholeWindowDetector()
    outcome = _workflow(detector).run_series(_series(n=300))
    assert outcome.prediction.intervals == []
    assert len(detector.calls) == 6  # three windows, two rounds each
    refinement = detector.calls[1]
    assert refinement[-2]["role"] == "assistant" and "all of it" in refinement[-2]["content"]
    assert "evaluator" in refinement[-1]["content"]
    roles = [st.role for st in outcome.trajectories[0].steps]
    assert roles.count("detector") == 2 and roles.count("evaluator") == 2
    assert outcome.trajectories[0].info["refinements"] == 1


def test_refinement_is_bounded_and_evaluator_can_be_switched_off():
    detector = _WholeWindowDetector()
    outcome = _workflow(detector, max_refinements=0).run_series(_series(n=300))
    assert len(detector.calls) == 3 and len(outcome.prediction.intervals) == 1  # merged windows
    detector = _WholeWindowDetector()
    _workflow(detector, evaluator=False).run_series(_series(n=300))
    assert len(detector.calls) == 3


class _FailingOnSecondWindow:
    def detect(self, task, messages):
        if task.window.index == 1:
            raise RuntimeError("backend down")
        return render_detection([], "fine"), Step("detector")


def test_a_failing_window_is_counted_and_the_series_goes_on():
    outcome = _workflow(_FailingOnSecondWindow()).run_series(_series(n=300))
    assert outcome.prediction.failed_windows == 1
    bad = outcome.trajectories[1]
    assert "backend down" in bad.detection.parse_error and "RuntimeError" in bad.info["error"]
    assert outcome.trajectories[2].detection.ok


class _Unparseable:
    def detect(self, task, messages):
        return "I think there is an anomaly somewhere", Step("detector")


def test_unparseable_answer_predicts_nothing_and_counts_as_failed():
    outcome = _workflow(_Unparseable(), evaluator=False).run_series(_series(n=200))
    assert outcome.prediction.failed_windows == 2 and not outcome.prediction.pred.any()


def test_trajectories_serialise_to_json_lines(tmp_path):
    path = tmp_path / "traj" / "toy.jsonl"
    make_heuristic_agent(trajectories=path, plot=True).run(_series(n=300))
    lines = path.read_text().splitlines()
    assert len(lines) == 3
    record = json.loads(lines[0])
    assert [s["role"] for s in record["steps"]][:3] == ["locator", "planner", "actor"]
    assert record["info"]["mode"] == "whole-series"
    image = record["steps"][0]["messages"][0]["content"][0]
    assert image["image_url"]["url"] == "<image omitted>"
    assert record["detection"]["parse_error"] is None


def test_causal_mode_is_recorded_and_still_detects():
    s = _series()
    outcome = make_heuristic_agent(causal=True).run(s)
    assert outcome.prediction.info["mode"] == "causal"
    assert _f1(s, outcome.prediction.pred) > 0.5


def test_merge_intervals_keeps_the_most_confident_part():
    merged = merge_intervals(
        [Interval(5, 9, "level-shift", "a", 1), Interval(10, 12, "point-global", "b", 3), Interval(20, 20)]
    )
    assert [(m.start, m.end, m.type, m.confidence) for m in merged] == [
        (5, 12, "point-global", 3),
        (20, 20, "other", 2),
    ]


def test_benchmark_path_skips_unread_prompts_but_predicts_the_same():
    s = _series()
    agent = make_heuristic_agent()
    fast = agent.workflow.run_series(s, keep_prompts=False)
    full = agent.run(s)
    np.testing.assert_array_equal(fast.prediction.pred, full.prediction.pred)
    np.testing.assert_array_equal(fast.prediction.scores, agent.detect(s).scores)
    detector_steps = [st for st in full.trajectories[2].steps if st.role == "detector"]
    assert detector_steps[0].messages[0]["role"] == "system"
    assert all(st.messages == [] for st in fast.trajectories[2].steps if st.role == "detector")



def test_role_config_follows_the_files_the_agents_read(tmp_path):
    """The upstream cache is keyed by role_config: it must change when knowledge or prompts change."""
    from anomamind.envs.detectors import files_digest, make_heuristic_agent, make_llm_agent

    (tmp_path / "a.yaml").write_text("x: 1\n")
    before = files_digest(tmp_path, "*.yaml")
    (tmp_path / "a.yaml").write_text("x: 2\n")
    assert files_digest(tmp_path, "*.yaml") != before
    heuristic = make_heuristic_agent().role_config
    assert heuristic["knowledge"] == make_heuristic_agent().role_config["knowledge"]
    llm = make_llm_agent().role_config
    assert isinstance(llm["config"], dict) and "backends" in llm["config"]  # contents, not a path
    assert llm["prompts"] and llm["knowledge"] == heuristic["knowledge"]


@pytest.mark.parametrize("dataset", ["TOY", "NEVER-SEEN"])  # pinned settings, and the label-free calibration
def test_causal_scores_before_a_window_boundary_ignore_later_points(dataset):
    s = _series(n=1500)
    s.dataset = dataset
    changed = Series(s.values.copy(), s.labels, name="toy-changed", dataset=dataset)
    changed.values[1000:] += np.random.default_rng(5).standard_t(1.5, 500) * 3  # the future changes
    agent = make_heuristic_agent(causal=True, overrides=TOY_SETTINGS)
    before, after = agent.detect(s), agent.detect(changed)
    np.testing.assert_array_equal(before.scores[:1000], after.scores[:1000])
    assert not np.array_equal(before.scores[1000:], after.scores[1000:])
