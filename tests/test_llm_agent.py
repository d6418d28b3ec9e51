"""The LLM agent driven end to end against a local chat-completions server.

All five LLM roles run through the real workflow (make_llm_agent) and the OpenAI-compatible
backend: the locator gets the plotted window, the actor calls a tool, sees its result and
calls again, the evaluator sends the first detection back once, and the refined answer is
the final detection. The assertions read both the recorded trajectory and what the server
received.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from fake_chat_server import FakeChatServer, reply

from anomamind.agents.llm_roles import load_prompt
from anomamind.envs.detectors import make_llm_agent
from anomamind.tools.registry import default_registry
from anomamind.types import Series

SPIKE_AT = 260
ROLE_PROMPTS = {role: load_prompt(f"{role}.md") for role in ("locator", "planner", "actor", "evaluator")}
ROLE_PROMPTS["detector"] = load_prompt("detector_compact.md")


def role_of(body: dict) -> str:
    system = body["messages"][0]["content"]
    for role, prompt in ROLE_PROMPTS.items():
        if system.startswith(prompt):
            return role
    raise AssertionError(f"request from an unknown role: {system[:80]!r}")


class ScriptedAgent:
    """Answers each role as a well-behaved model would, with one refinement round."""

    def __init__(self) -> None:
        self.detector_calls = 0
        self.evaluator_calls = 0

    def __call__(self, body: dict):
        role = role_of(body)
        if role == "locator":
            return json.dumps({"description": "one sharp upward spike", "intervals": [[SPIKE_AT - 5, SPIKE_AT + 5]]})
        if role == "planner":
            return (
                "<think>a single spike: check the spike feature, then look closer at the candidate</think>\n"
                "<Plan>Call feature_runs on the spike feature with threshold 5; then re-run it inside "
                f"the candidate [{SPIKE_AT - 5}, {SPIKE_AT + 5}].</Plan>\n<Thresholds>{{\"spike\": 5}}</Thresholds>"
            )
        if role == "actor":
            tool_turns = [m for m in body["messages"] if m["role"] == "tool"]
            if not tool_turns:
                return reply("Running the plan.", [("feature_runs", {"feature": "spike", "threshold": 5.0})])
            if len(tool_turns) == 1:
                seen = json.loads(tool_turns[0]["content"])["output"]
                peak = seen["max_at"]
                return reply(
                    f"Peak at {peak}; checking around it.",
                    [("feature_runs", {"feature": "spike", "threshold": 5.0, "start": peak - 3, "end": peak + 3})],
                )
            return "Evidence is sufficient."
        if role == "detector":
            self.detector_calls += 1
            if self.detector_calls == 1:  # a wrong first answer, contradicting the evidence
                return '<think>maybe early</think>[{"interval": [210, 220], "type": "level-shift", "explanation": "guess", "confidence": 1}]'
            return (
                f'<think>feature_runs shows a spike run at {SPIKE_AT}</think>'
                f'[{{"interval": [{SPIKE_AT}, {SPIKE_AT}], "type": "spike", "explanation": "z far above 5", "confidence": 3}}]'
            )
        self.evaluator_calls += 1
        if self.evaluator_calls == 1:
            return json.dumps(
                {
                    "issues": ["interval [210, 220] has no support in the tool results"],
                    "suggestions": [f"report the spike at {SPIKE_AT} found by feature_runs"],
                    "needs_refinement": True,
                    "quality_metrics": {"planning": "good", "tool_usage": "good", "reasoning": "poor"},
                }
            )
        return '```json\n{"issues": [], "suggestions": [], "needs_refinement": false, "quality_metrics": {"reasoning": "good"}}\n```'


def spike_series() -> Series:
    rng = np.random.default_rng(0)
    t = np.arange(300)
    values = np.sin(2 * np.pi * t / 25) + 0.05 * rng.standard_normal(t.size)
    values[SPIKE_AT] += 6.0
    labels = np.zeros(t.size, dtype=int)
    labels[SPIKE_AT] = 1
    return Series(values, labels, name="spike_demo", dataset="SYNTH", domain="demo")


def write_config(tmp_path, base_url: str, **actor) -> str:
    backend = {"kind": "openai", "base_url": base_url, "model": "scripted", "api_key_env": "NO_KEY_NEEDED", "max_retries": 0}
    config = {
        "backends": {"general": backend, "vision": {**backend, "model": "scripted-vl"}, "detector": backend},
        "actor": {"max_tool_rounds": 3, **actor},
    }
    path = tmp_path / "llm.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def test_full_trajectory_with_tool_rounds_and_one_refinement(tmp_path):
    series = spike_series()
    script = ScriptedAgent()
    with FakeChatServer(script) as server:
        agent = make_llm_agent(config=write_config(tmp_path, server.base_url), window=300, trajectories=tmp_path / "traj.jsonl")
        outcome = agent.run(series)

    # the final detection and the series prediction
    (traj,) = outcome.trajectories
    assert traj.detection.ok
    assert [(iv.start, iv.end, iv.type, iv.confidence) for iv in traj.detection.intervals] == [
        (SPIKE_AT, SPIKE_AT, "point-global", 3)
    ]
    assert outcome.prediction.failed_windows == 0
    assert np.flatnonzero(outcome.prediction.pred).tolist() == [SPIKE_AT]

    # every role ran, in workflow order, with one refinement round
    assert [s.role for s in traj.steps] == [
        "locator", "planner", "actor", "actor", "actor", "detector", "evaluator", "detector", "evaluator"
    ]
    assert traj.info["refinements"] == 1
    locator, planner, act1, act2, act3 = traj.steps[:5]
    assert locator.info["candidates"] == [[SPIKE_AT - 5, SPIKE_AT + 5]]
    assert planner.info["thresholds"] == {"spike": 5.0}
    assert [c.arguments for c in act1.tool_calls] == [{"feature": "spike", "threshold": 5.0}]
    assert act1.tool_results[0].ok and act1.tool_results[0].output["max_at"] == SPIKE_AT
    assert act2.tool_calls[0].arguments["start"] == SPIKE_AT - 3
    assert [r[:2] for r in act2.tool_results[0].output["runs"]] == [[SPIKE_AT, SPIKE_AT]]
    assert act3.tool_calls == [] and act3.info["final"] is True
    assert traj.steps[6].info["needs_refinement"] is True and traj.steps[8].info["needs_refinement"] is False
    assert all(s.prompt_tokens > 0 for s in traj.steps)  # usage recorded for every model call
    assert json.loads((tmp_path / "traj.jsonl").read_text().splitlines()[0])["task_id"] == traj.task_id

    # what the server received
    roles = [role_of(b) for b in server.requests]
    assert roles == ["locator", "planner", "actor", "actor", "actor", "detector", "evaluator", "detector", "evaluator"]
    loc_body = server.requests[0]
    assert loc_body["model"] == "scripted-vl"
    image_parts = [p for p in loc_body["messages"][1]["content"] if p["type"] == "image_url"]
    assert len(image_parts) == 1 and image_parts[0]["image_url"]["url"].startswith("data:image/png;base64,")
    actor_bodies = server.requests[2:5]
    # the planner sees the whole shared toolkit (tools/catalogue.py) as one line per tool; the
    # actor is offered the full schemas of the tools the plan names
    toolkit = default_registry().names()
    assert {"feature_runs", "raw_value_outliers", "get_domain_knowledge", "level_shifts"} <= set(toolkit)
    planner_prompt = server.requests[1]["messages"][1]["content"]
    assert all(f"- {name}(" in planner_prompt for name in toolkit) and '"parameters"' not in planner_prompt
    assert all([t["function"]["name"] for t in b["tools"]] == ["feature_runs"] for b in actor_bodies)
    assert actor_bodies[0]["tools"] == [s for s in default_registry().schemas() if s["function"]["name"] == "feature_runs"]
    second = actor_bodies[1]["messages"]
    assert second[-2]["role"] == "assistant" and second[-2]["tool_calls"][0]["function"]["name"] == "feature_runs"
    assert second[-1]["role"] == "tool" and second[-1]["tool_call_id"] == second[-2]["tool_calls"][0]["id"]
    assert json.loads(second[-1]["content"])["output"]["max_at"] == SPIKE_AT
    assert sum(m["role"] == "tool" for m in actor_bodies[2]["messages"]) == 2
    assert "feature_runs" in server.requests[1]["messages"][1]["content"]  # the planner saw the toolkit
    refine = server.requests[7]["messages"]
    assert refine[-2]["role"] == "assistant" and "[210, 220]" in refine[-2]["content"]
    assert "has no support in the tool results" in refine[-1]["content"]
    assert "- 260: spike" in refine[1]["content"]  # the detector prompt carries the tool evidence


def test_actor_stops_at_the_tool_round_bound(tmp_path):
    calls = []

    def always_call(body):
        role = role_of(body)
        if role == "actor":
            calls.append(body)
            return reply("again", [("feature_runs", {"feature": "spike", "threshold": 4.0})])
        return {
            "locator": '{"description": "flat", "intervals": []}',
            "planner": "<Plan>run feature_runs</Plan>",
            "detector": "<think>none</think>[]",
            "evaluator": '{"issues": [], "suggestions": [], "needs_refinement": false, "quality_metrics": {}}',
        }[role]

    with FakeChatServer(always_call) as server:
        agent = make_llm_agent(config=write_config(tmp_path, server.base_url, max_tool_rounds=2), window=300)
        (traj,) = agent.run(spike_series()).trajectories
    actor_steps = [s for s in traj.steps if s.role == "actor"]
    assert len(calls) == 2 and len(actor_steps) == 2
    assert actor_steps[-1].info["bound_reached"] == "max_tool_rounds=2"
    assert traj.detection.ok and traj.detection.intervals == []


def test_text_tool_mode_and_unparseable_answers_are_recorded_not_fatal(tmp_path):
    def sloppy(body):
        role = role_of(body)
        if role == "locator":
            return "I think the plot looks odd somewhere."  # no JSON at all
        if role == "planner":
            return "<think>hmm</think>"  # no plan
        if role == "actor":
            assert "tools" not in body  # text mode: tools described in the prompt instead
            assert "<tool_call>" in body["messages"][0]["content"] and "feature_runs" in body["messages"][0]["content"]
            if body["messages"][-1]["role"] == "user" and "<tool_response>" in body["messages"][-1]["content"]:
                return "done"
            return 'ok <tool_call>{"name": "feature_runs", "arguments": {"feature": "spike", "threshold": 5}}</tool_call><tool_call>{bad json</tool_call>'
        if role == "detector":
            return "I cannot decide."  # unparseable detection
        return "looks fine to me"  # evaluator without JSON

    with FakeChatServer(sloppy) as server:
        agent = make_llm_agent(config=write_config(tmp_path, server.base_url, tool_mode="text"), window=300)
        outcome = agent.run(spike_series())
    (traj,) = outcome.trajectories
    by_role = {}
    for step in traj.steps:
        by_role.setdefault(step.role, []).append(step)
    assert by_role["locator"][0].info["parse_error"].startswith("unparseable answer")
    assert by_role["planner"][0].info["parse_error"] == "no plan in the answer"
    first_round = by_role["actor"][0]
    assert [c.name for c in first_round.tool_calls] == ["feature_runs", "?"]
    assert first_round.tool_results[0].ok and "not valid JSON" in first_round.tool_results[1].error
    assert by_role["evaluator"][0].info["parse_error"].startswith("unparseable answer")
    assert traj.detection.parse_error and traj.detection.intervals == []
    assert outcome.prediction.failed_windows == 1  # counted, and the run finished
    assert "<tool_response>" in server.requests[3]["messages"][-1]["content"]


def test_backend_failure_fails_the_window_but_not_the_run(tmp_path):
    from fake_chat_server import FakeError

    with FakeChatServer(lambda body: FakeError(500, "down")) as server:
        agent = make_llm_agent(config=write_config(tmp_path, server.base_url), window=150)
        outcome = agent.run(spike_series())
    assert outcome.prediction.failed_windows == 2 and len(outcome.trajectories) == 2
    assert "HTTP 500" in outcome.trajectories[0].detection.parse_error


def test_ablations_reach_the_prompts(tmp_path):
    def quiet(body):
        role = role_of(body)
        return {
            "planner": "<Plan>use raw_value_outliers with threshold 5</Plan>",
            "actor": "nothing to call",
            "detector": "<think>none</think>[]",
            "evaluator": '{"issues": [], "suggestions": [], "needs_refinement": false, "quality_metrics": {}}',
        }[role]

    with FakeChatServer(quiet) as server:
        agent = make_llm_agent(
            config=write_config(tmp_path, server.base_url), window=300,
            disable=["localization", "knowledge_memory", "feature_extraction"],
        )
        (traj,) = agent.run(spike_series()).trajectories
    assert [role_of(b) for b in server.requests] == ["planner", "actor", "detector", "evaluator"]  # no locator call
    assert traj.steps[0].info == {"disabled": True}
    planner_prompt = server.requests[0]["messages"][1]["content"]
    assert "Switched off in this run: localization, knowledge_memory, feature_extraction" in planner_prompt
    assert "not available (localization switched off)" in planner_prompt
    assert "Domain knowledge: not available (knowledge memory switched off)" in planner_prompt
    assert "Switched off in this run" in server.requests[1]["messages"][1]["content"]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("actor.backend=missing", r"actor.backend 'missing' is not defined"),
        ("actor.tool_mode=smoke", r"actor.tool_mode 'smoke' is not one of"),
        ("planner.temprature=0.1", r"unknown key\(s\) \['temprature'\]"),
    ],
)
def test_config_errors_name_the_problem(tmp_path, override, message):
    from anomamind.config import ConfigError

    with pytest.raises(ConfigError, match=message):
        make_llm_agent(config=write_config(tmp_path, "http://127.0.0.1:9/v1"), overrides=[override])
