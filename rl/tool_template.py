"""Chat templates that render tool schemas, tool calls and tool results.

Multi-turn GRPO (``rollout: environment``) shows the policy the schemas of the tools it may
call and feeds tool results back as messages, so the tokenizer's chat template must render
a whole tool conversation and TRL must be able to parse the model's tool calls back out.
Qwen3's template does both. The tiny test model (rl/tiny.py) and SmolLM2 ship plain ChatML
templates that drop tools; for such ChatML tokenizers the ``hermes`` template is used: the
Qwen2.5 ChatML template that TRL ships (tool schemas in the system turn,
``<tool_call>{"name": ..., "arguments": ...}</tool_call>`` blocks, results as
``<tool_response>`` turns), which TRL recognises for response parsing and which the
project's own parser (agents/backends/messages.parse_hermes_tool_calls) reads.
trl is imported inside the functions.
"""

from __future__ import annotations

import logging
from typing import Any

from anomamind.config import ConfigError

log = logging.getLogger(__name__)

#: Names ``model.chat_template`` accepts (besides a Jinja template string).
TEMPLATE_NAMES: tuple[str, ...] = ("hermes",)
_CHATML_TOKENS = ("<|im_start|>", "<|im_end|>")


def hermes_template() -> str:
    """TRL's copy of the Qwen2.5 ChatML template with hermes-style tool calls."""
    from trl.chat_template_utils import qwen2_5_chat_template

    return qwen2_5_chat_template


def set_chat_template(tokenizer: Any, template: str) -> None:
    """Use ``template`` (a name of :data:`TEMPLATE_NAMES` or a Jinja string) for ``tokenizer``."""
    if template == "hermes":
        missing = [t for t in _CHATML_TOKENS if t not in tokenizer.get_vocab()]
        if missing:
            raise ConfigError(f"model.chat_template 'hermes' is ChatML, but the tokenizer lacks {missing}")
        tokenizer.chat_template = hermes_template()
    elif "{%" in template or "{{" in template:
        tokenizer.chat_template = template
    else:
        raise ConfigError(f"model.chat_template {template!r} is neither one of {TEMPLATE_NAMES} nor a Jinja template")


def renders_tools(tokenizer: Any) -> bool:
    """Whether the tokenizer's template renders a full tool exchange (TRL's own check)."""
    from trl.chat_template_utils import supports_tool_calling

    return supports_tool_calling(tokenizer)


def ensure_tool_template(tokenizer: Any) -> None:
    """Make ``tokenizer`` render tools: keep a template that does; switch a ChatML one that
    does not to ``hermes``; otherwise a ConfigError saying what to set."""
    if renders_tools(tokenizer):
        return
    vocab = tokenizer.get_vocab()
    if all(t in vocab for t in _CHATML_TOKENS):
        log.info("the chat template does not render tools; using the hermes (Qwen2.5 ChatML) template")
        tokenizer.chat_template = hermes_template()
        return
    raise ConfigError(
        "rollout: environment needs a chat template that renders tool schemas, calls and results; "
        "this tokenizer's does not and it is not ChatML: set model.chat_template to a Jinja template that does"
    )
