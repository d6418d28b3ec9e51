"""Build the detector's chat messages from the upstream evidence.

The same text is what the LLM detector reads at inference, what GRPO trains on and what the
heuristic detector's answers are paired with for SFT, so it must be deterministic, compact
and stable: window values rounded to a few significant digits, tool results as one JSON
line each (sorted keys, rounded floats, long lists shortened), no timestamps or ids.
"""

from __future__ import annotations

import functools
import json
import math
from typing import Any

import numpy as np

from anomamind.agents.roles import Evidence, LocatorOutput, PlanOutput, WindowTask
from anomamind.paths import PROMPT_DIR

#: Significant digits kept for every number shown to the detector.
SIGNIFICANT_DIGITS = 4
#: Longest list shown from a tool output; longer lists keep their head and tail.
MAX_LIST_ITEMS = 24


def _round(value: float, digits: int = SIGNIFICANT_DIGITS) -> float | int | None:
    """``value`` with ``digits`` significant digits; integers stay integers, NaN/inf -> None."""
    if value is None or not math.isfinite(value):
        return None
    rounded = float(f"{value:.{digits}g}")
    return int(rounded) if rounded.is_integer() and abs(rounded) < 1e15 else rounded


def format_values(values: Any, digits: int = SIGNIFICANT_DIGITS) -> str:
    """Comma-separated values rounded like :func:`_round` (``null`` for NaN/inf)."""
    out = []
    for text in np.char.mod(f"%.{digits}g", np.asarray(values, dtype=float)).tolist():
        if text in ("nan", "inf", "-inf"):
            out.append("null")
            continue
        v = float(text)
        out.append(str(int(v)) if v.is_integer() and abs(v) < 1e15 else repr(v))
    return ",".join(out)


def compact(obj: Any) -> Any:
    """A JSON-ready copy of ``obj`` with floats rounded and long lists shortened."""
    kind = type(obj)
    if kind is float:
        return _round(obj)
    if kind is int or kind is str or kind is bool or obj is None:
        return obj
    if kind is dict:
        return {str(k): compact(v) for k, v in obj.items()}
    if kind is list or kind is tuple:
        items = list(obj)
        if len(items) > MAX_LIST_ITEMS:
            half = MAX_LIST_ITEMS // 2
            items = items[:half] + [f"... {len(items) - 2 * half} more ..."] + items[-half:]
        return [compact(v) for v in items]
    if hasattr(obj, "tolist"):  # numpy arrays and scalars
        return compact(obj.tolist())
    if isinstance(obj, float):
        return _round(float(obj))
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, dict):
        return compact(dict(obj))
    if isinstance(obj, (list, tuple)):
        return compact(list(obj))
    return str(obj)


def dumps(obj: Any) -> str:
    """Deterministic one-line JSON of ``compact(obj)``."""
    return json.dumps(compact(obj), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@functools.lru_cache(maxsize=1)
def system_prompt() -> str:
    """The detector's system prompt (agents/prompts/detector.md)."""
    return (PROMPT_DIR / "detector.md").read_text().strip()


def _window_block(task: WindowTask) -> str:
    w = task.window
    values = format_values(w.values)
    series = task.series
    lines = [
        f"Series: {series.name} (dataset {series.dataset}, domain {series.domain})",
        f"Window: indices {w.start}..{w.end - 1} ({len(w)} points)",
        f"Values from index {w.start}: [{values}]",
    ]
    if task.preprocessing:
        lines.append(f"Series-level statistics: {dumps(task.preprocessing)}")
    return "\n".join(lines)


def _locator_block(located: LocatorOutput | None) -> str:
    if located is None:
        return "Localisation: not available"
    cands = [[iv.start, iv.end] for iv in located.candidates]
    return f"Localisation: {located.description.strip()}\nCandidate intervals: {json.dumps(cands)}"


def _plan_block(plan: PlanOutput | None) -> str:
    if plan is None:
        return "Plan: not available"
    lines = [f"Plan: {plan.text.strip()}"]
    if plan.thresholds:
        lines.append(f"Thresholds: {dumps(plan.thresholds)}")
    return "\n".join(lines)


def _evidence_block(evidence: Evidence | None) -> str:
    if evidence is None or not evidence.tool_results:
        return "Tool results: none"
    lines = ["Tool results (one JSON line per call):"]
    for result in evidence.tool_results:
        record: dict[str, Any] = {"tool": result.name, "args": result.arguments}
        if result.error:
            record["error"] = result.error
        else:
            record["output"] = result.output
        lines.append(dumps(record))
    return "\n".join(lines)


def build_detector_messages(
    task: WindowTask,
    located: LocatorOutput | None,
    plan: PlanOutput | None,
    evidence: Evidence | None,
    *,
    feedback: str | None = None,
    previous_answer: str | None = None,
) -> list[dict[str, Any]]:
    """OpenAI-style messages for the detector; a refinement round appends the previous
    answer (as the assistant turn) and the evaluator's feedback."""
    user = "\n\n".join(
        [
            _window_block(task),
            _locator_block(located),
            _plan_block(plan),
            _evidence_block(evidence),
            f"Answer with <think>...</think> then a JSON array of intervals inside "
            f"[{task.window.start}, {task.window.end - 1}].",
        ]
    )
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": system_prompt()},
        {"role": "user", "content": user},
    ]
    if previous_answer is not None:
        messages.append({"role": "assistant", "content": previous_answer})
        messages.append(
            {
                "role": "user",
                "content": "The evaluator reviewed your answer:\n"
                + (feedback or "- no specific feedback")
                + "\nRevise the answer in the same format (think block, then the JSON array).",
            }
        )
    return messages
