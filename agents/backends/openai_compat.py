"""A client for any OpenAI-compatible ``/chat/completions`` endpoint (vLLM server, hosted APIs).

The API key is read from the environment variable named in the config (never from a
file). Transient failures (connection errors, timeouts, 429 and 5xx) are retried with
exponential backoff, honouring ``Retry-After``; 401/403 fail at once with a message naming
the key variable. After ``fail_fast_after`` requests in a row have failed for good, later
requests get a single attempt until one succeeds, so a batch run against a dead endpoint
records its failures quickly instead of backing off on every window. A shared semaphore
caps concurrent requests, so batch runs (``chat_many`` or many threads sharing one client)
never exceed the endpoint's limit.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import requests

from .base import BackendAuthError, BackendError, ChatResponse, Message, UsageMeter
from .messages import content_text, tool_call_from_json

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})


class OpenAICompatBackend:
    """Chat completions over HTTP with retries, a concurrency cap and usage accounting."""

    def __init__(
        self,
        model: str,
        base_url: str = "http://127.0.0.1:8000/v1",
        *,
        api_key_env: str | None = "OPENAI_API_KEY",
        timeout_s: float = 120.0,
        max_retries: int = 4,
        backoff_s: float = 1.0,
        max_backoff_s: float = 60.0,
        max_concurrency: int = 4,
        fail_fast_after: int = 2,
        extra_body: dict[str, Any] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be >= 1, got {max_concurrency}")
        if max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {max_retries}")
        self.model = model
        self.base_url = base_url.rstrip("/")
        self.api_key_env = api_key_env
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.max_concurrency = max_concurrency
        self.extra_body = dict(extra_body or {})
        self.usage = UsageMeter()
        self._sleep = sleep
        self._slots = threading.BoundedSemaphore(max_concurrency)
        self._state_lock = threading.Lock()
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
        data = self._post_with_retries(payload)
        response = _to_response(data, self.url)
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

    def _post_with_retries(self, payload: dict[str, Any]) -> dict[str, Any]:
        retries = self.max_retries
        if self.fail_fast_after and self._failures_in_a_row >= self.fail_fast_after:
            retries = 0  # the endpoint looks down: one attempt until something succeeds
        last_problem = ""
        for attempt in range(retries + 1):
            retry_after: float | None = None
            try:
                with self._slots:
                    resp = self._session().post(self.url, json=payload, headers=self._headers(), timeout=self.timeout_s)
            except (requests.ConnectionError, requests.Timeout) as err:
                last_problem = f"{type(err).__name__}: {err}"
            else:
                if resp.status_code in (401, 403):
                    raise BackendAuthError(self._auth_message(resp))
                if resp.status_code == 200:
                    with self._state_lock:
                        self._failures_in_a_row = 0
                    try:
                        return resp.json()
                    except ValueError as err:
                        raise BackendError(f"{self.url}: response is not JSON: {resp.text[:200]!r}") from err
                if resp.status_code not in RETRY_STATUSES:
                    raise BackendError(f"{self.url}: HTTP {resp.status_code}: {resp.text[:500]}")
                last_problem = f"HTTP {resp.status_code}: {resp.text[:200]}"
                retry_after = _retry_after_seconds(resp.headers.get("Retry-After"))
            if attempt == retries:
                break
            delay = retry_after if retry_after is not None else self.backoff_s * (2**attempt)
            delay = min(delay, self.max_backoff_s)
            log.warning("%s: %s; retry %d/%d in %.1fs", self.url, last_problem, attempt + 1, retries, delay)
            self._sleep(delay)
        with self._state_lock:
            self._failures_in_a_row += 1
        if retries < self.max_retries:
            raise BackendError(
                f"{self.url}: failed without retrying (the endpoint looks down: "
                f"{self._failures_in_a_row} requests in a row failed); last: {last_problem}"
            )
        raise BackendError(f"{self.url}: gave up after {retries + 1} attempts; last: {last_problem}")

    def _auth_message(self, resp: requests.Response) -> str:
        if not self.api_key_env:
            hint = "no api_key_env is configured, so no key was sent"
        elif os.environ.get(self.api_key_env):
            hint = f"the key in ${self.api_key_env} was refused"
        else:
            hint = f"${self.api_key_env} is not set, so no key was sent"
        return f"{self.url}: HTTP {resp.status_code} (not authorised): {hint}; body: {resp.text[:200]}"


def _retry_after_seconds(value: str | None) -> float | None:
    """``Retry-After`` as seconds (the delta-seconds form; HTTP dates fall back to backoff)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _to_response(data: dict[str, Any], where: str) -> ChatResponse:
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices:
        raise BackendError(f"{where}: response has no choices: {str(data)[:300]}")
    first = choices[0].get("message") or {}
    calls = []
    for raw_call in first.get("tool_calls") or []:
        fn = raw_call.get("function") or {}
        calls.append(tool_call_from_json(fn.get("name", "?"), fn.get("arguments", {}), raw_call.get("id")))
    usage = data.get("usage") or {}
    return ChatResponse(
        text=_message_text(first),
        tool_calls=calls,
        usage={
            "prompt_tokens": int(usage.get("prompt_tokens") or 0),
            "completion_tokens": int(usage.get("completion_tokens") or 0),
        },
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
