"""Chat backends: one protocol (:class:`ChatBackend`) over HTTP, transformers and vLLM."""

from .base import (
    INVALID_ARGUMENTS_KEY,
    BackendAuthError,
    BackendError,
    BackendUnavailableError,
    ChatBackend,
    ChatResponse,
)

__all__ = [
    "INVALID_ARGUMENTS_KEY",
    "BackendAuthError",
    "BackendError",
    "BackendUnavailableError",
    "ChatBackend",
    "ChatResponse",
]
