"""The data model shared by every part of the stack (see DESIGN.md, "The data model").

One set of plain dataclasses, numpy only, so that tools, agents, environments, rewards and
metrics all speak the same language and none of them needs torch to import.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

#: Anomaly types of the knowledge memory's taxonomy; anything else is mapped to "other".
ANOMALY_TYPES: tuple[str, ...] = (
    "point-global",
    "point-contextual",
    "level-shift",
    "trend-change",
    "seasonal-deviation",
    "shapelet-deviation",
    "variance-change",
    "flat-missing",
    "other",
)

#: Confidence levels an interval may carry (1 = low, 3 = high), as in the paper.
CONFIDENCE_LEVELS: tuple[int, ...] = (1, 2, 3)


class DataError(ValueError):
    """Bad input data; the message names the source (file or series) and the problem."""


@dataclass
class Series:
    """One univariate series with optional 0/1 point labels.

    ``train_end`` is TSB-AD's ``tr_N`` (end of the training prefix, exclusive) and
    ``first_anomaly`` its ``1st_M``; both are None when unknown. ``timestamps`` holds the
    file's time column when it had one (datetime64, or numbers as given), one per value.
    """

    values: np.ndarray
    labels: np.ndarray | None = None
    name: str = "series"
    dataset: str = "unknown"
    domain: str = "unknown"
    train_end: int | None = None
    first_anomaly: int | None = None
    source: str | None = None  # file the series came from, for messages and caching
    meta: dict[str, Any] = field(default_factory=dict)
    timestamps: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.values = np.asarray(self.values, dtype=np.float64).reshape(-1)
        if self.labels is not None:
            self.labels = np.asarray(self.labels).astype(np.int8).reshape(-1)
            if self.labels.shape != self.values.shape:
                raise DataError(
                    f"{self.source or self.name}: labels have {self.labels.size} points "
                    f"but values have {self.values.size}"
                )
        if self.timestamps is not None:
            self.timestamps = np.asarray(self.timestamps).reshape(-1)
            if self.timestamps.shape != self.values.shape:
                raise DataError(
                    f"{self.source or self.name}: timestamps have {self.timestamps.size} points "
                    f"but values have {self.values.size}"
                )

    def __len__(self) -> int:
        return int(self.values.size)

    @property
    def has_anomalies(self) -> bool:
        return self.labels is not None and bool(self.labels.any())


@dataclass
class Window:
    """A slice ``[start, end)`` of a series; indices elsewhere are absolute series indices."""

    series_name: str
    index: int
    start: int
    end: int
    values: np.ndarray
    labels: np.ndarray | None = None

    def __len__(self) -> int:
        return self.end - self.start

    @property
    def has_anomalies(self) -> bool:
        return self.labels is not None and bool(self.labels.any())

    @property
    def window_id(self) -> str:
        return f"{self.series_name}@{self.start}-{self.end}"


@dataclass
class Interval:
    """A detected (or true) anomalous range, ``start``..``end`` inclusive, absolute indices."""

    start: int
    end: int
    type: str = "other"
    explanation: str = ""
    confidence: int = 2

    @property
    def length(self) -> int:
        return self.end - self.start + 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Interval":
        return cls(
            start=int(data["start"]),
            end=int(data["end"]),
            type=str(data.get("type", "other")),
            explanation=str(data.get("explanation", "")),
            confidence=int(data.get("confidence", 2)),
        )


@dataclass
class Detection:
    """The detector's answer for one window: intervals, the raw text, and what went wrong.

    ``parse_error`` is set when the answer could not be parsed; such a detection predicts
    nothing but is still counted. ``notes`` records repairs (clipped or reversed indices,
    unknown types mapped to ``other``).
    """

    intervals: list[Interval] = field(default_factory=list)
    raw_text: str = ""
    parse_error: str | None = None
    notes: list[str] = field(default_factory=list)
    think: str = ""

    @property
    def ok(self) -> bool:
        return self.parse_error is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "intervals": [iv.to_dict() for iv in self.intervals],
            "raw_text": self.raw_text,
            "parse_error": self.parse_error,
            "notes": list(self.notes),
            "think": self.think,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Detection":
        return cls(
            intervals=[Interval.from_dict(d) for d in data.get("intervals", [])],
            raw_text=data.get("raw_text", ""),
            parse_error=data.get("parse_error"),
            notes=list(data.get("notes", [])),
            think=data.get("think", ""),
        )


@dataclass
class ToolCall:
    """A request to run a registered tool; ``id`` links it to its result in chat transcripts."""

    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    id: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ToolResult:
    """What a tool returned (JSON-serialisable) or the error text the model should read."""

    name: str
    arguments: dict[str, Any]
    output: Any = None
    error: str | None = None
    seconds: float = 0.0
    call_id: str = ""

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Step:
    """One role's turn in the workflow: what went in, what came out, what it cost."""

    role: str
    messages: list[dict[str, Any]] = field(default_factory=list)
    text: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_results: list[ToolResult] = field(default_factory=list)
    seconds: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    info: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "messages": _strip_images(self.messages),
            "text": self.text,
            "tool_calls": [c.to_dict() for c in self.tool_calls],
            "tool_results": [r.to_dict() for r in self.tool_results],
            "seconds": self.seconds,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "info": self.info,
        }


@dataclass
class Trajectory:
    """Everything that happened in one episode (one window), serialisable to a JSON line."""

    task_id: str
    steps: list[Step] = field(default_factory=list)
    detection: Detection | None = None
    rewards: dict[str, float] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "task_id": self.task_id,
            "steps": [s.to_dict() for s in self.steps],
            "detection": self.detection.to_dict() if self.detection else None,
            "rewards": self.rewards,
            "info": self.info,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), default=_json_default)


def _strip_images(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Replace base64 image payloads by a short marker so trajectories stay small."""
    out = []
    for msg in messages:
        content = msg.get("content")
        if isinstance(content, list):
            parts = []
            for part in content:
                if isinstance(part, dict) and part.get("type") == "image_url":
                    parts.append({"type": "image_url", "image_url": {"url": "<image omitted>"}})
                else:
                    parts.append(part)
            msg = {**msg, "content": parts}
        out.append(msg)
    return out


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
