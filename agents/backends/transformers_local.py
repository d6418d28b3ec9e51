"""A local Hugging Face model as a chat backend: causal LMs and Qwen2-VL-style VLMs.

Any causal LM folder or Hub id works (``local_files_only`` when ``HF_HUB_OFFLINE`` is set,
as on machines without internet). Prompts come from the model's own chat template, with
tool schemas passed to it; Qwen-family models answer tool calls in the hermes format
(``<tool_call>{"name": ..., "arguments": ...}</tool_call>``), parsed into ``ToolCall``s.
Vision-language models (config with a ``vision_config``: Qwen2-VL, Qwen2.5-VL, ...) are
loaded with ``AutoProcessor`` + ``AutoModelForImageTextToText`` and get the decoded
``image_url`` parts as images. Several conversations are generated as one left-padded
batch. torch and transformers are imported here only, when a backend is created.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from .base import BatchBackend, BackendError, BackendUnavailableError, ChatResponse, Message, UsageMeter
from .messages import content_text, flatten_text_content, for_chat_template, has_images, parse_hermes_tool_calls
from .tokens import image_tokens

log = logging.getLogger(__name__)


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _import_torch_transformers() -> tuple[Any, Any]:
    try:
        import torch
        import transformers
    except ImportError as err:
        raise BackendUnavailableError(
            "the transformers backend needs torch and transformers: pip install 'anomamind[train]'"
        ) from err
    return torch, transformers


class TransformersBackend(BatchBackend):
    """Chat with a local transformers model (text LM or vision-language model).

    Pass a path/Hub id as ``model`` to load it, or an already built model object together
    with its ``tokenizer`` (text) or ``processor`` (VLM), e.g. a checkpoint in memory.
    """

    def __init__(
        self,
        model: Any,
        *,
        tokenizer: Any = None,
        processor: Any = None,
        device: str = "auto",
        dtype: str = "auto",
        max_batch_size: int = 8,
        enable_thinking: bool | None = None,
        trust_remote_code: bool = False,
        context_tokens: int | None = None,
    ) -> None:
        torch, transformers = _import_torch_transformers()
        self._torch = torch
        self.device = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
        self.max_batch_size = max(1, int(max_batch_size))
        self.enable_thinking = enable_thinking
        self.usage = UsageMeter()
        self._lock = threading.Lock()
        self._warned_tools = False
        if isinstance(model, (str, os.PathLike)):
            self.model = str(model)
            self._model, self._tokenizer, self._processor = _load(
                transformers, torch, self.model, self.device, dtype, trust_remote_code
            )
        else:
            self._model = model.to(self.device)
            self.model = getattr(model.config, "name_or_path", "") or type(model).__name__
            self._processor = processor
            self._tokenizer = tokenizer or (processor.tokenizer if processor is not None else None)
            if self._tokenizer is None:
                raise ValueError("a model object needs its tokenizer (or processor for a VLM)")
        self.is_vision = self._processor is not None
        self._model.eval()
        self._tokenizer.padding_side = "left"
        if self._tokenizer.pad_token_id is None:
            self._tokenizer.pad_token = self._tokenizer.eos_token
        self._stop_ids = _stop_token_ids(self._model, self._tokenizer)
        model_limit = getattr(self._model.config, "max_position_embeddings", None) or getattr(
            getattr(self._model.config, "text_config", None), "max_position_embeddings", None
        )
        known = [int(c) for c in (context_tokens, model_limit) if c]
        #: The context prompts must fit: the configured one, capped by the model's positions.
        self.context_tokens: int | None = min(known) if known else None

    # -- public API -----------------------------------------------------------------------

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
        """Generate for the conversations in left-padded batches of ``max_batch_size``."""
        responses: list[ChatResponse] = []
        for first in range(0, len(conversations), self.max_batch_size):
            batch = conversations[first : first + self.max_batch_size]
            responses.extend(self._generate(batch, tools, temperature, max_tokens, n, seed))
        return responses

    def render_prompt(self, messages: list[Message], tools: list[dict[str, Any]] | None = None) -> str:
        """The exact prompt text the model sees (chat template applied, tools included)."""
        prompt, _ = self._render(messages, tools)
        return prompt

    def count_tokens(self, messages: list[Message], tools: list[dict[str, Any]] | None = None) -> tuple[int, bool]:
        """(tokens, exact) of the rendered prompt; images are estimated (the processor
        expands them when it runs)."""
        text_only = [m if not isinstance(m.get("content"), list) else {**m, "content": content_text(m["content"])} for m in messages]
        prompt, _ = self._render(text_only, tools)
        with self._lock:
            ids = self._tokenizer(prompt, add_special_tokens=False)["input_ids"]
        images = sum(
            image_tokens(p["image_url"]["url"])
            for m in messages if isinstance(m.get("content"), list)
            for p in m["content"] if isinstance(p, dict) and p.get("type") == "image_url"
        )
        return len(ids) + images, True

    def accepts_images(self) -> bool:
        """A vision-language model (loaded with a processor) takes images."""
        return self.is_vision

    # -- internals ------------------------------------------------------------------------

    def _render(self, messages: list[Message], tools: list[dict[str, Any]] | None) -> tuple[str, list[Any]]:
        if has_images(messages) and not self.is_vision:
            raise BackendError(
                f"{self.model} is a text-only model but the messages contain images; "
                "configure a vision-language model (e.g. Qwen2.5-VL) for the locator"
            )
        templated, images = for_chat_template(messages)
        if not self.is_vision:
            templated = flatten_text_content(templated)
        kwargs: dict[str, Any] = {"tokenize": False, "add_generation_prompt": True}
        if tools:
            kwargs["tools"] = tools
        if self.enable_thinking is not None:
            kwargs["enable_thinking"] = self.enable_thinking
        renderer = self._processor if self.is_vision else self._tokenizer
        try:
            prompt = renderer.apply_chat_template(templated, **kwargs)
        except Exception as err:  # jinja errors, missing template: say which model
            raise BackendError(f"{self.model}: chat template failed: {err}") from err
        if tools and not self._warned_tools and tools[0].get("function", {}).get("name", "") not in prompt:
            self._warned_tools = True
            log.warning("%s: the chat template ignores tool schemas; use the actor's tool_mode: text", self.model)
        return prompt, images

    def _generate(
        self,
        batch: list[list[Message]],
        tools: list[dict[str, Any]] | None,
        temperature: float,
        max_tokens: int,
        n: int,
        seed: int | None,
    ) -> list[ChatResponse]:
        torch = self._torch
        prompts, images = [], []
        for messages in batch:
            prompt, conv_images = self._render(messages, tools)
            prompts.append(prompt)
            images.extend(conv_images)
        if self.is_vision:
            inputs = self._processor(text=prompts, images=images or None, padding=True, return_tensors="pt")
        else:
            inputs = self._tokenizer(prompts, padding=True, return_tensors="pt", add_special_tokens=False)
        inputs = inputs.to(self.device)
        sample = temperature > 0
        returns = n if sample else 1  # greedy decoding: the n samples would be identical
        gen_kwargs: dict[str, Any] = {
            "max_new_tokens": max_tokens,
            "do_sample": sample,
            "num_return_sequences": returns,
            "pad_token_id": self._tokenizer.pad_token_id,
            "eos_token_id": sorted(self._stop_ids),
        }
        if sample:
            gen_kwargs["temperature"] = temperature
        else:  # greedy: silence sampling defaults a checkpoint's generation_config may carry
            gen_kwargs.update(temperature=None, top_p=None, top_k=None)
        with self._lock:
            if seed is not None:
                torch.manual_seed(seed)
            with torch.no_grad():
                output = self._model.generate(**inputs, **gen_kwargs)
        prompt_len = inputs["input_ids"].shape[1]
        prompt_counts = inputs["attention_mask"].sum(dim=1).tolist()
        responses = []
        for i in range(len(batch)):
            samples, completion_tokens, finish = [], 0, None
            for j in range(returns):
                ids = output[i * returns + j, prompt_len:].tolist()
                ids, stopped = self._cut_at_stop(ids)
                completion_tokens += len(ids) + (1 if stopped else 0)
                samples.append(self._tokenizer.decode(ids, skip_special_tokens=False).strip())
                if j == 0:
                    finish = "stop" if stopped else "length"
            samples *= n // returns  # usage counts the tokens generated, once
            text, calls = parse_hermes_tool_calls(samples[0])
            usage = {"prompt_tokens": int(prompt_counts[i]), "completion_tokens": completion_tokens}
            self.usage.add(usage)
            responses.append(
                ChatResponse(
                    text=text,
                    tool_calls=calls,
                    usage=usage,
                    raw={"prompt": prompts[i], "completions": samples},
                    finish_reason="tool_calls" if calls else finish,
                    samples=samples,
                )
            )
        return responses

    def _cut_at_stop(self, ids: list[int]) -> tuple[list[int], bool]:
        """Tokens before the first stop token (padding after it dropped), and whether one came."""
        for k, token in enumerate(ids):
            if token in self._stop_ids:
                return ids[:k], True
        pad = self._tokenizer.pad_token_id
        return [t for t in ids if t != pad], False


def _stop_token_ids(model: Any, tokenizer: Any) -> set[int]:
    ids: set[int] = set()
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    for value in (configured, tokenizer.eos_token_id):
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, (list, tuple)):
            ids.update(int(v) for v in value)
    if not ids:
        raise BackendError("the model has no eos token: generation could not stop")
    return ids


def _load(transformers: Any, torch: Any, name: str, device: str, dtype: str, trust_remote_code: bool) -> tuple[Any, Any, Any]:
    """Load a text LM (tokenizer) or a VLM (processor), offline when HF_HUB_OFFLINE is set."""
    common = {"local_files_only": _offline(), "trust_remote_code": trust_remote_code}
    if dtype == "auto":
        torch_dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    else:
        torch_dtype = getattr(torch, dtype)
    try:
        config = transformers.AutoConfig.from_pretrained(name, **common)
        if getattr(config, "vision_config", None) is not None:
            processor = transformers.AutoProcessor.from_pretrained(name, **common)
            model = transformers.AutoModelForImageTextToText.from_pretrained(name, dtype=torch_dtype, **common)
            return model.to(device), processor.tokenizer, processor
        tokenizer = transformers.AutoTokenizer.from_pretrained(name, **common)
        model = transformers.AutoModelForCausalLM.from_pretrained(name, dtype=torch_dtype, **common)
    except OSError as err:
        where = "a local folder (HF_HUB_OFFLINE is set)" if _offline() else "a local folder or Hub id"
        raise BackendError(f"cannot load model {name!r} as {where}: {err}") from err
    return model.to(device), tokenizer, None
