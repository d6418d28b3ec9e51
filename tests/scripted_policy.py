"""A scripted policy for GRPO tests: the tiny model's ``generate`` writes canned turns.

A random tiny model never writes a parseable answer, let alone a tool call, so GRPO over it
sees all-zero rewards and the environment's tools, evaluator and refinement turns are never
reached. Here the model's ``generate`` (what TRL samples with) is replaced: each context is
decoded, a turn is chosen from what the conversation needs next (at random among a few
answers of different quality, so groups have reward variance) and returned as token ids.
Everything else is real: TRL parses the turns, runs the tools on the environment, computes
the log-probabilities of the scripted tokens with the model and updates it.

Installed with :class:`ScriptedPolicyCallback` (a ``TrainerCallback``), which also works in
each process of an ``accelerate launch``.
"""

from __future__ import annotations

import json
import random
import re
from typing import Any

#: The window line of the compact ("Window 200-299;") and full ("Window: indices 200..299") prompts.
WINDOW_RE = re.compile(r"Window(?::\s*indices)?\s+(\d+)(?:\.\.|-)(\d+)")


def _answer(start: int, end: int, kind: str) -> str:
    """An answer for the window [start, end] (inclusive): ``normal`` (nothing), ``point`` (a
    short interval), ``wide`` (the whole window, weak: the evaluator objects) or ``garbage``."""
    if kind == "garbage":
        return "I am not sure what to say"
    if kind == "normal":
        return "<think>no feature exceeds its threshold</think>\n[]"
    lo, hi = (start, end) if kind == "wide" else (start + (end - start) // 2, start + (end - start) // 2 + 1)
    item = {"interval": [lo, hi], "type": "other" if kind == "wide" else "point-global",
            "explanation": "scripted", "confidence": 1 if kind == "wide" else 3}
    return f"<think>scripted {kind} answer</think>\n{json.dumps([item])}"


def _tool_call(name: str, arguments: dict[str, Any]) -> str:
    return "<tool_call>\n" + json.dumps({"name": name, "arguments": arguments}) + "\n</tool_call>"


def single_turn_turn(context: str, rng: random.Random) -> str:
    """One answer to a single-turn detector prompt."""
    start, end = (int(v) for v in WINDOW_RE.findall(context)[-1])
    return _answer(start, end, rng.choice(["normal", "point", "wide", "garbage"]))


def environment_turn(context: str, rng: random.Random) -> str:
    """The next turn of an environment episode, from the end of the conversation so far."""
    start, end = (int(v) for v in WINDOW_RE.findall(context)[-1])
    last = context.rsplit("<|im_start|>", 1)[0].rsplit("<|im_start|>", 1)[-1]  # the turn before ours
    if "Your answer is final" in last or "episode is over" in last:
        return "Done."
    if "The evaluator reviewed your answer" in last:
        return _tool_call("submit_answer", {"answer": _answer(start, end, "point")})
    if "<tool_response>" in last:  # a feature tool's result
        return _tool_call("submit_answer", {"answer": _answer(start, end, rng.choice(["normal", "point", "wide"]))})
    choice = rng.choice(["tool", "tool", "submit_wide", "submit", "plain"])
    if choice == "tool":
        return _tool_call("feature_runs", {"feature": rng.choice(["spike", "level"]), "threshold": 4.0})
    if choice == "submit_wide":
        return _tool_call("submit_answer", {"answer": _answer(start, end, "wide")})
    if choice == "submit":
        return _tool_call("submit_answer", {"answer": _answer(start, end, rng.choice(["normal", "point"]))})
    return _answer(start, end, rng.choice(["normal", "point", "garbage"]))


class ScriptedGenerate:
    """A drop-in for ``model.generate``: prompt ids in, prompt + scripted completion ids out
    (right-padded), each completion closed by the end-of-turn token."""

    def __init__(self, tokenizer: Any, turn: Any, seed: int) -> None:
        self.tokenizer = tokenizer
        self.turn = turn
        self.rng = random.Random(seed)
        self.contexts: list[str] = []

    def __call__(self, input_ids: Any, attention_mask: Any = None, **kwargs: Any) -> Any:
        import torch

        tok = self.tokenizer
        contexts = tok.batch_decode(input_ids, skip_special_tokens=False)
        self.contexts += contexts
        completions = [
            tok(self.turn(c, self.rng) + tok.eos_token, add_special_tokens=False)["input_ids"] for c in contexts
        ]
        width = max(len(c) for c in completions)
        padded = [c + [tok.pad_token_id] * (width - len(c)) for c in completions]
        return torch.cat([input_ids, torch.tensor(padded, dtype=input_ids.dtype, device=input_ids.device)], dim=1)


def scripted_policy_callback(mode: str, seed: int = 0) -> Any:
    """A ``TrainerCallback`` that replaces the policy's ``generate`` when training begins
    (``mode``: ``single_turn`` or ``environment``); the seed is offset by the process rank."""
    from transformers import TrainerCallback

    turn = environment_turn if mode == "environment" else single_turn_turn

    class ScriptedPolicyCallback(TrainerCallback):
        generate: ScriptedGenerate | None = None

        def on_train_begin(self, args, state, control, model=None, processing_class=None, **kwargs):
            self.generate = ScriptedGenerate(processing_class, turn, seed + args.process_index)
            model.generate = self.generate

    return ScriptedPolicyCallback()
