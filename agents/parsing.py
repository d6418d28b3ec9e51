"""Parse and render the detector's answer: ``<think>...</think>`` then a JSON array.

Each array element is ``{"interval": [start, end], "type": ..., "explanation": ...,
"confidence": 1..3}`` with absolute, inclusive indices. Parsing is forgiving about the
wrapping (fenced or bare JSON, text after the array, a missing think block, ``start``/``end``
keys, a single object instead of an array) and repairs what it can (reversed or
out-of-window indices, unknown types, confidence out of range), recording every repair in
``Detection.notes``. What cannot be parsed becomes ``Detection.parse_error``: the window
then predicts nothing, and the error is kept, never hidden.
"""

from __future__ import annotations

import ast
import json
import re
from typing import Any, Iterator

from anomamind.types import ANOMALY_TYPES, Detection, Interval

_THINK_RE = re.compile(r"<think>(.*?)</think>", re.DOTALL | re.IGNORECASE)
_FENCE_RE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.DOTALL)

#: Common names models use for the taxonomy's types.
TYPE_ALIASES: dict[str, str] = {
    "point": "point-global",
    "spike": "point-global",
    "dip": "point-global",
    "outlier": "point-global",
    "global-point": "point-global",
    "point-anomaly": "point-global",
    "contextual": "point-contextual",
    "contextual-point": "point-contextual",
    "contextual-anomaly": "point-contextual",
    "level": "level-shift",
    "shift": "level-shift",
    "step": "level-shift",
    "trend": "trend-change",
    "trend-break": "trend-change",
    "collective-trend": "trend-change",
    "seasonal": "seasonal-deviation",
    "collective-seasonal": "seasonal-deviation",
    "seasonality": "seasonal-deviation",
    "shapelet": "shapelet-deviation",
    "collective-shapelet": "shapelet-deviation",
    "pattern": "shapelet-deviation",
    "variance": "variance-change",
    "volatility": "variance-change",
    "flat": "flat-missing",
    "missing": "flat-missing",
    "stuck": "flat-missing",
    "constant": "flat-missing",
}


def normalise_type(name: Any, taxonomy: tuple[str, ...] = ANOMALY_TYPES) -> tuple[str, bool]:
    """Map a free-form type name onto the taxonomy; returns (type, was_known)."""
    key = re.sub(r"[\s_/]+", "-", str(name).strip().lower())
    key = re.sub(r"-?anomal(y|ies)$", "", key).strip("-") or key
    if key in taxonomy:
        return key, True
    if key in TYPE_ALIASES and TYPE_ALIASES[key] in taxonomy:
        return TYPE_ALIASES[key], True
    for alias, target in TYPE_ALIASES.items():
        if alias in key and target in taxonomy:
            return target, True
    return "other", False


def _candidate_json_texts(body: str) -> list[str]:
    """Texts that may hold the answer, most specific first."""
    candidates = [m.group(1).strip() for m in _FENCE_RE.finditer(body)]
    candidates.append(body.strip())
    return candidates


def _json_values(text: str) -> Iterator[Any]:
    """Every JSON (or Python-literal) array/object in ``text``, in order of where it starts;
    text around and between them is ignored."""
    decoder = json.JSONDecoder()
    pos = _next_opener(text, 0)
    while pos != -1:
        try:
            value, length = decoder.raw_decode(text[pos:])
        except json.JSONDecodeError:
            value, length = _literal_at(text, pos)
        if length:
            yield value
            pos = _next_opener(text, pos + length)
        else:
            pos = _next_opener(text, pos + 1)


def _next_opener(text: str, start: int) -> int:
    found = [i for i in (text.find("[", start), text.find("{", start)) if i != -1]
    return min(found) if found else -1


def _literal_at(text: str, pos: int) -> tuple[Any, int]:
    """Single quotes, True/False: a Python literal from ``pos`` up to a matching bracket."""
    closing = "]" if text[pos] == "[" else "}"
    end = text.rfind(closing)
    while end > pos:
        try:
            return ast.literal_eval(text[pos : end + 1]), end + 1 - pos
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            end = text.rfind(closing, pos, end)
    return None, 0


def _is_interval_object(item: Any) -> bool:
    if not isinstance(item, dict):
        return False
    try:
        _bounds_of(item)
    except (TypeError, ValueError):
        return False
    return True


def _answer_items(text: str) -> list[Any]:
    """The items of the first JSON value in ``text`` that is an answer: an empty array, or
    an array (or wrapping object) holding at least one interval object. ValueError naming
    what was found otherwise: a stray ``[201]`` in prose is not an empty detection."""
    found = []
    for value in _json_values(text):
        try:
            items = _as_items(value)
        except ValueError:
            found.append(value)
            continue
        if not items or any(_is_interval_object(item) for item in items):
            return items
        found.append(value)
    if not found:
        raise ValueError("no JSON array found")
    shown = json.dumps(found[0], default=str)
    shown = shown if len(shown) <= 80 else shown[:80] + "..."
    raise ValueError(f"no JSON array of interval objects (found {shown})")


def _as_items(value: Any) -> list[Any]:
    if isinstance(value, list):
        return value
    if isinstance(value, dict):
        for key in ("anomalies", "intervals", "detections", "results"):
            if isinstance(value.get(key), list):
                return value[key]
        if "interval" in value or "start" in value:
            return [value]
    raise ValueError(f"expected a JSON array of intervals, got {type(value).__name__}")


def _bounds_of(item: dict[str, Any]) -> tuple[int, int]:
    if "interval" in item:
        iv = item["interval"]
        if isinstance(iv, (int, float)):
            return int(iv), int(iv)
        if isinstance(iv, (list, tuple)) and len(iv) == 1:
            return int(iv[0]), int(iv[0])
        if isinstance(iv, (list, tuple)) and len(iv) == 2:
            return int(iv[0]), int(iv[1])
        raise ValueError(f"'interval' must be [start, end], got {iv!r}")
    if "start" in item:
        return int(item["start"]), int(item.get("end", item["start"]))
    if "index" in item:
        return int(item["index"]), int(item["index"])
    raise ValueError("an element has no 'interval' (or 'start'/'end')")


def fit_interval(lo: int, hi: int, window_start: int, window_end: int) -> tuple[int, int] | None:
    """``[lo, hi]`` clipped to the window ``[window_start, window_end)`` when one end lies
    outside it; None when it lies wholly outside or beyond both ends (it covers more than
    the window, so it says nothing about where in the window the anomaly is)."""
    last = window_end - 1
    if hi < window_start or lo > last or (lo < window_start and hi > last):
        return None
    return max(lo, window_start), min(hi, last)


def parse_detection(
    text: str,
    window_start: int | None = None,
    window_end: int | None = None,
    taxonomy: tuple[str, ...] = ANOMALY_TYPES,
) -> Detection:
    """Parse a detector answer for the window ``[window_start, window_end)``.

    With window bounds given, intervals are clipped to the window (and dropped when wholly
    outside); without them, indices are only checked for order.
    """
    detection = Detection(raw_text=text or "")
    if not text or not text.strip():
        detection.parse_error = "empty answer"
        return detection
    think_match = _THINK_RE.search(text)
    if think_match:
        detection.think = think_match.group(1).strip()
        body = text[think_match.end() :]
    else:
        body = re.sub(r"^.*?</think>", "", text, flags=re.DOTALL)  # unopened think block
        if "<think>" in body:  # think block never closed: nothing after it to parse
            detection.parse_error = "unterminated <think> block"
            return detection
    items = None
    last_error = "no JSON array found after the think block"
    for candidate in _candidate_json_texts(body):
        try:
            items = _answer_items(candidate)
            break
        except ValueError as err:
            last_error = str(err)
    if items is None:
        detection.parse_error = f"unparseable answer: {last_error}"
        return detection

    for k, item in enumerate(items):
        if not isinstance(item, dict):
            detection.notes.append(f"element {k} is not an object; skipped")
            continue
        try:
            start, end = _bounds_of(item)
        except (TypeError, ValueError) as err:
            detection.notes.append(f"element {k}: {err}; skipped")
            continue
        if start > end:
            detection.notes.append(f"element {k}: reversed interval [{start}, {end}] swapped")
            start, end = end, start
        if window_start is not None and window_end is not None:
            last = window_end - 1
            bounded = fit_interval(start, end, window_start, window_end)
            if bounded is None:
                at_both_ends = " at both ends" if start < window_start and end > last else ""
                detection.notes.append(
                    f"element {k}: interval [{start}, {end}] outside window [{window_start}, {last}]{at_both_ends}; dropped"
                )
                continue
            if bounded != (start, end):
                detection.notes.append(
                    f"element {k}: interval [{start}, {end}] clipped to window [{window_start}, {last}]"
                )
                start, end = bounded
        raw_type = item.get("type", "other")
        kind, known = normalise_type(raw_type, taxonomy)
        if not known:
            detection.notes.append(f"element {k}: unknown type {raw_type!r} mapped to 'other'")
        confidence = item.get("confidence", 2)
        try:
            conf = int(round(float(confidence)))
        except (TypeError, ValueError):
            detection.notes.append(f"element {k}: confidence {confidence!r} is not a number; 2 used")
            conf = 2
        if conf < 1 or conf > 3:
            detection.notes.append(f"element {k}: confidence {conf} clipped to 1..3")
            conf = min(3, max(1, conf))
        detection.intervals.append(
            Interval(
                start=start,
                end=end,
                type=kind,
                explanation=str(item.get("explanation", "")),
                confidence=conf,
            )
        )
    return detection


def is_well_formatted(text: str) -> bool:
    """Strict format check for the format reward: a think block, then a JSON array only."""
    if not text:
        return False
    match = re.fullmatch(r"\s*<think>(.+?)</think>\s*(.*?)\s*", text, flags=re.DOTALL)
    if not match or not match.group(1).strip():
        return False
    rest = match.group(2)
    fenced = _FENCE_RE.fullmatch(rest)
    if fenced:
        rest = fenced.group(1)
    try:
        value = json.loads(rest)
    except json.JSONDecodeError:
        return False
    return isinstance(value, list) and all(
        isinstance(v, dict) and isinstance(v.get("interval"), list) and len(v["interval"]) == 2
        for v in value
    )


def render_detection(intervals: list[Interval], think: str, explanations: bool = True) -> str:
    """The canonical answer text for ``intervals``: what a well-behaved detector writes
    (without the ``explanation`` fields in the compact answer format)."""
    items = [
        {"interval": [iv.start, iv.end], "type": iv.type, "explanation": iv.explanation, "confidence": iv.confidence}
        for iv in intervals
    ]
    if not explanations:
        for item in items:
            del item["explanation"]
    return f"<think>{think.strip()}</think>\n{json.dumps(items, ensure_ascii=False)}"
