"""On-disk cache of the upstream stages (locate -> plan -> act) per window.

GRPO must see the same prompt for the same window every epoch, and upstream LLM calls are
expensive, so the env stores each window's upstream outputs as one JSON file keyed by the
series (name and a hash of its values), the window bounds and the role configuration (a
JSON-able description of the roles, their settings and the ablations). A changed setting
gives a new key; nothing is ever served for a different configuration. Files are written
atomically, so a crash never leaves a half-written entry.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from anomamind.agents.roles import Evidence, LocatorOutput, PlanOutput, WindowTask
from anomamind.atomic import atomic_write_text
from anomamind.types import Interval, Step, ToolCall, ToolResult, _json_default


def series_fingerprint(values: np.ndarray) -> str:
    """Short hash of a series' values (so a changed file never hits an old entry)."""
    return hashlib.sha256(np.ascontiguousarray(values, dtype=np.float64).tobytes()).hexdigest()[:16]


def cache_key(task: WindowTask, role_config: dict[str, Any]) -> str:
    """Key of ``task``'s upstream results under ``role_config``."""
    fp = task.series.meta.get("_fingerprint")
    if fp is None:
        fp = task.series.meta["_fingerprint"] = series_fingerprint(task.series.values)
    payload = {
        "series": task.series.name,
        "values": fp,
        "window": [task.window.start, task.window.end],
        "roles": role_config,
    }
    blob = json.dumps(payload, sort_keys=True, default=_json_default)
    return hashlib.sha256(blob.encode()).hexdigest()


def _step_from_dict(d: dict[str, Any]) -> Step:
    return Step(
        role=d["role"],
        messages=d.get("messages", []),
        text=d.get("text", ""),
        tool_calls=[ToolCall(**c) for c in d.get("tool_calls", [])],
        tool_results=[ToolResult(**r) for r in d.get("tool_results", [])],
        seconds=d.get("seconds", 0.0),
        prompt_tokens=d.get("prompt_tokens", 0),
        completion_tokens=d.get("completion_tokens", 0),
        info=d.get("info", {}),
    )


def upstream_to_dict(located: LocatorOutput, plan: PlanOutput, evidence: Evidence) -> dict[str, Any]:
    return {
        "located": {
            "candidates": [c.to_dict() for c in located.candidates],
            "description": located.description,
            "step": located.step.to_dict(),
        },
        "plan": {
            "text": plan.text,
            "tool_calls": [c.to_dict() for c in plan.tool_calls],
            "thresholds": plan.thresholds,
            "step": plan.step.to_dict(),
        },
        "evidence": {
            "tool_results": [r.to_dict() for r in evidence.tool_results],
            "steps": [s.to_dict() for s in evidence.steps],
        },
    }


def upstream_from_dict(d: dict[str, Any]) -> dict[str, Any]:
    loc, plan, ev = d["located"], d["plan"], d["evidence"]
    return {
        "located": LocatorOutput(
            [Interval.from_dict(c) for c in loc["candidates"]], loc["description"], _step_from_dict(loc["step"])
        ),
        "plan": PlanOutput(
            plan["text"], [ToolCall(**c) for c in plan["tool_calls"]], plan["thresholds"], _step_from_dict(plan["step"])
        ),
        "evidence": Evidence([ToolResult(**r) for r in ev["tool_results"]], [_step_from_dict(s) for s in ev["steps"]]),
    }


class UpstreamCache:
    """JSON files under ``root/<key[:2]>/<key>.json``; ``hits``/``misses`` count lookups."""

    def __init__(self, root: str | Path, role_config: dict[str, Any]) -> None:
        self.root = Path(root)
        self.role_config = role_config
        self.hits = 0
        self.misses = 0

    def path(self, task: WindowTask) -> Path:
        key = cache_key(task, self.role_config)
        return self.root / key[:2] / f"{key}.json"

    def load(self, task: WindowTask) -> dict[str, Any] | None:
        """The cached upstream outputs of ``task``, or None (a corrupt entry counts as a miss
        and is replaced on the next store)."""
        path = self.path(task)
        try:
            data = json.loads(path.read_text())
            upstream = upstream_from_dict(data)
        except (OSError, ValueError, KeyError, TypeError):
            self.misses += 1
            return None
        self.hits += 1
        return upstream

    def store(self, task: WindowTask, upstream: dict[str, Any]) -> Path:
        path = self.path(task)
        blob = json.dumps(
            upstream_to_dict(upstream["located"], upstream["plan"], upstream["evidence"]), default=_json_default
        )
        atomic_write_text(path, blob)
        return path
