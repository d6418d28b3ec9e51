"""Building and taking apart OpenAI-style chat messages.

The HTTP client sends messages as they are; local backends (transformers, vLLM offline)
need the images decoded and the tool-call bookkeeping in the shape chat templates expect.
Qwen-family models write tool calls in the hermes format, parsed here as well.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import re
import uuid
from typing import Any

from anomamind.types import ToolCall

from .base import INVALID_ARGUMENTS_KEY, Message

_DATA_URL_RE = re.compile(r"^data:image/[\w.+-]+;base64,(.*)$", re.DOTALL)
_HERMES_RE = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.DOTALL)


def text_part(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


def image_part(png: bytes, mime: str = "image/png") -> dict[str, Any]:
    """An ``image_url`` content part carrying ``png`` as a base64 data URL."""
    encoded = base64.b64encode(png).decode("ascii")
    return {"type": "image_url", "image_url": {"url": f"data:{mime};base64,{encoded}"}}


def content_text(content: Any) -> str:
    """The text of a message's content, whether a string or a list of parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content if isinstance(part, dict) and part.get("type") == "text")


def decode_image_url(url: str) -> Any:
    """A PIL image from a base64 data URL (remote URLs are not fetched: offline machines)."""
    from PIL import Image

    match = _DATA_URL_RE.match(url)
    if not match:
        raise ValueError(f"only base64 data: URLs are supported for images, got {url[:40]!r}...")
    try:
        data = base64.b64decode(match.group(1), validate=True)
    except binascii.Error as err:
        raise ValueError(f"image data URL is not valid base64: {err}") from err
    return Image.open(io.BytesIO(data)).convert("RGB")


def has_images(messages: list[Message]) -> bool:
    return any(
        isinstance(m.get("content"), list)
        and any(isinstance(p, dict) and p.get("type") in ("image_url", "image") for p in m["content"])
        for m in messages
    )


def for_chat_template(messages: list[Message]) -> tuple[list[Message], list[Any]]:
    """Messages as HF chat templates expect them, and the decoded images in order.

    ``image_url`` parts become ``{"type": "image"}`` placeholders (the processor gets the
    images separately); tool-call arguments become dicts (templates ``tojson`` them).
    """
    images: list[Any] = []
    out: list[Message] = []
    for msg in messages:
        msg = dict(msg)
        content = msg.get("content")
        if isinstance(content, list):
            parts = []
            for part in content:
                if part.get("type") == "image_url":
                    images.append(decode_image_url(part["image_url"]["url"]))
                    parts.append({"type": "image"})
                else:
                    parts.append(part)
            msg["content"] = parts
        if msg.get("tool_calls"):
            calls = []
            for call in msg["tool_calls"]:
                fn = dict(call.get("function", call))
                if isinstance(fn.get("arguments"), str):
                    try:
                        fn["arguments"] = json.loads(fn["arguments"])
                    except json.JSONDecodeError:
                        pass
                calls.append({**call, "type": "function", "function": fn})
            msg["tool_calls"] = calls
        out.append(msg)
    return out, images


def flatten_text_content(messages: list[Message]) -> list[Message]:
    """Text-only models: list contents joined into one string (images must not be present)."""
    out = []
    for msg in messages:
        if isinstance(msg.get("content"), list):
            msg = {**msg, "content": content_text(msg["content"])}
        out.append(msg)
    return out


def tool_call_from_json(name: Any, arguments: Any, call_id: str | None = None) -> ToolCall:
    """A ToolCall from a model's name/arguments; unparseable arguments are kept, flagged."""
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except json.JSONDecodeError:
            arguments = {INVALID_ARGUMENTS_KEY: arguments}
    if not isinstance(arguments, dict):
        arguments = {INVALID_ARGUMENTS_KEY: json.dumps(arguments)}
    return ToolCall(name=str(name), arguments=arguments, id=call_id or f"call_{uuid.uuid4().hex[:12]}")


def parse_hermes_tool_calls(text: str) -> tuple[str, list[ToolCall]]:
    """Split ``<tool_call>{"name": ..., "arguments": ...}</tool_call>`` blocks off ``text``.

    Returns the remaining text and the calls. A block whose JSON cannot be read becomes a
    call named ``"?"`` with the raw text flagged, so the actor can report it to the model.
    """
    calls: list[ToolCall] = []
    for match in _HERMES_RE.finditer(text):
        body = match.group(1).strip()
        if not body:
            continue
        try:
            obj = json.loads(body)
        except json.JSONDecodeError:
            calls.append(ToolCall(name="?", arguments={INVALID_ARGUMENTS_KEY: body}, id=f"call_{uuid.uuid4().hex[:12]}"))
            continue
        if not isinstance(obj, dict) or "name" not in obj:
            calls.append(ToolCall(name="?", arguments={INVALID_ARGUMENTS_KEY: body}, id=f"call_{uuid.uuid4().hex[:12]}"))
            continue
        calls.append(tool_call_from_json(obj["name"], obj.get("arguments", obj.get("parameters", {}))))
    remaining = _HERMES_RE.sub("", text).strip() if calls else text
    return remaining, calls


def assistant_message(text: str, tool_calls: list[ToolCall]) -> Message:
    """The assistant turn to append to a transcript after a response with tool calls."""
    msg: Message = {"role": "assistant", "content": text or ""}
    if tool_calls:
        msg["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": json.dumps(call.arguments, ensure_ascii=False)},
            }
            for call in tool_calls
        ]
    return msg


def tool_message(call_id: str, name: str, content: str) -> Message:
    """A ``role: tool`` message answering the call ``call_id``."""
    return {"role": "tool", "tool_call_id": call_id, "name": name, "content": content}
