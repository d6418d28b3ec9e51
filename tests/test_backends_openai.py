"""The OpenAI-compatible client against a real local HTTP server."""

from __future__ import annotations

import threading
import time

import pytest
from fake_chat_server import Drip, FakeChatServer, FakeError, Stall, reply

from anomamind.agents.backends.base import (
    INVALID_ARGUMENTS_KEY,
    BackendAuthError,
    BackendError,
    BackendTimeoutError,
    BackendUnreachableError,
    ContextOverflowError,
    ModelNotServedError,
    ReplyTooLargeError,
    VisionUnsupportedError,
)
from anomamind.agents.backends.messages import image_part, text_part
from anomamind.agents.backends.openai_compat import OpenAICompatBackend

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "zscore",
            "description": "robust z-scores",
            "parameters": {"type": "object", "properties": {"threshold": {"type": "number"}}},
        },
    }
]


class RecordingSleep:
    def __init__(self) -> None:
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def test_text_image_tools_and_usage_round_trip(monkeypatch):
    monkeypatch.setenv("FAKE_KEY_FOR_TEST", "sk-test-123")
    answer = reply("calling", tool_calls=[("zscore", {"threshold": 3.5})])
    with FakeChatServer([answer, "plain text"]) as server:
        backend = OpenAICompatBackend("m", base_url=server.base_url, api_key_env="FAKE_KEY_FOR_TEST")
        messages = [{"role": "user", "content": [text_part("look"), image_part(b"\x89PNG fake")]}]
        first = backend.chat(messages, tools=TOOLS, temperature=0.3, max_tokens=50, seed=7)
        second = backend.chat([{"role": "user", "content": "hi"}])

    assert first.text == "calling"
    assert [(c.name, c.arguments, c.id) for c in first.tool_calls] == [("zscore", {"threshold": 3.5}, "call_0")]
    assert first.finish_reason == "tool_calls"
    assert second.text == "plain text" and second.tool_calls == []
    body = server.requests[0]
    assert body["model"] == "m" and body["tools"] == TOOLS and body["seed"] == 7
    assert body["temperature"] == 0.3 and body["max_tokens"] == 50
    assert body["messages"][0]["content"][1]["image_url"]["url"].startswith("data:image/png;base64,")
    assert "tools" not in server.requests[1]
    assert server.request_headers[0]["Authorization"] == "Bearer sk-test-123"
    assert first.usage["prompt_tokens"] > 0 and second.usage["completion_tokens"] == 2
    totals = backend.usage.as_dict()
    assert totals["requests"] == 2
    assert totals["prompt_tokens"] == first.usage["prompt_tokens"] + second.usage["prompt_tokens"]


def test_split_off_reasoning_and_list_content_become_text():
    body = reply("")
    body["choices"][0]["message"].update(content=[{"type": "text", "text": "[]"}], reasoning_content="calm window")
    with FakeChatServer([body]) as server:
        response = OpenAICompatBackend("m", base_url=server.base_url).chat([{"role": "user", "content": "q"}])
    assert response.text == "<think>calm window</think>\n[]"


def test_invalid_tool_arguments_are_flagged_not_dropped():
    body = reply("x")
    body["choices"][0]["message"]["tool_calls"] = [
        {"id": "c1", "type": "function", "function": {"name": "zscore", "arguments": "{not json"}}
    ]
    with FakeChatServer([body]) as server:
        response = OpenAICompatBackend("m", base_url=server.base_url).chat([{"role": "user", "content": "q"}])
    assert response.tool_calls[0].arguments == {INVALID_ARGUMENTS_KEY: "{not json"}


def test_retries_429_and_5xx_with_backoff_and_retry_after():
    sleep = RecordingSleep()
    script = [FakeError(429, headers={"Retry-After": "2"}), FakeError(503), FakeError(500), "finally"]
    with FakeChatServer(script) as server:
        backend = OpenAICompatBackend("m", base_url=server.base_url, backoff_s=0.5, max_retries=4, sleep=sleep)
        response = backend.chat([{"role": "user", "content": "q"}])
    assert response.text == "finally"
    assert len(server.requests) == 4
    # Retry-After honoured first, then exponential backoff 0.5 * 2**attempt
    assert sleep.delays == [2.0, 1.0, 2.0]


def test_gives_up_after_max_retries_with_the_last_error():
    sleep = RecordingSleep()
    with FakeChatServer([FakeError(500, body="boom")] * 3) as server:
        backend = OpenAICompatBackend("m", base_url=server.base_url, backoff_s=0.1, max_retries=2, sleep=sleep)
        with pytest.raises(BackendError, match=r"gave up after 3 attempts.*HTTP 500: boom"):
            backend.chat([{"role": "user", "content": "q"}])
    assert len(server.requests) == 3 and sleep.delays == [0.1, 0.2]


def test_a_dead_endpoint_fails_fast_until_a_request_succeeds():
    sleep = RecordingSleep()
    down = FakeError(503)
    script = [down] * 3 + [down] * 3 + [down] + ["back"] + [down, "again"]
    with FakeChatServer(script) as server:
        backend = OpenAICompatBackend("m", base_url=server.base_url, max_retries=2, backoff_s=0.1, fail_fast_after=2, sleep=sleep)
        ask = [{"role": "user", "content": "q"}]
        for _ in range(2):
            with pytest.raises(BackendError, match="gave up after 3 attempts"):
                backend.chat(ask)
        with pytest.raises(BackendError, match="failed without retrying .*3 requests in a row failed"):
            backend.chat(ask)
        assert backend.chat(ask).text == "back"  # a single attempt that succeeds
        assert backend.chat(ask).text == "again"  # retries are back after a success
    assert len(server.requests) == 10
    assert sleep.delays == [0.1, 0.2, 0.1, 0.2, 0.1]


@pytest.mark.parametrize("status", [401, 403])
def test_auth_errors_fail_at_once_naming_the_key_variable(status, monkeypatch):
    monkeypatch.delenv("MISSING_KEY_FOR_TEST", raising=False)
    sleep = RecordingSleep()
    with FakeChatServer([FakeError(status)] * 5) as server:
        backend = OpenAICompatBackend("m", base_url=server.base_url, api_key_env="MISSING_KEY_FOR_TEST", sleep=sleep)
        with pytest.raises(BackendAuthError, match=r"MISSING_KEY_FOR_TEST is not set"):
            backend.chat([{"role": "user", "content": "q"}])
    assert len(server.requests) == 1 and sleep.delays == []
    assert "Authorization" not in server.request_headers[0]


def test_other_client_errors_are_not_retried():
    with FakeChatServer([FakeError(400, body="bad request: messages missing")]) as server:
        backend = OpenAICompatBackend("m", base_url=server.base_url, sleep=RecordingSleep())
        with pytest.raises(BackendError, match="HTTP 400: bad request"):
            backend.chat([{"role": "user", "content": "q"}])
    assert len(server.requests) == 1


def test_connection_refused_is_retried_then_reported():
    with FakeChatServer([]) as server:
        url = server.base_url  # the port is free again once the server stops
    sleep = RecordingSleep()
    backend = OpenAICompatBackend("m", base_url=url, max_retries=1, backoff_s=0.01, sleep=sleep, timeout_s=2)
    with pytest.raises(BackendUnreachableError, match=r"does not answer \(2 attempt\(s\)\)"):
        backend.chat([{"role": "user", "content": "q"}])
    assert sleep.delays == [0.01]


def test_chat_many_respects_the_concurrency_limit_and_keeps_order():
    in_flight = 0
    peak = 0
    lock = threading.Lock()

    def slow_echo(body):
        nonlocal in_flight, peak
        with lock:
            in_flight += 1
            peak = max(peak, in_flight)
        time.sleep(0.15)
        with lock:
            in_flight -= 1
        return body["messages"][0]["content"]

    with FakeChatServer(slow_echo) as server:
        backend = OpenAICompatBackend("m", base_url=server.base_url, max_concurrency=3)
        conversations = [[{"role": "user", "content": f"q{k}"}] for k in range(9)]
        responses = backend.chat_many(conversations)
    assert [r.text for r in responses] == [f"q{k}" for k in range(9)]
    assert peak == 3
    assert backend.usage.as_dict()["requests"] == 9


def test_semaphore_is_shared_by_threads_using_one_client():
    in_flight = 0
    peak = 0
    lock = threading.Lock()

    def slow(body):
        nonlocal in_flight, peak
        with lock:
            in_flight += 1
            peak = max(peak, in_flight)
        time.sleep(0.1)
        with lock:
            in_flight -= 1
        return "ok"

    with FakeChatServer(slow) as server:
        backend = OpenAICompatBackend("m", base_url=server.base_url, max_concurrency=2)
        threads = [threading.Thread(target=backend.chat, args=([{"role": "user", "content": "q"}],)) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert len(server.requests) == 6 and peak == 2


def test_non_json_and_choiceless_responses_are_clear_errors():
    with FakeChatServer([{"choices": []}]) as server:
        backend = OpenAICompatBackend("m", base_url=server.base_url)
        with pytest.raises(BackendError, match="no choices"):
            backend.chat([{"role": "user", "content": "q"}])
    assert len(server.requests) == 1  # a malformed success is not retried


# --------------------------------------------------------------------------- request deadline, reply size


def test_a_dripping_reply_is_cut_at_the_request_deadline_and_not_resubmitted():
    # 0.1 s per byte: the ~250-byte reply would take ~25 s; every read is fast, the request is not
    with FakeChatServer([Drip("a slow answer", interval_s=0.1), "never asked"]) as server:
        backend = OpenAICompatBackend("m", base_url=server.base_url, timeout_s=1.0, sleep=RecordingSleep())
        started = time.monotonic()
        with pytest.raises(BackendTimeoutError, match=r"still arriving at the 1 s request deadline") as caught:
            backend.chat([{"role": "user", "content": "q"}])
        elapsed = time.monotonic() - started
    assert elapsed < 2.0
    assert len(server.requests) == 1  # on_timeout: fail (the default) does not resubmit
    assert [a["outcome"] for a in caught.value.attempts] == ["timeout"]


def test_on_timeout_retry_longer_gives_one_attempt_with_a_longer_deadline():
    with FakeChatServer([Stall(1.5, "late"), Stall(1.0, "in time"), "unused"]) as server:
        backend = OpenAICompatBackend("m", base_url=server.base_url, timeout_s=1.2, on_timeout="retry_longer",
                                      retry_timeout_factor=2.0, sleep=RecordingSleep())
        response = backend.chat([{"role": "user", "content": "q"}])
    assert response.text == "in time"
    assert [(a["outcome"], a["deadline_s"]) for a in response.attempts] == [("timeout", 1.2), ("HTTP 200", 2.4)]
    with FakeChatServer([Stall(1.5, "late"), Stall(3.0, "too late")]) as server:
        backend = OpenAICompatBackend("m", base_url=server.base_url, timeout_s=1.2, on_timeout="retry_longer",
                                      sleep=RecordingSleep())
        with pytest.raises(BackendTimeoutError):
            backend.chat([{"role": "user", "content": "q"}])
    assert len(server.requests) == 2  # never a third, full-length resubmission


def test_an_oversized_reply_is_cut_and_recorded_as_a_failure():
    with FakeChatServer(["x" * 50_000]) as server:
        backend = OpenAICompatBackend("m", base_url=server.base_url, max_reply_bytes=10_000)
        with pytest.raises(ReplyTooLargeError, match="exceeded max_reply_bytes=10000") as caught:
            backend.chat([{"role": "user", "content": "q"}])
    assert caught.value.kind == "reply_too_large" and not caught.value.fatal
    assert caught.value.attempts[0]["outcome"] == "reply_too_large"


def test_every_attempts_usage_and_the_finish_reason_are_kept():
    with FakeChatServer([FakeError(503), reply("cut off mid", finish_reason="length")]) as server:
        backend = OpenAICompatBackend("m", base_url=server.base_url, backoff_s=0.01, sleep=RecordingSleep())
        response = backend.chat([{"role": "user", "content": "one two three"}])
    assert [a["outcome"] for a in response.attempts] == ["HTTP 503", "HTTP 200"]
    assert response.attempts[1]["usage"] == {"prompt_tokens": 3, "completion_tokens": 3}
    assert response.usage == {"prompt_tokens": 3, "completion_tokens": 3}
    assert response.finish_reason == "length" and response.cut_at_max_tokens


def test_a_server_side_context_overflow_is_its_own_kind():
    body = '{"error": {"message": "Requested tokens (2345) exceed context window of 2048"}}'
    with FakeChatServer([FakeError(400, body=body)]) as server:
        backend = OpenAICompatBackend("m", base_url=server.base_url)
        with pytest.raises(ContextOverflowError, match="set context_tokens"):
            backend.chat([{"role": "user", "content": "q"}])


# --------------------------------------------------------------------------- the server's /models


def test_the_model_name_is_checked_against_the_server_and_its_context_read():
    with FakeChatServer(["hi"], models=[{"id": "served", "max_model_len": 4096}]) as server:
        backend = OpenAICompatBackend("served", base_url=server.base_url, context_tokens=8192)
        assert backend.chat([{"role": "user", "content": "q"}]).text == "hi"
        assert backend.context_tokens == 4096  # the smaller of the configured and the served
        wrong = OpenAICompatBackend("Qwen/Qwen3-8B", base_url=server.base_url)
        with pytest.raises(ModelNotServedError, match=r"'Qwen/Qwen3-8B' is not served here; the server has \['served'\]"):
            wrong.chat([{"role": "user", "content": "q"}])
    assert len(server.requests) == 1  # the wrong name never reached the chat endpoint


def test_an_endpoint_without_models_is_used_unchecked(caplog):
    with FakeChatServer(["hi"]) as server:  # GET /v1/models answers 404
        backend = OpenAICompatBackend("anything", base_url=server.base_url, context_tokens=2048)
        assert backend.chat([{"role": "user", "content": "q"}]).text == "hi"
    assert backend.server_info == {"checked": False, "status": 404} and backend.context_tokens == 2048
    assert "is not checked" in caplog.text


def test_refused_credentials_at_models_are_fatal(monkeypatch):
    monkeypatch.setenv("WRONG_KEY_FOR_TEST", "sk-wrong")
    with FakeChatServer([], models=FakeError(401)) as server:
        backend = OpenAICompatBackend("m", base_url=server.base_url, api_key_env="WRONG_KEY_FOR_TEST")
        with pytest.raises(BackendAuthError, match=r"the key in \$WRONG_KEY_FOR_TEST was refused") as caught:
            backend.check()
    assert caught.value.fatal


# --------------------------------------------------------------------------- vision probe


@pytest.mark.parametrize(
    ("images", "vision", "outcome", "accepts"),
    [("accepted", "auto", "accepted", True), ("dropped", "auto", "dropped", False),
     ("stringified", "auto", "stringified", False), ("dropped", "false", None, False)],
)
def test_the_vision_probe_tells_what_happens_to_an_image(images, vision, outcome, accepts):
    with FakeChatServer([], images=images) as server:
        backend = OpenAICompatBackend("m", base_url=server.base_url, vision=vision)
        assert backend.accepts_images() is accepts
    assert (backend.vision_probe or {}).get("outcome") == outcome
    assert server.probes == (2 if outcome else 0) and server.requests == []


def test_vision_true_on_a_server_that_drops_images_is_a_fatal_error():
    with FakeChatServer([], images="dropped") as server:
        backend = OpenAICompatBackend("m", base_url=server.base_url, vision=True)
        with pytest.raises(VisionUnsupportedError, match="dropped the test image") as caught:
            backend.accepts_images()
    assert caught.value.fatal and caught.value.kind == "image_not_seen"


def test_a_server_that_refuses_content_parts_is_probed_as_rejecting_images():
    sleep = RecordingSleep()
    with FakeChatServer(["a real answer"], images="refused") as server:  # llama-cpp-python's jinja formats: HTTP 500
        backend = OpenAICompatBackend("m", base_url=server.base_url, max_retries=4, fail_fast_after=1, sleep=sleep)
        assert backend.accepts_images() is False
        assert backend.chat([{"role": "user", "content": "q"}]).text == "a real answer"
    assert backend.vision_probe["outcome"] == "rejected"
    assert "can only concatenate str" in backend.vision_probe["detail"]
    assert server.probes == 2 and sleep.delays == []  # a probe is not retried, nor counted as the endpoint failing


@pytest.mark.parametrize(("tools", "accepts"), [("accepted", True), ("ignored", False)])
def test_the_tools_probe_tells_whether_schemas_reach_the_model(tools, accepts):
    with FakeChatServer([], tools=tools) as server:
        backend = OpenAICompatBackend("m", base_url=server.base_url)
        assert backend.accepts_tools() is accepts
    assert backend.tools_probe["outcome"] == ("accepted" if accepts else "ignored") and server.probes == 2
