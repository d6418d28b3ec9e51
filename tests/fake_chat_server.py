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
- ``reply(text, tool_calls=[(name, arguments), ...])``: text and/or tool calls;
- ``FakeError(status, body="...", headers={...})``: that HTTP error (e.g. 429 with
  ``{"Retry-After": "0"}``, 401, 500);
- a dict with ``"choices"``: sent verbatim as the response body.

The server listens on an ephemeral port in a daemon thread; ``base_url`` ends in ``/v1``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class FakeError:
    """An HTTP error the server should answer with."""

    status: int
    body: str = '{"error": {"message": "scripted error"}}'
    headers: dict[str, str] = field(default_factory=dict)


def reply(text: str = "", tool_calls: Sequence[tuple[str, dict[str, Any]]] = ()) -> dict[str, Any]:
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
        "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls" if tool_calls else "stop"}],
        "usage": {"prompt_tokens": 0, "completion_tokens": len(text.split())},
    }


Answer = Any
Responder = Sequence[Answer] | Callable[[dict[str, Any]], Answer]


class FakeChatServer:
    """Context manager running the scripted chat server; see the module docstring."""

    def __init__(self, responder: Responder) -> None:
        self._responder = responder
        self._script = None if callable(responder) else list(responder)
        self._lock = threading.Lock()
        self.requests: list[dict[str, Any]] = []
        self.request_headers: list[dict[str, str]] = []
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
                if isinstance(answer, FakeError):
                    self._send(answer.status, answer.body, answer.headers)
                    return
                if isinstance(answer, str):
                    answer = reply(answer)
                answer = dict(answer)
                answer.setdefault("usage", {"prompt_tokens": 0, "completion_tokens": 0})
                answer["usage"]["prompt_tokens"] = len(json.dumps(body["messages"]).split())
                self._send(200, json.dumps(answer))

            def _send(self, status: int, text: str, headers: dict[str, str] | None = None) -> None:
                data = text.encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

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
            self.requests.append(body)
            self.request_headers.append(headers)
            number = len(self.requests)
            if self._script is not None:
                if not self._script:
                    return FakeError(500, json.dumps({"error": {"message": f"script exhausted at request {number}"}}))
                return self._script.pop(0)
        return self._responder(body)  # callables run outside the lock, so they may block
