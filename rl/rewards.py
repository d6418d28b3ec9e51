"""Verifiable reward terms for GRPO training of the detector (DESIGN.md, "Rewards").

Every term has TRL's reward-function signature ``f(prompts, completions, **columns)`` and
returns one float (or None, "not applicable") per completion. TRL passes every column of the
prepared dataset as a keyword list aligned with ``completions``; the terms read:

- ``window_start`` / ``window_end``: the window's absolute bounds ``[start, end)``;
- ``labels``: the window's 0/1 point labels (``len == window_end - window_start``);
- ``evidence`` (rule_matching only, optional): compact tool evidence, see
  :func:`evidence_ranges`.

A completion is a plain string (standard datasets) or a list of chat messages
(conversational datasets); both are accepted. The answer is parsed with
:func:`anomamind.agents.parsing.parse_detection` with the window bounds, so intervals are
clipped to the window and reversed ones swapped before scoring; what the repairs say about
the raw answer is scored by ``rule_matching``.

TRL logs every function under its ``__name__`` (``rewards/two_sided/mean`` ...), so the
terms are named exactly ``two_sided``, ``false_positive``, ``rule_matching`` and
``format_reward``; :func:`build_reward_functions` keeps those names.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from anomamind.agents.parsing import is_well_formatted, parse_detection
from anomamind.types import Detection, Interval

RewardFunction = Callable[..., list[float | None]]

#: The reward terms in the order they are built and logged.
REWARD_TERMS: tuple[str, ...] = ("two_sided", "false_positive", "rule_matching", "format_reward")

_ELEMENT_NOTE_RE = re.compile(r"^element (\d+)\b")


# ----------------------------------------------------------------------------- helpers


def completion_text(completion: Any) -> str:
    """The answer text of one completion: a string, or the assistant turns of a chat list.

    Conversational completions are ``[{"role": "assistant", "content": ...}]``; content may
    itself be a list of ``{"type": "text", "text": ...}`` parts.
    """
    if completion is None:
        return ""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        completion = [completion]
    texts = []
    for message in completion:
        if not isinstance(message, dict) or message.get("role", "assistant") != "assistant":
            continue
        content = message.get("content", "")
        if isinstance(content, list):
            content = "".join(
                part.get("text", "") for part in content if isinstance(part, dict)
            )
        texts.append(str(content or ""))
    return "\n".join(texts)


def _column(kwargs: dict[str, Any], name: str, n: int) -> list[Any]:
    """Dataset column ``name`` aligned with the ``n`` completions (None where absent)."""
    values = kwargs.get(name)
    if values is None:
        return [None] * n
    values = list(values)
    if len(values) != n:
        raise ValueError(f"reward column {name!r} has {len(values)} rows for {n} completions")
    return values


def interval_mask(intervals: Sequence[Interval], window_start: int, window_end: int) -> np.ndarray:
    """0/1 mask over ``[window_start, window_end)`` of the points the intervals cover.

    Overlapping intervals are counted once; parts outside the window are ignored.
    """
    mask = np.zeros(max(0, window_end - window_start), dtype=bool)
    for iv in intervals:
        lo = max(iv.start, window_start) - window_start
        hi = min(iv.end, window_end - 1) - window_start
        if hi >= lo:
            mask[lo : hi + 1] = True
    return mask


def point_f1(pred: np.ndarray, true: np.ndarray) -> float:
    """Point-level F1 of two boolean masks (0.0 when either side is empty)."""
    tp = int(np.sum(pred & true))
    if tp == 0:
        return 0.0
    precision = tp / int(pred.sum())
    recall = tp / int(true.sum())
    return 2 * precision * recall / (precision + recall)


def _score_labelled_rows(
    completions: Sequence[Any],
    kwargs: dict[str, Any],
    score: Callable[[Detection, np.ndarray, int, int], float],
) -> list[float | None]:
    """``score(detection, true_mask, window_start, window_end)`` per completion; None for a
    row without labels or window bounds (TRL then ignores the term for that row)."""
    n = len(completions)
    starts, ends = _column(kwargs, "window_start", n), _column(kwargs, "window_end", n)
    labels = _column(kwargs, "labels", n)
    rewards: list[float | None] = []
    for completion, ws, we, lab in zip(completions, starts, ends, labels):
        if lab is None or ws is None or we is None:
            rewards.append(None)
            continue
        ws, we = int(ws), int(we)
        rewards.append(score(_parse(completion, ws, we), _labels_mask(lab, ws, we), ws, we))
    return rewards


def _parse(completion: Any, window_start: Any, window_end: Any) -> Detection:
    bounds_known = window_start is not None and window_end is not None
    return parse_detection(
        completion_text(completion),
        int(window_start) if bounds_known else None,
        int(window_end) if bounds_known else None,
    )


def _labels_mask(labels: Any, window_start: int, window_end: int) -> np.ndarray:
    true = np.asarray(labels, dtype=np.int64).reshape(-1) > 0
    if true.size != window_end - window_start:
        raise ValueError(
            f"labels have {true.size} points but the window [{window_start}, {window_end}) "
            f"has {window_end - window_start}"
        )
    return true


# ----------------------------------------------------------------------------- the terms


def two_sided(prompts: Any, completions: Sequence[Any], **kwargs: Any) -> list[float | None]:
    """Accuracy on both kinds of window, in [0, 1].

    - window with anomalies: point-level F1 of the predicted points (union of the
      predicted intervals, clipped to the window, overlaps counted once) against the
      labelled points;
    - normal window: ``1 / (1 + number of predicted points)``, so an empty answer earns 1.0
      and a single false point 0.5;
    - unparseable answer: 0.0 on either kind (garbage must never look like "no anomaly");
    - no labels or window bounds for the row: None (TRL then ignores the term for that row).
    """
    def score(detection: Detection, true: np.ndarray, ws: int, we: int) -> float:
        if not detection.ok:
            return 0.0
        pred = interval_mask(detection.intervals, ws, we)
        return point_f1(pred, true) if true.any() else 1.0 / (1.0 + int(pred.sum()))

    return _score_labelled_rows(completions, kwargs, score)


def false_positive(prompts: Any, completions: Sequence[Any], **kwargs: Any) -> list[float | None]:
    """Penalty in [-1, 0]: minus the share of predicted intervals that touch no true anomaly.

    An interval "touches" a true anomaly when at least one of its points (after clipping to
    the window) is labelled 1. Nothing predicted, or an unparseable answer (which predicts
    nothing; ``format_reward`` and ``two_sided`` punish it), gives 0.0. Intervals wholly
    outside the window are dropped by the parser and penalised by ``rule_matching``.
    No labels or bounds for the row: None.
    """
    def score(detection: Detection, true: np.ndarray, ws: int, we: int) -> float:
        if not detection.intervals:
            return 0.0
        misses = sum(1 for iv in detection.intervals if not (interval_mask([iv], ws, we) & true).any())
        return -misses / len(detection.intervals)

    return _score_labelled_rows(completions, kwargs, score)


def evidence_ranges(evidence: Any) -> list[tuple[int, int]] | None:
    """The index ranges (absolute, inclusive) that the tool evidence flags as suspicious.

    ``evidence`` is a JSON string or the decoded value: a mapping with a ``"candidates"``
    list, or the list itself; each candidate is ``[start, end]``, an index, or a mapping
    with ``"interval"`` or ``"start"``/``"end"`` (or ``"index"``). Returns None when there is
    no evidence at all (the support check is then skipped), ``[]`` when the tools flagged
    nothing. Raises ValueError for evidence that is present but malformed.
    """
    if evidence is None or (isinstance(evidence, str) and not evidence.strip()):
        return None
    if isinstance(evidence, str):
        try:
            evidence = json.loads(evidence)
        except json.JSONDecodeError as err:
            raise ValueError(f"evidence is not valid JSON: {err}") from err
    if isinstance(evidence, dict):
        if "candidates" not in evidence:
            raise ValueError(f"evidence mapping has no 'candidates' key (keys: {sorted(evidence)})")
        evidence = evidence["candidates"]
    if not isinstance(evidence, list):
        raise ValueError(f"evidence candidates must be a list, got {type(evidence).__name__}")
    ranges = []
    for item in evidence:
        if isinstance(item, dict):
            if "interval" in item:
                item = item["interval"]
            elif "start" in item:
                item = [item["start"], item.get("end", item["start"])]
            elif "index" in item:
                item = item["index"]
            else:
                raise ValueError(f"evidence candidate {item!r} has no interval/start/index")
        if isinstance(item, (int, float)):
            ranges.append((int(item), int(item)))
        elif isinstance(item, (list, tuple)) and len(item) == 2:
            lo, hi = int(item[0]), int(item[1])
            ranges.append((min(lo, hi), max(lo, hi)))
        else:
            raise ValueError(f"evidence candidate {item!r} is not [start, end] or an index")
    return ranges


def _is_supported(iv: Interval, ranges: list[tuple[int, int]], margin: int) -> bool:
    return any(iv.start <= hi + margin and iv.end >= lo - margin for lo, hi in ranges)


def _element_violations(detection: Detection) -> tuple[int, dict[int, set[str]]]:
    """Number of raw answer elements and, per element, which structural rules it broke.

    Read from the parser's repair notes (``element K: ...``): ``malformed`` (skipped),
    ``order`` (reversed), ``window`` (clipped or dropped), ``type`` (not in the taxonomy),
    ``confidence`` (not an integer in 1..3).
    """
    violations: dict[int, set[str]] = {}
    for note in detection.notes:
        match = _ELEMENT_NOTE_RE.match(note)
        if not match:
            continue
        broken = violations.setdefault(int(match.group(1)), set())
        if "skipped" in note:
            broken.add("malformed")
        elif "reversed" in note:
            broken.add("order")
        elif "outside window" in note:
            broken.update({"window", "dropped"})
        elif "clipped to window" in note:
            broken.add("window")
        elif "unknown type" in note:
            broken.add("type")
        elif "confidence" in note:
            broken.add("confidence")
    gone = sum(1 for b in violations.values() if b & {"malformed", "dropped"})
    return len(detection.intervals) + gone, violations


def rule_matching(
    prompts: Any, completions: Sequence[Any], support_margin: int = 2, **kwargs: Any
) -> list[float | None]:
    """Structural consistency in [0, 1]: the mean, over the answer's elements, of the share
    of rules each element obeys.

    Rules per element: (1) start <= end; (2) inside the window; (3) a type of the knowledge
    memory's taxonomy (or a known alias of one); (4) confidence an integer-like value in
    1..3; (5) when the row has an ``evidence`` column, supported by it: the interval lies
    within ``support_margin`` points of a range the tools flagged (:func:`evidence_ranges`).
    An element the parser had to skip (not an object, no bounds) obeys none; one dropped
    as wholly outside the window fails the window and support rules. An empty answer
    ``[]`` breaks no rule (1.0); an unparseable answer scores 0.0.
    """
    n = len(completions)
    starts, ends = _column(kwargs, "window_start", n), _column(kwargs, "window_end", n)
    evidences = _column(kwargs, "evidence", n)
    rewards: list[float | None] = []
    for completion, ws, we, ev in zip(completions, starts, ends, evidences):
        detection = _parse(completion, ws, we)
        if not detection.ok:
            rewards.append(0.0)
            continue
        ranges = evidence_ranges(ev)
        n_elements, violations = _element_violations(detection)
        if n_elements == 0:
            rewards.append(1.0)
            continue
        n_rules = 4 if ranges is None else 5
        kept = iter(detection.intervals)
        scores = []
        for k in range(n_elements):
            broken = violations.get(k, set())
            if "malformed" in broken:
                scores.append(0.0)
                continue
            failed = len(broken & {"order", "window", "type", "confidence"})
            if ranges is not None:
                if "dropped" in broken:
                    failed += 1
                elif not _is_supported(next(kept), ranges, support_margin):
                    failed += 1
            elif "dropped" not in broken:
                next(kept)
            scores.append(1.0 - failed / n_rules)
        rewards.append(float(np.mean(scores)))
    return rewards


def format_reward(prompts: Any, completions: Sequence[Any], **kwargs: Any) -> list[float | None]:
    """1.0 when the completion is exactly ``<think>...</think>`` (non-empty) followed by a JSON
    array of ``{"interval": [start, end], ...}`` objects (optionally fenced), else 0.0.

    This is :func:`anomamind.agents.parsing.is_well_formatted`, the strict check; the
    parser used by the other terms is more forgiving.
    """
    return [1.0 if is_well_formatted(completion_text(c)) else 0.0 for c in completions]


# ----------------------------------------------------------------------------- configuration


@dataclass
class RewardConfig:
    """Which terms train the policy and how much each weighs (GRPOConfig.reward_weights).

    ``enabled`` lists the terms in use (ablations switch terms off here); ``weights`` maps
    a term to its weight (missing terms weigh 1.0). ``support_margin`` is the slack in
    points for rule_matching's evidence-support rule.
    """

    enabled: list[str] = field(default_factory=lambda: list(REWARD_TERMS))
    weights: dict[str, float] = field(
        default_factory=lambda: {
            "two_sided": 1.0,
            "false_positive": 0.5,
            "rule_matching": 0.25,
            "format_reward": 0.25,
        }
    )
    support_margin: int = 2

    def __post_init__(self) -> None:
        unknown = sorted(set(self.enabled) - set(REWARD_TERMS))
        unknown += sorted(set(self.weights) - set(REWARD_TERMS))
        if unknown:
            raise ValueError(f"unknown reward term(s) {unknown}; known: {list(REWARD_TERMS)}")
        if not self.enabled:
            raise ValueError("rewards.enabled is empty: at least one reward term is needed")


def build_reward_functions(cfg: RewardConfig | None = None) -> tuple[list[RewardFunction], list[float]]:
    """The enabled reward functions and their weights, in :data:`REWARD_TERMS` order.

    The functions keep their term names (TRL logs each under ``rewards/<name>/...``).
    """
    cfg = cfg or RewardConfig()
    margin = int(cfg.support_margin)

    def rule_matching_with_margin(prompts: Any, completions: Sequence[Any], **kwargs: Any):
        return rule_matching(prompts, completions, support_margin=margin, **kwargs)

    rule_matching_with_margin.__name__ = "rule_matching"
    rule_matching_with_margin.__doc__ = rule_matching.__doc__
    available: dict[str, RewardFunction] = {
        "two_sided": two_sided,
        "false_positive": false_positive,
        "rule_matching": rule_matching_with_margin,
        "format_reward": format_reward,
    }
    names = [name for name in REWARD_TERMS if name in cfg.enabled]
    return [available[n] for n in names], [float(cfg.weights.get(n, 1.0)) for n in names]


def score_completion(
    completion: Any, cfg: RewardConfig | None = None, **columns: Any
) -> dict[str, float | None]:
    """All enabled terms for a single completion (columns given as scalars), plus the
    weighted ``total`` over the applicable terms: what the env's ``step`` reports."""
    funcs, weights = build_reward_functions(cfg)
    batch = {key: [value] for key, value in columns.items()}
    terms = {f.__name__: f([None], [completion], **batch)[0] for f in funcs}
    total = sum(w * v for (name, v), w in zip(terms.items(), weights) if v is not None)
    return {**terms, "total": float(total)}
