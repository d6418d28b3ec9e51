"""A real HTTP server on 127.0.0.1 speaking OpenAI's ``/v1/chat/completions``, for tests.

Usage::

    from fake_chat_server import FakeChatServer, FakeError, reply

    with FakeChatServer(["first answer", FakeError(429), "second answer"]) as server:
        backend = OpenAICompatBackend("fake", base_url=server.base_url)
        ...
        server.requests        # JSON bodies received, in order (list of dicts)
        server.request_headers # their headers (dicts), same order

``responder`` is either a list of scripted answers, consumed one per request (running out
is an HTTP 500 naming the request number), or a callable ``responder(request_json)``
returning one answer. An answer is:

- a ``str``: the assistant's text;
- ``reply(text, tool_calls=[(name, arguments), ...], finish_reason=...)``: text and/or tool calls;
- ``FakeError(status, body="...", headers={...})``: that HTTP error (e.g. 429 with
  ``{"Retry-After": "0"}``, 401, 500);
- ``Drip(answer, interval_s)``: the answer's bytes one at a time, ``interval_s`` apart
  (headers first), like a server that is slow to finish;
- ``Stall(seconds, answer)``: the answer after ``seconds`` (before any header);
- a dict with ``"choices"``: sent verbatim as the response body.

``models``: what ``GET /v1/models`` lists (names or full entries); None answers it 404, a
``FakeError`` with that error.
``images``: how the server treats image parts, seen in the reported prompt tokens:
``accepted`` (100 tokens each, like a vision model), ``dropped`` (none, like a text-only
chat format), ``stringified`` (a token per 3 base64 characters), or ``refused`` (any
message whose content is a list of parts gets HTTP 500, as llama-cpp-python's jinja chat
formats answer). The vision probe's requests (``PROBE_TEXT``) are answered "ok" and
counted in ``probes``, not ``requests``.

``tools``: ``accepted`` counts the words of the request's tool schemas in the prompt
tokens (a chat format that renders them), ``ignored`` does not (one that drops them).

Reported usage: prompt tokens = whitespace-separated words of the messages' text (and of
the tool schemas when ``tools`` is accepted) plus the images' tokens; completion tokens =
words of the answer.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from anomamind.agents.backends.openai_compat import PROBE_TEXT

IMAGE_MODES = ("accepted", "dropped", "stringified", "refused")


@dataclass
class FakeError:
    """An HTTP error the server should answer with."""

    status: int
    body: str = '{"error": {"message": "scripted error"}}'
    headers: dict[str, str] = field(default_factory=dict)


#: How llama-cpp-python's jinja chat formats answer content parts.
_REFUSED = FakeError(500, '{"error": {"message": "can only concatenate str (not \\"list\\") to str"}}')


@dataclass
class Drip:
    """Send ``answer`` one byte every ``interval_s`` seconds."""

    answer: Any
    interval_s: float = 0.2


@dataclass
class Stall:
    """Wait ``seconds`` before answering with ``answer``."""

    seconds: float
    answer: Any = "late"


def reply(
    text: str = "", tool_calls: Sequence[tuple[str, dict[str, Any]]] = (), finish_reason: str | None = None
) -> dict[str, Any]:
    """A full chat-completions body whose first choice has ``text`` and ``tool_calls``."""
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if tool_calls:
        message["tool_calls"] = [
            {"id": f"call_{k}", "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}
            for k, (name, args) in enumerate(tool_calls)
        ]
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason or ("tool_calls" if tool_calls else "stop")}],
        "usage": {"prompt_tokens": 0, "completion_tokens": len(text.split())},
    }


Answer = Any
Responder = Sequence[Answer] | Callable[[dict[str, Any]], Answer]


def _first_text(messages: list[dict[str, Any]]) -> str:
    content = messages[0].get("content") if messages else ""
    if isinstance(content, list):
        return next((p.get("text", "") for p in content if p.get("type") == "text"), "")
    return str(content or "")


def prompt_tokens(messages: list[dict[str, Any]], images: str = "accepted") -> int:
    """The fake's token count: words of the text, plus each image's cost under ``images``."""
    words, image_cost = 0, 0
    for message in messages:
        content = message.get("content")
        parts = content if isinstance(content, list) else [{"type": "text", "text": content or ""}]
        for part in parts:
            if part.get("type") == "image_url":
                url = part["image_url"]["url"]
                image_cost += {"accepted": 100, "dropped": 0, "stringified": len(url) // 3}[images]
            else:
                words += len(str(part.get("text", "")).split())
        if message.get("tool_calls"):
            words += len(json.dumps(message["tool_calls"]).split())
    return words + image_cost


class FakeChatServer:
    """Context manager running the scripted chat server; see the module docstring."""

    def __init__(self, responder: Responder, *, models: Sequence[Any] | FakeError | None = None,
                 images: str = "accepted", tools: str = "accepted") -> None:
        if images not in IMAGE_MODES:
            raise ValueError(f"images must be one of {IMAGE_MODES}")
        self._responder = responder
        self._script = None if callable(responder) else list(responder)
        self._lock = threading.Lock()
        self.models = models
        self.images = images
        self.tools = tools
        self.requests: list[dict[str, Any]] = []
        self.request_headers: list[dict[str, str]] = []
        self.probes = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        assert self._server is not None, "server not started (use it as a context manager)"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self) -> "FakeChatServer":
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                if self.path.rstrip("/") != "/v1/models" or server.models is None:
                    self._send(404, json.dumps({"error": {"message": f"no route {self.path}"}}))
                    return
                if isinstance(server.models, FakeError):
                    self._send(server.models.status, server.models.body, server.models.headers)
                    return
                entries = [m if isinstance(m, dict) else {"id": m, "object": "model"} for m in server.models]
                self._send(200, json.dumps({"object": "list", "data": entries}))

            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                if self.path.rstrip("/") != "/v1/chat/completions":
                    self._send(404, json.dumps({"error": {"message": f"no route {self.path}"}}))
                    return
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    body = json.loads(self.rfile.read(length) or b"{}")
                except json.JSONDecodeError:
                    self._send(400, '{"error": {"message": "body is not JSON"}}')
                    return
                answer = server._record_and_answer(body, dict(self.headers))
                drip = None
                if isinstance(answer, Stall):
                    time.sleep(answer.seconds)
                    answer = answer.answer
                if isinstance(answer, Drip):
                    drip, answer = answer.interval_s, answer.answer
                if isinstance(answer, FakeError):
                    self._send(answer.status, answer.body, answer.headers)
                    return
                if isinstance(answer, str):
                    answer = reply(answer)
                answer = dict(answer)
                answer.setdefault("usage", {"prompt_tokens": 0, "completion_tokens": 0})
                answer["usage"]["prompt_tokens"] = prompt_tokens(body["messages"], server.images) + (
                    len(json.dumps(body.get("tools") or "").split()) if server.tools == "accepted" and body.get("tools") else 0
                )
                self._send(200, json.dumps(answer), drip=drip)

            def _send(self, status: int, text: str, headers: dict[str, str] | None = None, drip: float | None = None) -> None:
                data = text.encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                try:
                    if drip is None:
                        self.wfile.write(data)
                        return
                    for k in range(len(data)):
                        self.wfile.write(data[k : k + 1])
                        self.wfile.flush()
                        time.sleep(drip)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a deadline): nothing more to send

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def _record_and_answer(self, body: dict[str, Any], headers: dict[str, str]) -> Answer:
        with self._lock:
            messages = body.get("messages") or []
            if self.images == "refused" and any(isinstance(m.get("content"), list) for m in messages):
                self.probes += _first_text(messages) == PROBE_TEXT
                return _REFUSED
            if _first_text(messages) == PROBE_TEXT:
                self.probes += 1
                return "ok"
            self.requests.append(body)
            self.request_headers.append(headers)
            number = len(self.requests)
            if self._script is not None:
                if not self._script:
                    return FakeError(500, json.dumps({"error": {"message": f"script exhausted at request {number}"}}))
                return self._script.pop(0)
        return self._responder(body)  # callables run outside the lock, so they may block
