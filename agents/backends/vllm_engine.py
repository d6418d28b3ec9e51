"""vLLM's offline engine (``vllm.LLM``) as a chat backend, for GPU nodes.

Batches of conversations go to ``LLM.chat`` in one call (vLLM schedules them together);
tool schemas are passed to the chat template and hermes-format tool calls in the answer are
parsed like the transformers backend's. Images travel as the same base64 ``image_url``
parts, which vLLM decodes for multimodal models. vllm is imported when the backend is
created; without it the error says how to install it.
"""

from __future__ import annotations

import threading
from typing import Any

from .base import BatchBackend, BackendUnavailableError, ChatResponse, Message, UsageMeter
from .messages import parse_hermes_tool_calls


def _import_vllm() -> Any:
    try:
        import vllm
    except ImportError as err:
        raise BackendUnavailableError(
            "the vLLM backend needs vllm on a CUDA machine: pip install 'anomamind[vllm]' "
            "(or use kind: openai against a `vllm serve` endpoint)"
        ) from err
    return vllm


class VLLMBackend(BatchBackend):
    """Chat with a model loaded into a local vLLM engine."""

    def __init__(
        self,
        model: str,
        *,
        tensor_parallel_size: int = 1,
        gpu_memory_utilization: float = 0.85,
        max_model_len: int | None = None,
        dtype: str = "auto",
        enable_thinking: bool | None = None,
        max_images_per_prompt: int = 1,
        engine_kwargs: dict[str, Any] | None = None,
        vision: bool = True,
    ) -> None:
        self._vllm = _import_vllm()
        self.model = model
        self.enable_thinking = enable_thinking
        self.usage = UsageMeter()
        self._lock = threading.Lock()
        kwargs: dict[str, Any] = {
            "model": model,
            "tensor_parallel_size": tensor_parallel_size,
            "gpu_memory_utilization": gpu_memory_utilization,
            "dtype": dtype,
            "limit_mm_per_prompt": {"image": max_images_per_prompt},
            **(engine_kwargs or {}),
        }
        if max_model_len is not None:
            kwargs["max_model_len"] = max_model_len
        self._llm = self._vllm.LLM(**kwargs)
        #: The engine's context length (``max_model_len``, or what vLLM derived from the model).
        self.context_tokens: int | None = max_model_len or getattr(
            getattr(getattr(self._llm, "llm_engine", None), "model_config", None), "max_model_len", None
        )
        self._vision = vision

    def accepts_images(self) -> bool:
        """As configured (``vision: false`` for a text-only model); vLLM decodes image parts."""
        return self._vision

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
        if not conversations:
            return []
        params = self._vllm.SamplingParams(temperature=temperature, max_tokens=max_tokens, n=n, seed=seed)
        template_kwargs = {} if self.enable_thinking is None else {"enable_thinking": self.enable_thinking}
        with self._lock:
            outputs = self._llm.chat(
                conversations, params, use_tqdm=False, tools=tools, chat_template_kwargs=template_kwargs or None
            )
        responses = []
        for out in outputs:
            samples = [c.text for c in out.outputs]
            text, calls = parse_hermes_tool_calls(samples[0])
            usage = {
                "prompt_tokens": len(out.prompt_token_ids or []),
                "completion_tokens": sum(len(c.token_ids) for c in out.outputs),
            }
            self.usage.add(usage)
            responses.append(
                ChatResponse(
                    text=text,
                    tool_calls=calls,
                    usage=usage,
                    raw=out,
                    finish_reason="tool_calls" if calls else out.outputs[0].finish_reason,
                    samples=samples,
                )
            )
        return responses
