"""A client for any OpenAI-compatible ``/chat/completions`` endpoint (vLLM, llama.cpp, hosted APIs).

The API key is read from the environment variable named in the config (never from a
file). ``timeout_s`` bounds the WHOLE request (connect, wait, body): a server that drips
its reply a byte at a time is cut at the deadline, as is a reply larger than
``max_reply_bytes``. A timed-out request is not resubmitted unless ``on_timeout`` is
``retry_longer`` (one more attempt with a longer deadline): resubmitting a long prompt to a
slow server doubles the wait while the abandoned request keeps the server busy.
Connection errors, 429 and 5xx are retried with exponential backoff, honouring
``Retry-After``; after ``fail_fast_after`` requests in a row have failed for good, later
requests get a single attempt until one succeeds. 401/403 (:class:`BackendAuthError`) and
an endpoint that never answers (:class:`BackendUnreachableError`) are fatal: every later
request would fail the same way, so the command stops. A shared semaphore caps concurrent
requests at ``max_concurrency``. Every attempt is recorded (outcome, seconds, usage).

:meth:`check` asks the server's ``/models`` once: the configured model must be served
(llama.cpp answers any name with its one loaded model) and a context length the server
reports there (vLLM's ``max_model_len``, ...) bounds :attr:`context_tokens`.
:meth:`accepts_images` and :meth:`accepts_tools` probe once whether images and tool schemas
reach the model (:func:`probe_vision`, :func:`probe_tools`): chat formats drop them silently.
"""

from __future__ import annotations

import io
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import requests

from .base import (
    BackendAuthError,
    BackendError,
    BackendTimeoutError,
    BackendUnreachableError,
    ChatResponse,
    ContextOverflowError,
    Message,
    ModelNotServedError,
    ReplyTooLargeError,
    UsageMeter,
    VisionUnsupportedError,
)
from .messages import content_text, image_part, text_part, tool_call_from_json
from .tokens import EstimatedCounter, TokenCounter, load_tokenizer_counter

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})
TIMEOUT_POLICIES: tuple[str, ...] = ("fail", "retry_longer")
VISION_MODES: tuple[str, ...] = ("auto", "true", "false")
#: Keys under which servers report a model's context length in ``/models`` entries.
CONTEXT_KEYS: tuple[str, ...] = ("max_model_len", "context_length", "context_window", "max_context_length", "n_ctx")
#: Server messages that mean "the prompt does not fit the context" (vLLM, llama.cpp, OpenAI).
_OVERFLOW_MARKERS = ("context length", "context window", "context_length_exceeded", "exceed context", "n_ctx")


class OpenAICompatBackend:
    """Chat completions over HTTP with a request deadline, retries, a concurrency cap and
    usage accounting; see the module docstring for the failure rules."""

    def __init__(
        self,
        model: str,
        base_url: str = "http://127.0.0.1:8000/v1",
        *,
        api_key_env: str | None = "OPENAI_API_KEY",
        timeout_s: float = 120.0,
        connect_timeout_s: float = 10.0,
        on_timeout: str = "fail",
        retry_timeout_factor: float = 2.0,
        max_retries: int = 4,
        backoff_s: float = 1.0,
        max_backoff_s: float = 60.0,
        max_concurrency: int = 4,
        fail_fast_after: int = 2,
        max_reply_bytes: int = 2_000_000,
        context_tokens: int | None = None,
        tokenizer: str | None = None,
        vision: str | bool = "auto",
        extra_body: dict[str, Any] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be >= 1, got {max_concurrency}")
        if max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {max_retries}")
        if on_timeout not in TIMEOUT_POLICIES:
            raise ValueError(f"on_timeout must be one of {list(TIMEOUT_POLICIES)}, got {on_timeout!r}")
        vision = str(vision).lower()
        if vision not in VISION_MODES:
            raise ValueError(f"vision must be one of auto, true, false; got {vision!r}")
        self.model = model
        self.base_url = base_url.rstrip("/")
        self.api_key_env = api_key_env
        self.timeout_s = float(timeout_s)
        self.connect_timeout_s = float(connect_timeout_s)
        self.on_timeout = on_timeout
        self.retry_timeout_factor = float(retry_timeout_factor)
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.max_concurrency = max_concurrency
        self.max_reply_bytes = int(max_reply_bytes)
        self.configured_context_tokens = context_tokens
        self.server_context_tokens: int | None = None
        self.tokenizer = tokenizer
        self.vision = vision
        self.extra_body = dict(extra_body or {})
        self.usage = UsageMeter()
        self.server_info: dict[str, Any] | None = None
        self.vision_probe: dict[str, Any] | None = None
        self.tools_probe: dict[str, Any] | None = None
        self._counter: TokenCounter | None = None
        self._sleep = sleep
        self._slots = threading.BoundedSemaphore(max_concurrency)
        self._state_lock = threading.Lock()
        self._check_lock = threading.Lock()
        self._probe_lock = threading.Lock()
        self._counter_lock = threading.Lock()
        self._local = threading.local()  # one requests.Session per thread
        self.fail_fast_after = fail_fast_after
        self._failures_in_a_row = 0  # requests that failed on retryable errors, all attempts used

    # -- public API -----------------------------------------------------------------------

    def chat(
        self,
        messages: list[Message],
        *,
        tools: list[dict[str, Any]] | None = None,
        temperature: float = 0.0,
        max_tokens: int = 1024,
        n: int = 1,
        seed: int | None = None,
    ) -> ChatResponse:
        payload: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "temperature": temperature,
            "max_tokens": max_tokens,
            "n": n,
            **self.extra_body,
        }
        if seed is not None:
            payload["seed"] = seed
        if tools:
            payload["tools"] = tools
            payload.setdefault("tool_choice", "auto")
        self.check()
        data, attempts = self._post_with_retries(payload)
        try:
            response = _to_response(data, self.url)
        except BackendError as err:
            err.attempts = attempts
            raise
        response.attempts = attempts
        response.usage = _summed_usage(attempts)
        self.usage.add(response.usage)
        return response

    def chat_many(
        self,
        conversations: list[list[Message]],
        *,
        tools: list[dict[str, Any]] | None = None,
        temperature: float = 0.0,
        max_tokens: int = 1024,
        n: int = 1,
        seed: int | None = None,
    ) -> list[ChatResponse]:
        """Answer the conversations concurrently (at most ``max_concurrency`` at a time)."""
        if not conversations:
            return []

        def one(messages: list[Message]) -> ChatResponse:
            return self.chat(messages, tools=tools, temperature=temperature, max_tokens=max_tokens, n=n, seed=seed)

        with ThreadPoolExecutor(max_workers=min(self.max_concurrency, len(conversations))) as pool:
            return list(pool.map(one, conversations))

    @property
    def url(self) -> str:
        return f"{self.base_url}/chat/completions"

    @property
    def context_tokens(self) -> int | None:
        """The context length prompts must fit: the smaller of the configured
        ``context_tokens`` and what the server reports (None when neither is known)."""
        known = [c for c in (self.configured_context_tokens, self.server_context_tokens) if c]
        return min(known) if known else None

    def count_tokens(self, messages: list[Message], tools: list[dict[str, Any]] | None = None) -> tuple[int, bool]:
        """(tokens, exact): with the configured tokenizer, else the conservative estimate."""
        with self._counter_lock:
            if self._counter is None:
                self._counter = load_tokenizer_counter(self.tokenizer) if self.tokenizer else EstimatedCounter()
        return self._counter.count(messages, tools), self._counter.exact

    def check(self) -> dict[str, Any]:
        """Ask ``/models`` once (before the first request, or at start-up when a command
        calls it): fatal errors for bad credentials, an endpoint that does not answer and a
        model it does not serve; the reported context length is kept. An endpoint without
        ``/models`` (e.g. HTTP 404) is used unchecked, with a warning."""
        with self._check_lock:
            if self.server_info is None:
                self.server_info = self._check_models()
        return self.server_info

    def accepts_images(self) -> bool:
        """Whether images reach the model: ``vision: false`` says no; otherwise a probe at
        first use decides (``vision: true`` makes a failed probe a fatal error)."""
        if self.vision == "false":
            return False
        with self._probe_lock:
            if self.vision_probe is None:
                self.vision_probe = probe_vision(self)
        outcome = self.vision_probe["outcome"]
        if outcome in ("accepted", "unverified"):
            return True
        if self.vision == "true":
            raise VisionUnsupportedError(
                f"{self.url}: vision: true, but the server {self.vision_probe['detail']}; "
                "set vision: auto (a text rendering of the window is sent instead) or use a vision-language model"
            )
        return False

    def accepts_tools(self) -> bool:
        """Whether tool schemas reach the model (a probe at first use, see :func:`probe_tools`):
        chat formats without tool support drop them silently."""
        with self._probe_lock:
            if self.tools_probe is None:
                self.tools_probe = probe_tools(self)
        return self.tools_probe["outcome"] in ("accepted", "unverified")

    # -- HTTP -----------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.api_key_env) if self.api_key_env else None
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        return session

    def _check_models(self) -> dict[str, Any]:
        url = f"{self.base_url}/models"
        for attempt in range(self.max_retries + 1):  # a server still starting refuses connections
            try:
                resp = self._session().get(url, headers=self._headers(), timeout=(self.connect_timeout_s, self.timeout_s))
                break
            except (requests.ConnectionError, requests.Timeout) as err:
                if attempt == self.max_retries:
                    raise BackendUnreachableError(
                        f"{url}: the endpoint does not answer ({attempt + 1} attempt(s)): {_short(err)}"
                    ) from err
                delay = min(self.backoff_s * (2**attempt), self.max_backoff_s)
                log.warning("%s: %s; retry %d/%d in %.1fs", url, _short(err), attempt + 1, self.max_retries, delay)
                self._sleep(delay)
        if resp.status_code in (401, 403):
            raise BackendAuthError(self._auth_message(resp, url))
        if resp.status_code != 200:
            log.warning("%s: HTTP %d; the model name %r is not checked", url, resp.status_code, self.model)
            return {"checked": False, "status": resp.status_code}
        try:
            entries = resp.json().get("data") or []
        except (ValueError, AttributeError):
            log.warning("%s: the answer is not a model list; the model name %r is not checked", url, self.model)
            return {"checked": False, "status": 200}
        served = [str(e.get("id")) for e in entries if isinstance(e, dict)]
        entry = next((e for e in entries if isinstance(e, dict) and e.get("id") == self.model), None)
        if entry is None:
            raise ModelNotServedError(f"{url}: model {self.model!r} is not served here; the server has {served}")
        self.server_context_tokens = _context_length(entry)
        return {"checked": True, "models": served, "context_tokens": self.server_context_tokens}

    def probe_usage(self, messages: list[Message], tools: list[dict[str, Any]] | None = None) -> dict[str, int]:
        """The token usage of a one-token answer to ``messages``, in one attempt (the probes:
        a refusal is an answer there, not something to retry)."""
        self.check()
        payload: dict[str, Any] = {"model": self.model, "messages": messages, "max_tokens": 1, "temperature": 0.0,
                                   **self.extra_body}
        if tools:
            payload.update(tools=tools, tool_choice="auto")
        data, _ = self._post_with_retries(payload, probe=True)
        return _usage_of(data)

    def _post_with_retries(self, payload: dict[str, Any], probe: bool = False) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The reply's JSON and every attempt; a ``probe`` gets one attempt and leaves the
        fail-fast count alone."""
        retries = 0 if probe else self.max_retries
        fail_fast = not probe and bool(self.fail_fast_after) and self._failures_in_a_row >= self.fail_fast_after
        if fail_fast:
            retries = 0  # the endpoint looks down: one attempt until something succeeds
        attempts: list[dict[str, Any]] = []
        deadline_s = self.timeout_s
        last_problem, unreachable, timeouts = "", False, 0
        attempt = 0
        while True:
            retry_after: float | None = None
            started = time.monotonic()
            record: dict[str, Any] = {"attempt": attempt + 1, "deadline_s": deadline_s}
            attempts.append(record)
            try:
                with self._slots:
                    status, body, headers = self._post_once(payload, deadline_s)
            except _DeadlinePassed as err:
                record.update(outcome="timeout", seconds=round(time.monotonic() - started, 3))
                timeouts += 1
                if self.on_timeout == "retry_longer" and timeouts == 1:
                    deadline_s *= self.retry_timeout_factor
                    log.warning("%s: %s; one more attempt with a %.0f s deadline", self.url, err, deadline_s)
                    attempt += 1
                    continue
                raise BackendTimeoutError(f"{self.url}: {err} (on_timeout: {self.on_timeout})", attempts=attempts) from None
            except _TooLarge as err:
                record.update(outcome="reply_too_large", seconds=round(time.monotonic() - started, 3))
                raise ReplyTooLargeError(f"{self.url}: {err}", attempts=attempts) from None
            except requests.ConnectionError as err:
                record.update(outcome="connection_error", seconds=round(time.monotonic() - started, 3))
                last_problem, unreachable = f"connection error: {_short(err)}", True
            else:
                record.update(outcome=f"HTTP {status}", seconds=round(time.monotonic() - started, 3))
                unreachable = False
                if status in (401, 403):
                    raise BackendAuthError(self._auth_message_text(status, body), attempts=attempts)
                if status == 200:
                    if not probe:
                        with self._state_lock:
                            self._failures_in_a_row = 0
                    try:
                        data = json.loads(body)
                    except ValueError as err:
                        raise BackendError(f"{self.url}: response is not JSON: {body[:200]!r}", attempts=attempts) from err
                    record["usage"] = _usage_of(data)
                    return data, attempts
                text = body.decode("utf-8", "replace")
                if status == 400 and any(marker in text.lower() for marker in _OVERFLOW_MARKERS):
                    raise ContextOverflowError(
                        f"{self.url}: the server says the prompt does not fit the context: {text[:300]}; "
                        "set context_tokens in the backend config so prompts are fitted before they are sent",
                        attempts=attempts,
                    )
                if status not in RETRY_STATUSES:
                    raise BackendError(f"{self.url}: HTTP {status}: {text[:500]}", attempts=attempts)
                last_problem = f"HTTP {status}: {text[:200]}"
                retry_after = _retry_after_seconds(headers.get("Retry-After"))
            if attempt >= retries:
                break
            delay = retry_after if retry_after is not None else self.backoff_s * (2**attempt)
            delay = min(delay, self.max_backoff_s)
            log.warning("%s: %s; retry %d/%d in %.1fs", self.url, last_problem, attempt + 1, retries, delay)
            self._sleep(delay)
            attempt += 1
        if not probe:
            with self._state_lock:
                self._failures_in_a_row += 1
        if unreachable:
            raise BackendUnreachableError(
                f"{self.url}: the endpoint does not answer after {len(attempts)} attempt(s): {last_problem}", attempts=attempts
            )
        if fail_fast:
            raise BackendError(
                f"{self.url}: failed without retrying (the endpoint looks down: "
                f"{self._failures_in_a_row} requests in a row failed); last: {last_problem}",
                attempts=attempts,
            )
        raise BackendError(f"{self.url}: gave up after {len(attempts)} attempts; last: {last_problem}", attempts=attempts)

    def _post_once(self, payload: dict[str, Any], deadline_s: float) -> tuple[int, bytes, Any]:
        """One POST whose whole duration is bounded by ``deadline_s`` and whose body by
        ``max_reply_bytes`` (read incrementally, the socket timeout shrinking to the time left)."""
        end = time.monotonic() + deadline_s
        try:
            resp = self._session().post(
                self.url, json=payload, headers=self._headers(), stream=True,
                timeout=(min(self.connect_timeout_s, deadline_s), deadline_s),
            )
        except requests.exceptions.ConnectTimeout as err:
            raise requests.ConnectionError(f"no connection within {min(self.connect_timeout_s, deadline_s):g} s") from err
        except requests.Timeout:
            raise _DeadlinePassed(f"no answer within the {deadline_s:g} s request deadline") from None
        try:
            chunks, size = [], 0
            while True:
                left = end - time.monotonic()
                if left <= 0:
                    raise _DeadlinePassed(f"the reply was still arriving at the {deadline_s:g} s request deadline ({size} bytes so far)")
                _set_socket_timeout(resp, left)
                try:
                    chunk = resp.raw.read1(65536, decode_content=True)
                except (requests.exceptions.ReadTimeout, socket.timeout, TimeoutError):
                    raise _DeadlinePassed(f"the reply was still arriving at the {deadline_s:g} s request deadline ({size} bytes so far)") from None
                except Exception as err:  # urllib3 wraps socket timeouts in its own errors
                    if "timed out" in str(err).lower():
                        raise _DeadlinePassed(f"the reply was still arriving at the {deadline_s:g} s request deadline ({size} bytes so far)") from None
                    raise requests.ConnectionError(str(err)) from err
                if not chunk:
                    break
                size += len(chunk)
                if size > self.max_reply_bytes:
                    raise _TooLarge(f"the reply exceeded max_reply_bytes={self.max_reply_bytes}; cut after {size} bytes")
                chunks.append(chunk)
            return resp.status_code, b"".join(chunks), resp.headers
        finally:
            resp.close()

    def _auth_message_text(self, status: int, body: bytes, url: str | None = None) -> str:
        if not self.api_key_env:
            hint = "no api_key_env is configured, so no key was sent"
        elif os.environ.get(self.api_key_env):
            hint = f"the key in ${self.api_key_env} was refused"
        else:
            hint = f"${self.api_key_env} is not set, so no key was sent"
        text = body.decode("utf-8", "replace")[:200]
        return f"{url or self.url}: HTTP {status} (not authorised): {hint}; body: {text}"

    def _auth_message(self, resp: requests.Response, url: str) -> str:
        return self._auth_message_text(resp.status_code, resp.content, url)


class _DeadlinePassed(Exception):
    """Internal: the request deadline passed (turned into BackendTimeoutError or retried)."""


class _TooLarge(Exception):
    """Internal: the reply exceeded max_reply_bytes."""


def _set_socket_timeout(resp: requests.Response, seconds: float) -> None:
    """Let the next read wait at most ``seconds`` (urllib3 2 keeps the connection on the response)."""
    sock = getattr(getattr(resp.raw, "connection", None), "sock", None)
    if sock is not None:
        sock.settimeout(max(seconds, 0.001))


def _short(err: BaseException) -> str:
    text = str(err)
    return text if len(text) <= 200 else text[:200] + "..."


def _usage_of(data: Any) -> dict[str, int]:
    usage = (data.get("usage") if isinstance(data, dict) else None) or {}
    return {
        "prompt_tokens": int(usage.get("prompt_tokens") or 0),
        "completion_tokens": int(usage.get("completion_tokens") or 0),
    }


def _summed_usage(attempts: list[dict[str, Any]]) -> dict[str, int]:
    """Token usage over every attempt the server answered (a timed-out attempt reports none)."""
    total = {"prompt_tokens": 0, "completion_tokens": 0}
    for record in attempts:
        for key in total:
            total[key] += int((record.get("usage") or {}).get(key, 0))
    return total


def _context_length(entry: dict[str, Any]) -> int | None:
    for source in (entry, entry.get("meta") or {}):
        for key in CONTEXT_KEYS:
            value = source.get(key)
            if isinstance(value, (int, float)) and value > 0:
                return int(value)
    return None


def _retry_after_seconds(value: str | None) -> float | None:
    """``Retry-After`` as seconds (the delta-seconds form; HTTP dates fall back to backoff)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _to_response(data: dict[str, Any], where: str) -> ChatResponse:
    choices = data.get("choices") if isinstance(data, dict) else None
    if not isinstance(choices, list) or not choices:
        raise BackendError(f"{where}: response has no choices: {str(data)[:300]}")
    first = choices[0].get("message") or {}
    calls = []
    for raw_call in first.get("tool_calls") or []:
        fn = raw_call.get("function") or {}
        calls.append(tool_call_from_json(fn.get("name", "?"), fn.get("arguments", {}), raw_call.get("id")))
    return ChatResponse(
        text=_message_text(first),
        tool_calls=calls,
        usage=_usage_of(data),
        raw=data,
        finish_reason=choices[0].get("finish_reason"),
        samples=[_message_text(c.get("message") or {}) for c in choices],
    )


def _message_text(message: dict[str, Any]) -> str:
    """The message's text; reasoning that a server split off (vLLM's ``--reasoning-parser``
    puts it in ``reasoning_content``) is put back as a leading think block, because the
    detector's answer format and the format reward expect ``<think>...</think>`` in the text."""
    text = content_text(message.get("content"))
    reasoning = message.get("reasoning_content") or message.get("reasoning")
    if isinstance(reasoning, str) and reasoning.strip() and "<think>" not in text:
        text = f"<think>{reasoning.strip()}</think>\n{text}"
    return text


# ----------------------------------------------------------------------------- vision probe

#: Prompt of the probe requests (answered with one token; only the usage matters).
PROBE_TEXT = "Reply with one word."


def probe_image() -> bytes:
    """A fixed 224x224 PNG of grey blocks (about 10 kB of base64): a vision model spends tens
    to hundreds of tokens on it, a server that pastes it as text thousands."""
    import numpy as np
    from PIL import Image

    blocks = (np.random.default_rng(0).integers(0, 4, (112, 112)) * 85).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(blocks).resize((224, 224), Image.NEAREST).save(buffer, "PNG")
    return buffer.getvalue()


def _prompt_tokens_without_and_with(
    backend: OpenAICompatBackend, plain: list[dict], probed: list[dict], extra: dict[str, Any], what: str
) -> tuple[int, int, dict[str, Any] | None]:
    """The prompt tokens the server reports for ``plain`` and for ``probed`` (with ``extra``
    request fields), or a ``rejected`` outcome when the probed request fails (a fatal error,
    such as refused credentials, is raised)."""
    base = backend.probe_usage(plain)["prompt_tokens"]
    try:
        seen = backend.probe_usage(probed, **extra)["prompt_tokens"]
    except BackendError as err:
        if err.fatal:
            raise
        return base, 0, {"outcome": "rejected", "detail": f"rejected a request with {what} ({_short(err)})"}
    return base, seen, None


def probe_vision(backend: OpenAICompatBackend) -> dict[str, Any]:
    """Whether an image reaches the model, from two one-token requests: the same text
    without and with the probe image. The prompt-token difference says it:

    - ``accepted``: a few to a few thousand tokens more, fewer than the base64 text would take;
    - ``dropped``: (almost) no difference: the chat format threw the image away;
    - ``stringified``: at least a token per 4 base64 characters: the image became text;
    - ``rejected``: the image request failed (e.g. a template that cannot take content parts);
    - ``unverified``: the server reports no token usage, so nothing can be told.
    """
    png = probe_image()
    part = image_part(png)
    b64_chars = len(part["image_url"]["url"])
    base, seen, rejected = _prompt_tokens_without_and_with(
        backend, [{"role": "user", "content": PROBE_TEXT}],
        [{"role": "user", "content": [text_part(PROBE_TEXT), part]}], {}, "an image")
    if rejected:
        return rejected
    if base == 0 or seen == 0:
        result = {"outcome": "unverified", "detail": "reports no token usage, so image delivery cannot be checked"}
    elif seen - base < 4:
        result = {"outcome": "dropped", "detail": f"dropped the test image (prompt tokens {base} without it, {seen} with it)"}
    elif seen - base >= b64_chars / 4:
        result = {"outcome": "stringified", "detail": f"pasted the test image as text ({seen - base} prompt tokens for {b64_chars} base64 characters)"}
    else:
        result = {"outcome": "accepted", "detail": f"took the test image as {seen - base} prompt tokens"}
    result.update(text_tokens=base, image_request_tokens=seen, base64_chars=b64_chars)
    log.info("%s: vision probe: %s", backend.url, result["detail"])
    return result


#: The tool the tools probe offers (its schema is what should show in the prompt tokens).
PROBE_TOOL = {
    "type": "function",
    "function": {
        "name": "probe_tool",
        "description": "A tool that is only offered, never called: its schema shows whether tools reach the model.",
        "parameters": {"type": "object", "properties": {"threshold": {"type": "number", "description": "a number"}}},
    },
}


def probe_tools(backend: OpenAICompatBackend) -> dict[str, Any]:
    """Whether tool schemas reach the model, from two one-token requests without and with
    :data:`PROBE_TOOL`: ``accepted`` (the prompt grew), ``ignored`` (it did not: the chat
    format drops tools, as llama-cpp-python's jinja and chatml formats do), ``rejected``
    (the request with a tool failed) or ``unverified`` (no token usage reported)."""
    ask = [{"role": "user", "content": PROBE_TEXT}]
    base, seen, rejected = _prompt_tokens_without_and_with(backend, ask, ask, {"tools": [PROBE_TOOL]}, "tools")
    if rejected:
        return rejected
    if base == 0 or seen == 0:
        result = {"outcome": "unverified", "detail": "reports no token usage, so tool delivery cannot be checked"}
    elif seen - base < 4:
        result = {"outcome": "ignored", "detail": f"ignored the tool schemas (prompt tokens {base} without, {seen} with them)"}
    else:
        result = {"outcome": "accepted", "detail": f"took the tool schema as {seen - base} prompt tokens"}
    log.info("%s: tools probe: %s", backend.url, result["detail"])
    return result
