"""The one protocol every chat backend speaks, and the types it returns.

Roles talk to models only through :class:`ChatBackend`: OpenAI-style messages in (text and
base64 ``image_url`` parts, optional tool schemas), a :class:`ChatResponse` out (text, tool
calls, token usage). Backends differ only in where the model runs: an OpenAI-compatible
HTTP endpoint, a local transformers model, or a vLLM engine on a GPU node.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from anomamind.types import ToolCall

#: Message = one OpenAI-style chat message: {"role": ..., "content": str | list[part], ...}.
Message = dict[str, Any]

#: Key put into ``ToolCall.arguments`` when the model's arguments were not valid JSON; the
#: actor turns such a call into a tool error the model can read instead of running the tool.
INVALID_ARGUMENTS_KEY = "_invalid_arguments"


class BackendError(RuntimeError):
    """A chat request failed for good (after any retries); the message says why.

    ``kind`` names the failure for counting (per-window failure tables); ``fatal`` errors
    (bad credentials, an endpoint that does not answer, a model the server does not serve)
    abort the whole command, because every later request would fail the same way.
    ``attempts`` records each HTTP attempt (outcome, seconds, usage when the server sent it).
    """

    kind = "backend_error"
    fatal = False

    def __init__(self, message: str, *, attempts: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.attempts = list(attempts or [])


class BackendAuthError(BackendError):
    """The endpoint refused the credentials (HTTP 401/403); retrying cannot help."""

    kind = "auth"
    fatal = True


class BackendUnreachableError(BackendError):
    """No connection to the endpoint (refused, unresolvable, no route) after the retries."""

    kind = "unreachable"
    fatal = True


class ModelNotServedError(BackendError):
    """The server's ``/models`` list does not hold the configured model name."""

    kind = "model_not_served"
    fatal = True


class BackendTimeoutError(BackendError):
    """The whole request (connect, wait, body) did not finish within ``timeout_s``."""

    kind = "timeout"


class ReplyTooLargeError(BackendError):
    """The server's reply exceeded ``max_reply_bytes``; it was cut and not used."""

    kind = "reply_too_large"


class ContextOverflowError(BackendError):
    """A prompt does not fit the model's context (found before sending, or said by the server)."""

    kind = "context_overflow"


class ImageNotSeenError(BackendError):
    """An image sent to the server did not reach the model as an image (dropped, pasted
    into the prompt as text, or refused by the server's chat format)."""

    kind = "image_not_seen"


class VisionUnsupportedError(ImageNotSeenError):
    """``vision: true`` is configured, but the start-up probe shows that images do not
    reach the model: every locator request would be answered blind."""

    fatal = True


class BackendUnavailableError(BackendError):
    """The backend's optional dependency (transformers, vllm) is not installed."""

    kind = "unavailable"
    fatal = True


@dataclass
class ChatResponse:
    """One completion: the first choice's text and tool calls, plus what it cost.

    ``samples`` holds the text of every choice when ``n > 1`` (``samples[0] == text``);
    ``usage`` always has ``prompt_tokens`` and ``completion_tokens`` (0 when unknown), summed
    over every attempt the server answered; ``attempts`` lists each attempt (HTTP backends);
    ``finish_reason`` is the server's (``"length"``: cut at ``max_tokens``);
    ``raw`` is the backend's own response object, for debugging.
    """

    text: str
    tool_calls: list[ToolCall] = field(default_factory=list)
    usage: dict[str, int] = field(default_factory=lambda: {"prompt_tokens": 0, "completion_tokens": 0})
    raw: Any = None
    finish_reason: str | None = None
    samples: list[str] = field(default_factory=list)
    attempts: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.samples:
            self.samples = [self.text]

    @property
    def cut_at_max_tokens(self) -> bool:
        """The answer stopped because it reached ``max_tokens`` (OpenAI's ``"length"``)."""
        return self.finish_reason == "length"


@runtime_checkable
class ChatBackend(Protocol):
    """What the LLM roles need from a chat model."""

    model: str

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
        """Answer one conversation."""
        ...

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
        """Answer several conversations (concurrently or batched); results keep the order."""
        ...


class BatchBackend:
    """Base for backends that answer conversations in batches (local models): ``chat`` is
    one conversation through ``chat_many``, which subclasses implement."""

    model: str

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
        """Answer one conversation (a batch of one)."""
        return self.chat_many([messages], tools=tools, temperature=temperature, max_tokens=max_tokens, n=n, seed=seed)[0]

    def chat_many(self, conversations: list[list[Message]], **kwargs: Any) -> list[ChatResponse]:
        raise NotImplementedError


class UsageMeter:
    """Thread-safe running totals of token usage and requests, for batch-run reports."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests = 0
        self.prompt_tokens = 0
        self.completion_tokens = 0

    def add(self, usage: dict[str, int]) -> None:
        with self._lock:
            self.requests += 1
            self.prompt_tokens += int(usage.get("prompt_tokens", 0) or 0)
            self.completion_tokens += int(usage.get("completion_tokens", 0) or 0)

    def as_dict(self) -> dict[str, int]:
        with self._lock:
            return {
                "requests": self.requests,
                "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens,
            }
