"""Reward terms on hand-computed cases (window [100, 110) unless said otherwise)."""

from __future__ import annotations

import json

import pytest

from anomamind.rl.rewards import (
    REWARD_TERMS,
    RewardConfig,
    build_reward_functions,
    evidence_ranges,
    false_positive,
    format_reward,
    rule_matching,
    score_completion,
    two_sided,
)

WS, WE = 100, 110
NORMAL = [0] * 10
ANOMALOUS = [0, 0, 1, 1, 1, 1, 0, 0, 0, 0]  # points 102..105


def answer(*items: dict, think: str = "looked at the evidence") -> str:
    return f"<think>{think}</think>\n{json.dumps(list(items))}"


def iv(start: int, end: int, type_: str = "level-shift", confidence=2) -> dict:
    return {"interval": [start, end], "type": type_, "explanation": "x", "confidence": confidence}


def run(term, text, labels=NORMAL, evidence=None, ws=WS, we=WE):
    columns = {"window_start": [ws], "window_end": [we], "labels": [labels]}
    if evidence is not None:
        columns["evidence"] = [evidence]
    return term(["prompt"], [text], **columns)[0]


# --------------------------------------------------------------------------- two_sided


def test_empty_prediction_on_normal_window_is_one():
    assert run(two_sided, answer()) == 1.0


def test_one_false_point_on_normal_window_is_half():
    assert run(two_sided, answer(iv(103, 103))) == 0.5


def test_three_false_points_on_normal_window():
    assert run(two_sided, answer(iv(103, 105))) == pytest.approx(1 / 4)


def test_point_f1_on_anomalous_window():
    # predicted 104..107 (4 points), true 102..105 (4 points): tp = 2 -> P = R = 0.5
    assert run(two_sided, answer(iv(104, 107)), ANOMALOUS) == pytest.approx(0.5)
    assert run(two_sided, answer(iv(102, 105)), ANOMALOUS) == pytest.approx(1.0)
    assert run(two_sided, answer(), ANOMALOUS) == 0.0


def test_overlapping_intervals_counted_once():
    # 102..104 and 103..105 cover 102..105 once: a perfect answer, not 6 predicted points
    assert run(two_sided, answer(iv(102, 104), iv(103, 105)), ANOMALOUS) == pytest.approx(1.0)
    # on a normal window the union 103..105 is 3 points: 1 / (1 + 3)
    assert run(two_sided, answer(iv(103, 104), iv(104, 105))) == pytest.approx(0.25)


def test_reversed_interval_is_swapped_before_scoring():
    assert run(two_sided, answer(iv(105, 102)), ANOMALOUS) == pytest.approx(1.0)


def test_out_of_window_interval_is_clipped_or_dropped():
    # 108..115 is clipped to 108..109: two false points on a normal window
    assert run(two_sided, answer(iv(108, 115))) == pytest.approx(1 / 3)
    # wholly outside: dropped, nothing predicted inside the window
    assert run(two_sided, answer(iv(500, 510))) == 1.0


@pytest.mark.parametrize("text", ["", "no idea", "<think>hmm", "<think>a</think> [{"])
def test_unparseable_answer(text):
    assert run(two_sided, text) == 0.0
    assert run(two_sided, text, ANOMALOUS) == 0.0
    assert run(false_positive, text, ANOMALOUS) == 0.0
    assert run(rule_matching, text) == 0.0
    assert run(format_reward, text) == 0.0


def test_missing_labels_gives_none():
    assert two_sided(["p"], [answer()], window_start=[WS], window_end=[WE], labels=[None]) == [None]
    assert false_positive(["p"], [answer()]) == [None]


def test_label_length_mismatch_is_an_error():
    with pytest.raises(ValueError, match="labels have 3 points"):
        run(two_sided, answer(), [0, 0, 0])


# --------------------------------------------------------------------------- false_positive


def test_false_positive_share_of_intervals_touching_nothing():
    assert run(false_positive, answer(), ANOMALOUS) == 0.0
    assert run(false_positive, answer(iv(105, 107)), ANOMALOUS) == 0.0  # touches 105
    # two of three intervals miss 102..105
    text = answer(iv(100, 100), iv(103, 103), iv(108, 109))
    assert run(false_positive, text, ANOMALOUS) == pytest.approx(-2 / 3)
    assert run(false_positive, answer(iv(101, 101))) == -1.0


# --------------------------------------------------------------------------- rule_matching


def test_rule_matching_clean_answer_and_empty_answer():
    assert run(rule_matching, answer(iv(102, 105))) == 1.0
    assert run(rule_matching, answer()) == 1.0


def test_rule_matching_counts_broken_rules_per_element():
    # reversed (1 of 4 rules broken) and a fine one: mean(0.75, 1.0)
    assert run(rule_matching, answer(iv(105, 102), iv(106, 107))) == pytest.approx(0.875)
    # clipped to the window and unknown type: 2 of 4 broken
    assert run(rule_matching, answer(iv(108, 120, "weird-thing"))) == pytest.approx(0.5)
    # wholly outside the window: breaks the window rule only (4 rules, no evidence)
    assert run(rule_matching, answer(iv(500, 501))) == pytest.approx(0.75)
    # confidence 7 is out of 1..3
    assert run(rule_matching, answer(iv(102, 103, confidence=7))) == pytest.approx(0.75)
    # an element that is not an object obeys no rule
    text = "<think>t</think>\n" + json.dumps([iv(102, 103), "oops"])
    assert run(rule_matching, text) == pytest.approx(0.5)


def test_rule_matching_support_by_evidence():
    evidence = json.dumps({"candidates": [[103, 104]]})
    assert run(rule_matching, answer(iv(102, 105)), evidence=evidence) == 1.0
    # 5 rules with evidence: 108..109 is 4 points away from 104 (margin 2): unsupported
    assert run(rule_matching, answer(iv(108, 109)), evidence=evidence) == pytest.approx(0.8)
    # dropped (outside the window) fails window and support: 3 of 5
    assert run(rule_matching, answer(iv(500, 501)), evidence=evidence) == pytest.approx(0.6)
    # no flagged range at all: any interval is unsupported
    assert run(rule_matching, answer(iv(102, 102)), evidence="[]") == pytest.approx(0.8)


def test_evidence_forms_and_errors():
    assert evidence_ranges(None) is None
    assert evidence_ranges("") is None
    assert evidence_ranges([5, [9, 7], {"start": 1, "end": 2}, {"interval": [3, 4]}]) == [
        (5, 5), (7, 9), (1, 2), (3, 4)
    ]
    with pytest.raises(ValueError, match="no 'candidates'"):
        evidence_ranges({"points": []})
    with pytest.raises(ValueError, match="not valid JSON"):
        evidence_ranges("{")


# --------------------------------------------------------------------------- format_reward


def test_format_reward_strict():
    assert run(format_reward, answer(iv(102, 103))) == 1.0
    assert run(format_reward, answer()) == 1.0
    assert run(format_reward, json.dumps([iv(102, 103)])) == 0.0  # no think block
    assert run(format_reward, answer(iv(102, 103)) + " and more") == 0.0


def test_chat_message_completions():
    chat = [{"role": "assistant", "content": answer(iv(103, 103))}]
    parts = [{"role": "assistant", "content": [{"type": "text", "text": answer()}]}]
    columns = {"window_start": [WS, WS], "window_end": [WE, WE], "labels": [NORMAL, NORMAL]}
    assert two_sided(["p", "p"], [chat, parts], **columns) == [0.5, 1.0]
    assert format_reward(["p", "p"], [chat, parts]) == [1.0, 1.0]


# --------------------------------------------------------------------------- config


def test_build_reward_functions_names_and_weights():
    funcs, weights = build_reward_functions()
    assert [f.__name__ for f in funcs] == list(REWARD_TERMS)
    assert len(weights) == 4
    cfg = RewardConfig(enabled=["format_reward", "two_sided"], weights={"two_sided": 2.0})
    funcs, weights = build_reward_functions(cfg)
    assert [f.__name__ for f in funcs] == ["two_sided", "format_reward"]
    assert weights == [2.0, 1.0]


def test_support_margin_is_bound():
    evidence = json.dumps({"candidates": [[103, 104]]})
    funcs, _ = build_reward_functions(RewardConfig(enabled=["rule_matching"], support_margin=5))
    columns = {"window_start": [WS], "window_end": [WE], "evidence": [evidence]}
    assert funcs[0](["p"], [answer(iv(108, 109))], **columns) == [1.0]


def test_reward_config_rejects_unknown_terms():
    with pytest.raises(ValueError, match="unknown reward term"):
        RewardConfig(enabled=["two_sided", "f1"])
    with pytest.raises(ValueError, match="empty"):
        RewardConfig(enabled=[])


def test_score_completion_total():
    scores = score_completion(
        answer(iv(103, 103)), window_start=WS, window_end=WE, labels=NORMAL
    )
    # two_sided 0.5, false_positive -1, rule_matching 1, format 1 with default weights
    assert scores["two_sided"] == 0.5
    assert scores["total"] == pytest.approx(1.0 * 0.5 + 0.5 * -1 + 0.25 * 1 + 0.25 * 1)
