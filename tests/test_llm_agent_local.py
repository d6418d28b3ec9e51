"""The LLM agent with a LOCAL detector: a tiny random Qwen3 (transformers backend) answers
the detector prompt inside the workflow, while the other roles talk to the local HTTP
server. This is the shape of inference with a GRPO-trained detector checkpoint; the random
model's answer is not a detection, so the window is recorded as failed, not lost."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

import yaml  # noqa: E402
from fake_chat_server import FakeChatServer  # noqa: E402
from test_llm_agent import ScriptedAgent, spike_series  # noqa: E402

from anomamind.agents.backends.factory import make_backend  # noqa: E402
from anomamind.agents.backends.transformers_local import TransformersBackend  # noqa: E402
from anomamind.tools.registry import TaskTools  # noqa: E402
from anomamind.agents.llm_roles import make_llm_roles  # noqa: E402
from anomamind.envs.detectors import heuristic_context  # noqa: E402
from anomamind.envs.workflow import Workflow, WorkflowConfig  # noqa: E402
from anomamind.rl.tiny import build_tiny_qwen3  # noqa: E402


class NoRefinement(ScriptedAgent):
    def __call__(self, body):
        if body["messages"][0]["content"].startswith("You are the final reviewer"):
            return '{"issues": [], "suggestions": [], "needs_refinement": false, "quality_metrics": {}}'
        return super().__call__(body)


def test_local_detector_answers_inside_the_workflow(tmp_path):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny model: one thread is faster and leaves the other core free
    try:
        model, tokenizer = build_tiny_qwen3(seed=0)
        local = TransformersBackend(model, tokenizer=tokenizer, device="cpu")
        with FakeChatServer(NoRefinement()) as server:
            http = {"kind": "openai", "base_url": server.base_url, "model": "scripted", "api_key_env": "NO_KEY"}
            config = {
                "backends": {"general": http, "vision": http, "detector": {**http, "model": "unused"}},
                "detector": {"backend": "detector", "max_tokens": 8},
            }
            (tmp_path / "llm.yaml").write_text(yaml.safe_dump(config))
            remote = make_backend(http)
            roles = make_llm_roles(tmp_path / "llm.yaml", backends={"general": remote, "vision": remote, "detector": local})
            workflow = Workflow(roles, TaskTools(), context_factory=heuristic_context, config=WorkflowConfig(window=300))
            (task,) = workflow.tasks(spike_series())
            outcome = workflow.run_window(task)
            messages = workflow.detector_messages(task)
            expected = local.chat(messages, max_tokens=8)
    finally:
        torch.set_num_threads(threads)

    detector_step = next(s for s in outcome.trajectory.steps if s.role == "detector")
    assert detector_step.messages == messages  # the prompt built from the HTTP roles' evidence
    assert detector_step.text == expected.text  # greedy decoding of the local model
    assert detector_step.prompt_tokens == len(tokenizer(local.render_prompt(messages), add_special_tokens=False).input_ids)
    assert 1 <= detector_step.completion_tokens <= 8
    assert outcome.failed and outcome.detection.parse_error  # random weights: no parseable answer
    assert [s.role for s in outcome.trajectory.steps] == ["locator", "planner", "actor", "actor", "actor", "detector", "evaluator"]
    # the HTTP roles ran against the server; the detector did not
    assert len(server.requests) == 6
    assert not any("detector of a time-series" in b["messages"][0]["content"] for b in server.requests)
