"""Context budgets of the LLM roles: every prompt fits what the backend's context leaves
after the answer's ``max_tokens``, or it is not sent.

A role builds its user message from :class:`Section` s (in the order they are shown,
data sections first). When the prompt is over budget, the shrinkable section of the
lowest ``keep`` rank (the last such when ranks tie) moves to its next (shorter) variant,
or, when it is ``cuttable``, is cut and finally left out; the prompt is counted again
after each change. What was shortened is recorded in the step. A
prompt whose fixed parts alone exceed the budget raises :class:`PromptTooLongError` naming
the role, the budget and the size, before any request. Counting uses the backend's
tokenizer when it has one, else a conservative estimate (agents/backends/tokens.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from anomamind.agents.backends.base import ContextOverflowError, Message
from anomamind.agents.backends.tokens import EstimatedCounter, estimate_text_tokens
from anomamind.agents.untrusted import data_section

#: A cut section keeps at least this many characters, else it is left out.
MIN_KEPT_CHARS = 80
LEFT_OUT = "(left out to fit the context)"


class PromptTooLongError(ContextOverflowError):
    """A role's prompt cannot fit the context even with every optional part shortened."""

    def __init__(self, role: str, size: int, budget: int, exact: bool, context: int, max_tokens: int) -> None:
        how = "counted with the model's tokenizer" if exact else "conservative estimate"
        super().__init__(
            f"{role}: the prompt needs {size} tokens ({how}) but its budget is {budget} "
            f"(context {context} minus max_tokens {max_tokens} for the answer); nothing was sent. "
            f"Raise the backend's context_tokens (and the server's context) or lower {role}.max_tokens"
        )
        self.role, self.size, self.budget = role, size, budget


@dataclass
class Section:
    """One part of a user message: ``variants`` are (label, text) pairs, longest first;
    ``data`` sections go inside the data markers; a ``cuttable`` section's last variant may
    be cut and finally left out; sections of higher ``keep`` rank shrink later."""

    name: str
    variants: list[tuple[str, str]]
    data: bool = False
    cuttable: bool = False
    keep: int = 0
    chosen: int = 0
    text_override: str | None = None
    changes: list[str] = field(default_factory=list)

    @classmethod
    def fixed(cls, name: str, text: str, *, data: bool = False) -> "Section":
        return cls(name, [(name, text)], data=data)

    @property
    def text(self) -> str:
        return self.text_override if self.text_override is not None else self.variants[self.chosen][1]

    def can_shrink(self) -> bool:
        return self.chosen < len(self.variants) - 1 or (self.cuttable and self.text != LEFT_OUT)

    def shrink(self, excess_tokens: int) -> None:
        """One step shorter: the next variant, else cut by about ``excess_tokens``, else out."""
        if self.chosen < len(self.variants) - 1:
            self.chosen += 1
            self.changes.append(f"shown as {self.variants[self.chosen][0]}")
            return
        text = self.text
        tokens = max(1, estimate_text_tokens(text))
        keep = int(len(text) * (tokens - excess_tokens - 16) / tokens)
        if keep < MIN_KEPT_CHARS:
            self.text_override = LEFT_OUT
            self.changes.append("left out")
        else:
            self.text_override = f"{text[:keep]} [... cut to fit the context]"
            self.changes.append(f"cut to {keep} of {len(text)} characters")


def user_text(sections: list[Section]) -> str:
    """The data sections inside the markers, then the other sections, blank-line separated."""
    data = [s.text for s in sections if s.data]
    rest = [s.text for s in sections if not s.data]
    return "\n\n".join(([data_section(data)] if data else []) + rest)


def context_budget(backend: Any, max_tokens: int) -> int | None:
    """Prompt tokens the backend's context leaves after ``max_tokens`` (None: unknown)."""
    context = getattr(backend, "context_tokens", None)
    return None if not context else int(context) - int(max_tokens)


def count_prompt(backend: Any, messages: list[Message], tools: list[dict[str, Any]] | None = None) -> tuple[int, bool]:
    """(tokens, exact) of the prompt, by the backend's counter or the estimate."""
    counter = getattr(backend, "count_tokens", None)
    if counter is not None:
        return counter(messages, tools)
    return EstimatedCounter().count(messages, tools), False


def check_budget(role: str, backend: Any, max_tokens: int, messages: list[Message],
                 tools: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The budget record of a finished prompt; PromptTooLongError when it does not fit."""
    budget = context_budget(backend, max_tokens)
    size, exact = count_prompt(backend, messages, tools)
    if budget is not None and size > budget:
        raise PromptTooLongError(role, size, budget, exact, budget + max_tokens, max_tokens)
    return {"budget": budget, "prompt_tokens": size, "counted": "tokenizer" if exact else "estimate"}


def fit_prompt(
    role: str,
    backend: Any,
    max_tokens: int,
    system: str,
    sections: list[Section],
    tools: list[dict[str, Any]] | None = None,
) -> tuple[list[Message], dict[str, Any]]:
    """System + user messages shortened to the budget (see the module docstring), and the
    budget record (``budget``, ``prompt_tokens``, ``counted``, ``shortened``)."""
    budget = context_budget(backend, max_tokens)
    while True:
        messages: list[Message] = [{"role": "system", "content": system}, {"role": "user", "content": user_text(sections)}]
        size, exact = count_prompt(backend, messages, tools)
        if budget is None or size <= budget:
            break
        shrinkable = [s for s in sections if s.can_shrink()]
        if not shrinkable:
            raise PromptTooLongError(role, size, budget, exact, budget + max_tokens, max_tokens)
        min(reversed(shrinkable), key=lambda s: s.keep).shrink(size - budget)
    record: dict[str, Any] = {"budget": budget, "prompt_tokens": size, "counted": "tokenizer" if exact else "estimate"}
    shortened = {s.name: "; ".join(s.changes) for s in sections if s.changes}
    if shortened:
        record["shortened"] = shortened
    return messages, record
