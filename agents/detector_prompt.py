"""Build the detector's chat messages from the upstream evidence, in one of two styles.

The same text is what the LLM detector reads at inference, what GRPO trains on and what the
heuristic detector's answers are paired with for SFT, so it must be deterministic and
stable (no timestamps or ids). Two renderings of the same evidence (``DETECTOR_PROMPTS``):

- ``compact`` (the default): token-budgeted for small models and fast rollouts - the
  window as one digit 0-9 per point (scaled between its min and max; longer windows are
  downsampled keeping the extremes), the locator's candidates on one line, the tool runs
  merged into one line per flagged region (``feature peak_z/threshold``), the strongest
  sub-threshold reading of each quiet feature (with its index when it is a near miss),
  the knowledge entry in a sentence, and the answer format once
  (agents/prompts/detector_compact.md), without explanations in the answer. Median 420-460
  SmolLM2 tokens per dataset at window 100 on the dev split, p95 under 520
  (benchmarks/train/prompt_tokens.md).
- ``full``: every value to 4 significant digits, the locator's description, the plan text
  and thresholds, each tool result as one JSON line (agents/prompts/detector.md); 1,500-
  2,800 tokens at window 100. Kept for ablations and large models.

In both, names are quoted and the data-derived and model-written text sits in a data
section the system prompt says to read as data (agents/untrusted.py).
"""

from __future__ import annotations

import functools
import json
import math
import re
from typing import Any

import numpy as np

from anomamind.agents.parsing import parse_detection, render_detection
from anomamind.agents.roles import Evidence, LocatorOutput, PlanOutput, WindowTask
from anomamind.agents.untrusted import clean_text, data_section, quote, with_data_rule
from anomamind.paths import PROMPT_DIR

#: Significant digits kept for every number shown to the detector.
SIGNIFICANT_DIGITS = 4
#: Longest list shown from a tool output; longer lists keep their head and tail.
MAX_LIST_ITEMS = 24
#: The prompt styles (``detector_prompt`` in the agent config).
DETECTOR_PROMPTS: tuple[str, ...] = ("compact", "full")
#: Compact style: most points in the value strip, flagged regions listed, and characters
#: of the knowledge description's first clause.
STRIP_POINTS = 100
MAX_REGIONS = 6
KNOWLEDGE_CHARS = 80


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


def check_style(style: str) -> str:
    """``style`` if it is one of :data:`DETECTOR_PROMPTS`, else a ValueError naming them."""
    if style not in DETECTOR_PROMPTS:
        raise ValueError(f"detector_prompt must be one of {list(DETECTOR_PROMPTS)}, got {style!r}")
    return style


@functools.lru_cache(maxsize=None)
def system_prompt(style: str = "full") -> str:
    """The detector's system prompt: agents/prompts/detector.md (full) or
    detector_compact.md (compact)."""
    name = "detector.md" if check_style(style) == "full" else "detector_compact.md"
    return with_data_rule((PROMPT_DIR / name).read_text().strip())


def _window_block(task: WindowTask) -> str:
    w = task.window
    values = format_values(w.values)
    series = task.series
    lines = [
        f"Series: {quote(series.name)} (dataset {quote(series.dataset)}, domain {quote(series.domain)})",
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
    return f"Localisation: {clean_text(located.description.strip())}\nCandidate intervals: {json.dumps(cands)}"


def _plan_block(plan: PlanOutput | None) -> str:
    if plan is None:
        return "Plan: not available"
    lines = [f"Plan: {clean_text(plan.text.strip())}"]
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
        lines.append(clean_text(dumps(record)))
    return "\n".join(lines)


def _full_user(task: WindowTask, located: LocatorOutput | None, plan: PlanOutput | None,
               evidence: Evidence | None) -> str:
    blocks = [_window_block(task), _locator_block(located), _plan_block(plan), _evidence_block(evidence)]
    return "\n\n".join(
        [
            data_section(["\n\n".join(blocks)]),
            f"Answer with <think>...</think> then a JSON array of intervals inside "
            f"[{task.window.start}, {task.window.end - 1}].",
        ]
    )


# ----------------------------------------------------------------------------- compact style


def _span(start: int, end: int) -> str:
    return str(start) if start == end else f"{start}-{end}"


def _z(value: float) -> str:
    """A z-score or threshold to one decimal (none when it is whole: 8, 26.1, 140)."""
    text = f"{value:.1f}" if abs(value) < 100 else f"{value:.0f}"
    return text[:-2] if text.endswith(".0") else text


def value_strip(values: Any, max_points: int = STRIP_POINTS) -> tuple[str, str]:
    """The window as one digit per point (0 = its minimum, 9 = its maximum; ``_`` for
    NaN/inf) and a header naming the scale. Windows longer than ``max_points`` are cut
    into ``max_points`` equal chunks, each shown by its point farthest from the median,
    so spikes survive the downsampling."""
    x = np.asarray(values, dtype=float)
    finite = np.isfinite(x)
    if x.size > max_points:
        median = float(np.median(x[finite])) if finite.any() else 0.0
        distance = np.where(finite, np.abs(np.where(finite, x, median) / 2 - median / 2), -1.0)  # halves: no overflow
        picks = [int(chunk[np.argmax(distance[chunk])]) for chunk in np.array_split(np.arange(x.size), max_points)]
        x, finite = x[picks], finite[picks]
        every = f", one per ~{len(values) / max_points:.1f} points (the most extreme)"
    else:
        every = ", one per point"
    if not finite.any():
        return "_" * x.size, "values: all missing"
    lo, hi = float(np.min(x[finite])), float(np.max(x[finite]))
    span = hi / 2 - lo / 2  # halves: values near the float64 limit do not overflow
    half = np.where(finite, x, lo) / 2
    digits = np.zeros(x.size, dtype=int) if span <= 0 else np.clip(np.round((half - lo / 2) / span * 9), 0, 9)
    strip = "".join(str(int(d)) if ok else "_" for d, ok in zip(digits, finite))
    low, high = format_values([lo, hi], 3).split(",")
    return strip, f"values {low}..{high} as 0-9{every}"


def _knowledge_sentence(task: WindowTask) -> str:
    """The knowledge entry's description (heuristic knowledge: the dataset's first sentence;
    typical types) without parenthetical details, its first clause cut to KNOWLEDGE_CHARS."""
    text = str(getattr(task.knowledge, "description", "") or "")
    text = re.sub(r"\s+", " ", re.sub(r"\s*\([^()]*\)", "", text)).strip()
    first, sep, rest = text.partition(";")
    if len(first) > KNOWLEDGE_CHARS:
        first = first[: KNOWLEDGE_CHARS - 3].rsplit(" ", 1)[0] + "..."
    return first + sep + rest


def _runs_of(evidence: Evidence | None) -> tuple[list[tuple[int, int, str, float, float]], list[str]]:
    """``(start, end, feature, peak_z, threshold)`` of every tool run, and one line for
    each other tool result (its summary, or its error)."""
    runs, others = [], []
    for result in evidence.tool_results if evidence is not None else []:
        output = result.output if isinstance(result.output, dict) else None
        if not result.ok:
            others.append(f"{result.name}: error: {clean_text(result.error, 120, single_line=True)}")
        elif output is not None and isinstance(output.get("runs"), list):
            feature = str(output.get("feature") or result.name)
            threshold = float(result.arguments.get("threshold") or 1.0)
            runs += [(int(r[0]), int(r[1]), feature, float(r[2]), threshold) for r in output["runs"]]
        else:
            summary = output.get("summary") if output is not None else None
            others.append(f"{result.name}: {summary if summary else dumps(result.output)[:200]}")
    return runs, others


def _region_lines(runs: list[tuple[int, int, str, float, float]], gap: int) -> list[str]:
    """Runs merged into regions (closer than ``gap`` points), strongest first; each region
    lists every feature that flagged it once, with its highest peak z / threshold."""
    regions: list[dict[str, Any]] = []
    for start, end, feature, peak, threshold in sorted(runs):
        if regions and start <= regions[-1]["end"] + gap + 1:
            region = regions[-1]
            region["end"] = max(region["end"], end)
        else:
            region = {"start": start, "end": end, "features": {}}
            regions.append(region)
        best = region["features"].get(feature)
        if best is None or peak / threshold > best[0] / best[1]:
            region["features"][feature] = (peak, threshold)
    for region in regions:
        region["strength"] = max(p / t for p, t in region["features"].values())
    regions.sort(key=lambda r: -r["strength"])
    lines = []
    for region in regions[:MAX_REGIONS]:
        features = sorted(region["features"].items(), key=lambda kv: -kv[1][0] / kv[1][1])
        readings = ", ".join(f"{name} {_z(p)}/{_z(t)}" for name, (p, t) in features)
        lines.append(f"- {_span(region['start'], region['end'])}: {readings}")
    if len(regions) > MAX_REGIONS:
        lines.append(f"- {len(regions) - MAX_REGIONS} weaker region(s) not shown")
    return lines


def _quiet_features(evidence: Evidence | None) -> str:
    """The strongest reading of each whole-window feature call that flagged nothing."""
    quiet = []
    for result in evidence.tool_results if evidence is not None else []:
        output = result.output if isinstance(result.output, dict) else None
        if not result.ok or output is None or output.get("runs") or "max_z" not in output:
            continue
        if "start" in result.arguments or "end" in result.arguments:
            continue  # a follow-up on one candidate, not the whole window
        threshold = float(result.arguments.get("threshold") or 1.0)
        near = float(output["max_z"]) >= threshold / 2  # only near misses say where
        where = f" at {output['max_at']}" if near and "max_at" in output else ""
        quiet.append(f"{output.get('feature', result.name)} {_z(float(output['max_z']))}/{_z(threshold)}{where}")
    return ", ".join(quiet)


def _compact_user(task: WindowTask, located: LocatorOutput | None, plan: PlanOutput | None,
                  evidence: Evidence | None) -> str:
    w = task.window
    strip, scale = value_strip(w.values)
    knowledge = _knowledge_sentence(task)
    lines = [f"Dataset {quote(task.series.dataset)}" + (f": {knowledge}" if knowledge else ""),
             f"Window {w.start}-{w.end - 1}; {scale}:", strip]
    if located is None or "localization" in task.disabled:
        lines.append("Locator: off")
    else:
        spans = ", ".join(_span(c.start, c.end) for c in located.candidates)
        lines.append(f"Locator candidates: {spans or 'none'}")
    gap = int(plan.thresholds.get("merge_gap", 0)) if plan is not None else 0
    runs, others = _runs_of(evidence)
    regions = _region_lines(runs, gap)
    if evidence is None:
        lines.append("Tool evidence: none")
    else:
        lines.append("Flagged (feature peak z/threshold):" if regions else "Flagged: none")
        lines += regions
        quiet = _quiet_features(evidence)
        if quiet:
            lines.append(f"Quiet (max z/threshold): {quiet}")
        lines += [f"- {line}" for line in others]
    return data_section(lines)


def compact_answer(text: str, window_start: int, window_end: int) -> str:
    """A detector answer rewritten in the compact answer format: the think block names
    each interval with the first clause of its explanation, the JSON drops the
    explanations. Unparseable answers are returned unchanged (the caller's to report)."""
    detection = parse_detection(text, window_start, window_end)
    if not detection.ok:
        return text
    if detection.intervals:
        think = "; ".join(
            f"{_span(iv.start, iv.end)} {re.split(r' [(]|;', iv.explanation)[0]}".strip() for iv in detection.intervals
        )
    else:
        think = "no feature exceeds its threshold"
    return render_detection(detection.intervals, think, explanations=False)


_UNIT_RE = re.compile(r"\d|[A-Za-z]+|[^\sA-Za-z\d]")


def text_units(messages: list[dict[str, Any]]) -> int:
    """Digits, words and other symbols of the messages' text, each counted once: a
    tokenizer-free size. SmolLM2 (digits split, common words whole) reads 1.10-1.16 tokens
    per unit on the dev split's compact prompts, chat template included
    (benchmarks/train/prompt_tokens.md), so budgets can be checked without the model."""
    return sum(len(_UNIT_RE.findall(str(m.get("content") or ""))) for m in messages)


# ----------------------------------------------------------------------------- messages


def build_detector_messages(
    task: WindowTask,
    located: LocatorOutput | None,
    plan: PlanOutput | None,
    evidence: Evidence | None,
    *,
    feedback: str | None = None,
    previous_answer: str | None = None,
    style: str = "compact",
) -> list[dict[str, Any]]:
    """OpenAI-style messages for the detector in ``style`` (see the module docstring); a
    refinement round appends the previous answer (as the assistant turn) and the
    evaluator's feedback."""
    render = _compact_user if check_style(style) == "compact" else _full_user
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": system_prompt(style)},
        {"role": "user", "content": render(task, located, plan, evidence)},
    ]
    if previous_answer is not None:
        messages.append({"role": "assistant", "content": previous_answer})
        messages.append(
            {
                "role": "user",
                "content": "The evaluator reviewed your answer:\n"
                + data_section([clean_text(feedback or "- no specific feedback")])
                + "\nRevise the answer in the same format (think block, then the JSON array).",
            }
        )
    return messages
