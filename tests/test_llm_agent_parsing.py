"""Parsing of the LLM roles' answers: forgiving about wrapping, explicit about repairs."""

from __future__ import annotations

import pytest

from anomamind.agents.llm_roles import (
    find_json,
    parse_evaluation_answer,
    parse_locator_answer,
    parse_plan_answer,
    split_think,
)

# -- locator -----------------------------------------------------------------------------


def test_locator_fenced_json_after_think_block():
    text = '<think>spike near 130</think>\n```json\n{"description": "a spike", "intervals": [[125, 135]]}\n```\nDone.'
    answer = parse_locator_answer(text, 100, 200)
    assert answer.error is None and answer.intervals == [(125, 135)] and answer.description == "a spike"
    assert answer.notes == []


def test_locator_repairs_reversed_clips_and_drops_with_notes():
    text = '{"description": "d", "intervals": [[150, 140], [90, 110], [195, 230], [300, 310], "junk", {"start": 160, "end": 162}, 170]}'
    answer = parse_locator_answer(text, 100, 200, max_candidates=10)
    assert answer.intervals == [(140, 150), (100, 110), (195, 199), (160, 162), (170, 170)]
    joined = " | ".join(answer.notes)
    assert "reversed [150, 140] swapped" in joined
    assert "[90, 110] clipped to window [100, 199]" in joined
    assert "[300, 310] outside window [100, 199]; dropped" in joined
    assert "interval 4: not an interval: 'junk'; skipped" in joined


def test_locator_bare_array_and_candidate_limit():
    text = "Suspicious: [[101, 102], [110, 111], [120, 121]] and nothing else"
    answer = parse_locator_answer(text, 100, 200, max_candidates=2)
    assert answer.intervals == [(101, 102), (110, 111)]
    assert answer.description == "Suspicious:"
    assert any("bare array" in n for n in answer.notes) and any("kept the first 2" in n for n in answer.notes)


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("", "empty answer"),
        ("<think>only thoughts</think>", "empty answer"),
        ("the window looks fine", "unparseable answer"),
        ('{"description": "fine"}', "no 'intervals' list"),
        ('{"description": "x", "intervals": "100-120"}', "'intervals' is not a list"),
    ],
)
def test_locator_failures_give_no_candidates_and_an_error(text, error):
    answer = parse_locator_answer(text, 100, 200)
    assert answer.intervals == [] and error in answer.error


# -- planner -----------------------------------------------------------------------------


def test_plan_with_think_plan_and_thresholds():
    text = "<think>why</think>\n<Plan>1. feature_runs spike z>5</Plan>\n<Thresholds>{\"spike\": 5, \"level\": \"4.5\", \"bad\": \"high\"}</Thresholds>"
    answer = parse_plan_answer(text)
    assert answer.think == "why" and answer.plan == "1. feature_runs spike z>5"
    assert answer.thresholds == {"spike": 5.0, "level": 4.5}
    assert answer.notes == ["threshold 'bad'='high' is not a number; ignored"] and answer.error is None


def test_plan_without_tags_or_unclosed_is_used_with_a_note():
    assert parse_plan_answer("<PLAN>check spikes").plan == "check spikes"
    assert "not closed" in parse_plan_answer("<PLAN>check spikes").notes[0]
    loose = parse_plan_answer("<think>x</think> check level shifts above 4")
    assert loose.plan == "check level shifts above 4" and "no <Plan> block" in loose.notes[0]
    assert parse_plan_answer("<think>x</think>").error == "no plan in the answer"


# -- evaluator ---------------------------------------------------------------------------


def test_evaluation_object_with_trailing_text_and_nested_lists():
    text = '<think>ok</think> {"issues": ["a"], "suggestions": "do b", "needs_refinement": true, "quality_metrics": {"reasoning": "poor"}} thanks'
    answer = parse_evaluation_answer(text)
    assert answer.needs_refinement is True and answer.issues == ["a"] and answer.suggestions == ["do b"]
    assert answer.quality == {"reasoning": "poor"} and answer.error is None


@pytest.mark.parametrize(
    ("flag", "expected", "note"),
    [('"yes"', True, "string 'yes'"), ('"false"', False, "string 'false'"), ("null", False, "treated as false")],
)
def test_evaluation_flag_coercion_is_noted(flag, expected, note):
    answer = parse_evaluation_answer(f'{{"issues": [], "needs_refinement": {flag}}}')
    assert answer.needs_refinement is expected and note in answer.notes[0]


def test_unparseable_evaluation_means_no_refinement_with_an_error():
    answer = parse_evaluation_answer("All good!")
    assert answer.needs_refinement is False and answer.error.startswith("unparseable answer")


# -- helpers -----------------------------------------------------------------------------


def test_find_json_prefers_the_requested_kind_and_fenced_blocks():
    assert find_json('x [1, 2] {"a": [3]}', dict) == {"a": [3]}
    assert find_json('{"a": 1} ```json\n[5]\n```', list) == [5]
    with pytest.raises(ValueError, match="no JSON object"):
        find_json("[1]", dict)


def test_split_think_handles_an_unopened_block():
    assert split_think("reasoning</think> answer") == ("reasoning", "answer")
    assert split_think("no block") == ("", "no block")


def test_locator_drops_an_interval_beyond_both_ends_of_the_window():
    answer = parse_locator_answer('{"description": "d", "intervals": [[-500, 99999999], [120, 130]]}', 100, 200)
    assert answer.intervals == [(120, 130)]
    assert "interval 0: [-500, 99999999] outside window [100, 199]; dropped" in answer.notes


# -- detector ------------------------------------------------------------------------------


def test_a_stray_bracketed_number_in_prose_is_a_parse_failure_not_an_empty_detection():
    from anomamind.agents.parsing import parse_detection

    rambling = "<think>I keep looking</think> The value at [201] is odd; the value at [201] is odd; " * 20
    detection = parse_detection(rambling, 200, 300)
    assert not detection.ok and detection.intervals == []
    assert detection.parse_error == "unparseable answer: no JSON array of interval objects (found [201])"
    # prose that quotes the window, then the real (empty) answer: fine
    calm = parse_detection("<think>the window [200, 299] is calm</think> Looking at [200, 299]: nothing.\n[]", 200, 300)
    assert calm.ok and calm.intervals == []
    # one interval object among junk is an answer; the junk is noted
    mixed = parse_detection('<think>t</think>[201, {"interval": [210, 212], "type": "spike", "confidence": 2}]', 200, 300)
    assert mixed.ok and [(iv.start, iv.end) for iv in mixed.intervals] == [(210, 212)]
    assert mixed.notes == ["element 0 is not an object; skipped"]


def test_an_interval_beyond_the_window_with_an_unknown_type_and_confidence_99_flags_nothing():
    from anomamind.agents.parsing import parse_detection
    from anomamind.rl.rewards import rule_matching

    text = ('<think>everything</think>[{"interval": [-500, 99999999], "type": "apocalypse", "confidence": 99},'
            ' {"interval": [250, 251], "type": "cosmic", "confidence": 99}]')
    detection = parse_detection(text, 200, 300)
    assert detection.ok
    assert [(iv.start, iv.end, iv.type, iv.confidence) for iv in detection.intervals] == [(250, 251, "other", 3)]
    assert detection.notes == [
        "element 0: interval [-500, 99999999] outside window [200, 299] at both ends; dropped",
        "element 1: unknown type 'cosmic' mapped to 'other'",
        "element 1: confidence 99 clipped to 1..3",
    ]
    # invalid for the rule_matching reward: element 0 breaks the window rule, element 1 type and confidence
    (score,) = rule_matching(["p"], [text], window_start=[200], window_end=[300])
    assert score == pytest.approx((0.75 + 0.5) / 2)
