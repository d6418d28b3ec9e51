"""Build chat backends from configuration (the ``backends:`` section of configs/agents/llm.yaml).

Each named backend is a :class:`BackendConfig`; ``kind`` picks the implementation and only
the fields that kind uses matter. Backends are built once per distinct configuration, so
roles sharing a local model share its weights.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from anomamind.config import ConfigError, from_dict

from .base import ChatBackend

BACKEND_KINDS: tuple[str, ...] = ("openai", "transformers", "vllm")


@dataclass
class BackendConfig:
    """Where a chat model runs. ``kind``: openai (any OpenAI-compatible HTTP endpoint),
    transformers (a local model folder or Hub id), or vllm (an offline engine on a GPU)."""

    kind: str = "openai"
    model: str = ""
    # every kind: the context prompts must fit (None: the model's or server's own limit)
    context_tokens: int | None = None
    # openai
    base_url: str = "http://127.0.0.1:8000/v1"
    api_key_env: str | None = "OPENAI_API_KEY"
    timeout_s: float = 120.0  # the whole request: connect, wait and reply
    connect_timeout_s: float = 10.0
    on_timeout: str = "fail"  # fail | retry_longer (one more attempt with retry_timeout_factor x the deadline)
    retry_timeout_factor: float = 2.0
    max_retries: int = 4
    backoff_s: float = 1.0
    max_backoff_s: float = 60.0
    max_concurrency: int = 4
    fail_fast_after: int = 2  # after this many requests in a row failed for good: one attempt each
    max_reply_bytes: int = 2_000_000
    tokenizer: str | None = None  # folder, Hub id or .gguf file to count prompt tokens exactly
    vision: str = "auto"  # auto (probe the server) | true | false (the locator gets a text rendering)
    extra_body: dict[str, Any] = field(default_factory=dict)
    # transformers and vllm
    dtype: str = "auto"
    enable_thinking: bool | None = None
    # transformers
    device: str = "auto"
    max_batch_size: int = 8
    trust_remote_code: bool = False
    # vllm
    tensor_parallel_size: int = 1
    gpu_memory_utilization: float = 0.85
    max_model_len: int | None = None
    engine_kwargs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in BACKEND_KINDS:
            raise ConfigError(f"backend kind {self.kind!r} is not one of {list(BACKEND_KINDS)}")
        if not self.model:
            raise ConfigError(f"backend of kind {self.kind!r} needs a 'model' (name, folder or Hub id)")
        self.vision = str(self.vision).lower()  # YAML reads true/false as booleans
        if self.vision not in ("auto", "true", "false"):
            raise ConfigError(f"backend vision {self.vision!r} is not one of auto, true, false")
        if self.on_timeout not in ("fail", "retry_longer"):
            raise ConfigError(f"backend on_timeout {self.on_timeout!r} is not one of fail, retry_longer")
        if self.context_tokens is not None and int(self.context_tokens) < 64:
            raise ConfigError(f"backend context_tokens must be at least 64, got {self.context_tokens}")


def backend_config(data: dict[str, Any] | BackendConfig, where: str = "backend") -> BackendConfig:
    """A BackendConfig from a mapping; unknown keys are an error naming ``where``."""
    if isinstance(data, BackendConfig):
        return data
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    return from_dict(BackendConfig, data, where)


def make_backend(config: BackendConfig | dict[str, Any]) -> ChatBackend:
    """Build the backend ``config`` describes (heavy imports happen only for local kinds)."""
    cfg = backend_config(config)
    if cfg.kind == "openai":
        from .openai_compat import OpenAICompatBackend

        return OpenAICompatBackend(
            cfg.model,
            cfg.base_url,
            api_key_env=cfg.api_key_env,
            timeout_s=cfg.timeout_s,
            connect_timeout_s=cfg.connect_timeout_s,
            on_timeout=cfg.on_timeout,
            retry_timeout_factor=cfg.retry_timeout_factor,
            max_retries=cfg.max_retries,
            backoff_s=cfg.backoff_s,
            max_backoff_s=cfg.max_backoff_s,
            max_concurrency=cfg.max_concurrency,
            fail_fast_after=cfg.fail_fast_after,
            max_reply_bytes=cfg.max_reply_bytes,
            context_tokens=cfg.context_tokens,
            tokenizer=cfg.tokenizer,
            vision=cfg.vision,
            extra_body=cfg.extra_body,
        )
    if cfg.kind == "transformers":
        from .transformers_local import TransformersBackend

        return TransformersBackend(
            cfg.model,
            device=cfg.device,
            dtype=cfg.dtype,
            max_batch_size=cfg.max_batch_size,
            enable_thinking=cfg.enable_thinking,
            trust_remote_code=cfg.trust_remote_code,
            context_tokens=cfg.context_tokens,
        )
    from .vllm_engine import VLLMBackend

    return VLLMBackend(
        cfg.model,
        tensor_parallel_size=cfg.tensor_parallel_size,
        gpu_memory_utilization=cfg.gpu_memory_utilization,
        max_model_len=cfg.max_model_len,
        dtype=cfg.dtype,
        enable_thinking=cfg.enable_thinking,
        engine_kwargs=cfg.engine_kwargs,
        vision=cfg.vision != "false",
    )


def make_backends(configs: dict[str, BackendConfig | dict[str, Any]]) -> dict[str, ChatBackend]:
    """Named backends; identical configurations share one instance (one copy of the weights)."""
    built: dict[str, ChatBackend] = {}
    by_config: dict[str, ChatBackend] = {}
    for name, data in configs.items():
        cfg = backend_config(data, f"backends.{name}")
        key = json.dumps(asdict(cfg), sort_keys=True, default=str)
        if key not in by_config:
            by_config[key] = make_backend(cfg)
        built[name] = by_config[key]
    return built
