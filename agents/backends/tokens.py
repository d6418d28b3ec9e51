"""Counting a prompt's tokens, for the context budgets of the LLM roles.

With the model's tokenizer (a local folder, a Hub id, or a ``.gguf`` file) the count is the
chat template's own; without one it is a conservative estimate: every digit a token (Qwen,
SmolLM2 and Llama 2 split numbers into digits), and so is a space before a digit, every
symbol and every newline; a word a token per four letters. On the roles' prompts,
tool schemas, window values and detector prompts it gives 1.04 to 1.6 times the count of
SmolLM2's tokenizer (1.3 on average), so a prompt the estimate admits also fits the real
context, at the price of some unused room. Images count by their pixel size (28x28 pixels
a token, as Qwen2-VL merges patches), at least :data:`MIN_IMAGE_TOKENS`.
"""

from __future__ import annotations

import base64
import json
import math
import re
import struct
import threading
from pathlib import Path
from typing import Any, Protocol

from .base import BackendError, Message

#: Tokens a chat template adds around each message (role markers) and once per prompt.
MESSAGE_OVERHEAD = 8
PROMPT_OVERHEAD = 16
#: The fewest tokens an image costs a vision-language model (LLaVA-1.5 uses 576).
MIN_IMAGE_TOKENS = 576

_WORD_RE = re.compile(r"[^\W\d_]+")
_DIGIT_RE = re.compile(r"\d")
_SPACED_DIGIT_RE = re.compile(r"\s(?=\d)")
_SYMBOL_RE = re.compile(r"[^\w\s]|_")
_DATA_URL_RE = re.compile(r"^data:image/[\w.+-]+;base64,(.*)$", re.DOTALL)


class TokenCounter(Protocol):
    """Counts the tokens of a conversation as the model would see it."""

    exact: bool

    def count(self, messages: list[Message], tools: list[dict[str, Any]] | None = None) -> int: ...


def estimate_text_tokens(text: str) -> int:
    """A count no smaller than common tokenizers give for ``text`` (see the module docstring)."""
    words = sum(math.ceil(len(m.group(0)) / 4) for m in _WORD_RE.finditer(text))
    symbols = len(_DIGIT_RE.findall(text)) + len(_SPACED_DIGIT_RE.findall(text)) + len(_SYMBOL_RE.findall(text))
    return words + symbols + text.count("\n")


def image_tokens(url: str) -> int:
    """Tokens of an image part: its pixels / (28*28) from the PNG header, at least
    :data:`MIN_IMAGE_TOKENS` (also for images whose size cannot be read)."""
    match = _DATA_URL_RE.match(url or "")
    if not match:
        return MIN_IMAGE_TOKENS
    try:
        head = base64.b64decode(match.group(1)[:64])
        width, height = struct.unpack(">II", head[16:24])
    except (ValueError, struct.error):
        return MIN_IMAGE_TOKENS
    return max(MIN_IMAGE_TOKENS, math.ceil(width * height / 784))


def _split_content(content: Any) -> tuple[str, int]:
    """(text, image tokens) of a message's content."""
    if content is None:
        return "", 0
    if isinstance(content, str):
        return content, 0
    texts, images = [], 0
    for part in content:
        if not isinstance(part, dict):
            continue
        if part.get("type") == "text":
            texts.append(str(part.get("text", "")))
        elif part.get("type") in ("image_url", "image"):
            images += image_tokens((part.get("image_url") or {}).get("url", ""))
    return "\n".join(texts), images


def _tool_text(message: Message) -> str:
    calls = message.get("tool_calls") or []
    return json.dumps(calls, ensure_ascii=False) if calls else ""


class EstimatedCounter:
    """The conservative estimate (no tokenizer needed)."""

    exact = False

    def count(self, messages: list[Message], tools: list[dict[str, Any]] | None = None) -> int:
        total = PROMPT_OVERHEAD
        for message in messages:
            text, images = _split_content(message.get("content"))
            total += MESSAGE_OVERHEAD + images + estimate_text_tokens(text + _tool_text(message))
        if tools:
            total += estimate_text_tokens(json.dumps(tools, ensure_ascii=False))
        return total


class TokenizerCounter:
    """Counts with a Hugging Face tokenizer and its chat template (images estimated).

    Tool schemas are counted as their JSON text on top of the template's rendering,
    because templates that ignore tools would otherwise hide them while the server (or a
    text-mode prompt) still sends them."""

    exact = True

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self._lock = threading.Lock()  # fast tokenizers are not safe to share across threads

    def _ids(self, text: str) -> int:
        with self._lock:
            return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def count(self, messages: list[Message], tools: list[dict[str, Any]] | None = None) -> int:
        flat, images = [], 0
        for message in messages:
            text, image_count = _split_content(message.get("content"))
            images += image_count
            flat.append({"role": message.get("role", "user"), "content": text + _tool_text(message)})
        if getattr(self.tokenizer, "chat_template", None):
            with self._lock:
                rendered = self.tokenizer.apply_chat_template(flat, tokenize=False, add_generation_prompt=True)
            total = self._ids(rendered)
        else:
            total = PROMPT_OVERHEAD + sum(MESSAGE_OVERHEAD + self._ids(m["content"]) for m in flat)
        if tools:
            total += self._ids(json.dumps(tools, ensure_ascii=False))
        return total + images


def load_tokenizer_counter(spec: str) -> TokenizerCounter:
    """A counter over the tokenizer named by ``spec``: a folder, a Hub id, or a ``.gguf``
    file (transformers reads the tokenizer out of it; slow for big files, so save it once
    with ``save_pretrained`` and point at the folder)."""
    try:
        from transformers import AutoTokenizer
    except ImportError as err:
        raise BackendError(f"tokenizer {spec!r}: counting with a tokenizer needs transformers ({err})") from err
    path = Path(spec)
    try:
        if path.suffix == ".gguf":
            tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
        else:
            tokenizer = AutoTokenizer.from_pretrained(spec)
    except (OSError, ValueError) as err:
        raise BackendError(f"tokenizer {spec!r} cannot be loaded: {err}") from err
    return TokenizerCounter(tokenizer)
