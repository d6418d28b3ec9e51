"""Message helpers: hermes tool-call parsing, chat-template shaping, image parts."""

from __future__ import annotations

import io

import pytest

from anomamind.agents.backends.base import INVALID_ARGUMENTS_KEY
from anomamind.agents.backends.messages import (
    assistant_message,
    content_text,
    decode_image_url,
    for_chat_template,
    image_part,
    parse_hermes_tool_calls,
    text_part,
)
from anomamind.types import ToolCall


def test_hermes_blocks_are_split_off_the_text():
    text = (
        'Let me check.\n<tool_call>\n{"name": "a", "arguments": {"x": 1}}\n</tool_call>\n'
        '<tool_call>{"name": "b", "arguments": "{\\"y\\": 2}"}</tool_call>'
    )
    rest, calls = parse_hermes_tool_calls(text)
    assert rest == "Let me check."
    assert [(c.name, c.arguments) for c in calls] == [("a", {"x": 1}), ("b", {"y": 2})]
    assert len({c.id for c in calls}) == 2


def test_hermes_bad_or_unclosed_blocks_are_flagged():
    rest, calls = parse_hermes_tool_calls('<tool_call>{"name": "a", "arguments": {}}</tool_call><tool_call>{oops')
    assert [c.name for c in calls] == ["a", "?"]
    assert calls[1].arguments == {INVALID_ARGUMENTS_KEY: "{oops"}
    assert parse_hermes_tool_calls("plain answer") == ("plain answer", [])


def test_chat_template_shape_decodes_images_and_tool_arguments():
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (8, 4), (255, 0, 0)).save(buffer, format="PNG")
    call = ToolCall("zscore", {"threshold": 3}, "c1")
    messages = [
        {"role": "user", "content": [text_part("see"), image_part(buffer.getvalue())]},
        assistant_message("calling", [call]),
    ]
    shaped, images = for_chat_template(messages)
    assert shaped[0]["content"] == [{"type": "text", "text": "see"}, {"type": "image"}]
    assert images[0].size == (8, 4) and images[0].getpixel((0, 0)) == (255, 0, 0)
    assert shaped[1]["tool_calls"][0]["function"]["arguments"] == {"threshold": 3}
    assert messages[1]["tool_calls"][0]["function"]["arguments"] == '{"threshold": 3}'  # input untouched
    assert content_text(messages[0]["content"]) == "see"


def test_image_urls_must_be_base64_data():
    with pytest.raises(ValueError, match="not valid base64"):
        decode_image_url("data:image/png;base64,@@@")
