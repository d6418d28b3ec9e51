"""The rule format: a rule is a Python file, a rule set is a folder with a manifest.

A rule file defines ``detect(values) -> array`` over ONE window's values (a read-only
float64 array) and returns 0/1 per point; comments above each condition say what it
checks and why. A rule set folder holds the rule files and ``manifest.json``:

```
{"format": "anomamind-rules/1", "dataset": "YAHOO", "modality": "series" | "logs",
 "window": {"length": 1000},                       # how series are cut for the rules
                                                   # (log rule sets: {"by": ..., "size": ..., "stride": ...})
 "combine_with": null | {"detector": "sr", "mode": "and" | "or"},
 "rules": [{"file": "rule_01.py", "name": ..., "validation_f1": ..., "parent": ...,
            "thresholds": {...}, "seed": ..., "proposer": ...}, ...],
 "split": {...}, "training": {...}}
```

A log rule file defines ``detect(lines) -> bool`` over ONE window of raw log lines
(see docs/logs.md). The rules of a set are OR-ed (a point, or a log window, is anomalous
when any rule flags it); with
``combine_with`` the result is AND-ed (removes false positives) or OR-ed (adds missed
anomalies) with another detector of the benchmark runner, as Argos's aggregator does.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from anomamind.envs.windowing import window_bounds
from anomamind.types import DataError

FORMAT = "anomamind-rules/1"
MANIFEST = "manifest.json"
DEFAULT_WINDOW_LENGTH = 1000
COMBINE_MODES = ("and", "or")
MODALITIES = ("series", "logs")


@dataclass
class Rule:
    """One rule: its source code and its provenance (validation F1, parent, thresholds...)."""

    name: str
    source: str
    meta: dict[str, Any] = field(default_factory=dict)

    def comments(self) -> list[str]:
        """The rule's explanatory comments, in order (what a reviewer reads first)."""
        return [m.group(1).strip() for m in re.finditer(r"^\s*#\s?(.*)$", self.source, re.M)]


@dataclass
class RuleSet:
    """Rules applied together (OR) over windows of ``window_length`` points, or, for a log
    rule set (``modality="logs"``), over the log windows that ``window`` describes."""

    rules: list[Rule]
    window_length: int = DEFAULT_WINDOW_LENGTH
    dataset: str = ""
    combine_with: dict[str, str] | None = None
    info: dict[str, Any] = field(default_factory=dict)
    modality: str = "series"
    window: dict[str, Any] = field(default_factory=dict)  # log rule sets: by, size, stride

    def __post_init__(self) -> None:
        if self.modality not in MODALITIES:
            raise DataError(f"rule set modality must be one of {MODALITIES}, got {self.modality!r}")
        if self.modality == "series" and self.window_length < 2:
            raise DataError(f"rule set window length must be at least 2, got {self.window_length}")
        if self.combine_with is not None:
            mode = self.combine_with.get("mode")
            if mode not in COMBINE_MODES or not self.combine_with.get("detector"):
                raise DataError(
                    f"combine_with needs a 'detector' and a 'mode' in {COMBINE_MODES}, got {self.combine_with}"
                )


def rule_windows(n: int, length: int) -> list[tuple[int, int]]:
    """Windows a rule sees on a series of ``n`` points: consecutive blocks of ``length``.

    The last block is anchored at the end of the series and keeps the full length
    (overlapping its neighbour) so a rule never judges a handful of tail points alone.
    """
    bounds = window_bounds(n, length, length)
    start, end = bounds[-1]
    if end - start < length and n >= length:
        bounds[-1] = (n - length, n)
    return bounds


def save_rule_set(rule_set: RuleSet, directory: str | Path) -> Path:
    """Write the rule files and the manifest into ``directory`` (created if needed)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    entries = []
    for i, rule in enumerate(rule_set.rules, start=1):
        file_name = f"rule_{i:02d}.py"
        (directory / file_name).write_text(rule.source)
        entries.append({"file": file_name, "name": rule.name, **rule.meta})
    manifest = {
        "format": FORMAT,
        "dataset": rule_set.dataset,
        "modality": rule_set.modality,
        "window": {"length": rule_set.window_length} if rule_set.modality == "series" else dict(rule_set.window),
        "combine_with": rule_set.combine_with,
        "rules": entries,
        **rule_set.info,
    }
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return directory


def rule_file_in(folder: Path, name: Any, manifest_path: Path) -> Path:
    """The rule file ``name`` of a manifest, which must lie inside the rule set ``folder``
    (a shared rule folder must not make us read ``/etc/hostname`` or ``../x``)."""
    if not isinstance(name, str) or not name or Path(name).is_absolute() or ".." in Path(name).parts:
        raise DataError(f"{manifest_path}: rule file {name!r} must be a relative path inside the rule set folder")
    candidate = folder / name
    if not candidate.resolve().is_relative_to(folder.resolve()):  # e.g. a symbolic link out of the folder
        raise DataError(f"{manifest_path}: rule file {name!r} points outside the rule set folder")
    return candidate


def load_rule_set(path: str | Path, window_length: int | None = None, modality: str = "series") -> RuleSet:
    """Read a rule set folder, or a single rule ``.py`` file as a set of one rule of ``modality``.

    Errors name the path and what is wrong (missing manifest, unknown format, a listed
    rule file that is absent or outside the folder).
    """
    path = Path(path)
    if path.is_file() and path.suffix == ".py":
        rule = Rule(name=path.stem, source=path.read_text())
        return RuleSet([rule], window_length=window_length or DEFAULT_WINDOW_LENGTH, info={"source": str(path)},
                       modality=modality)
    manifest_path = path / MANIFEST
    if not path.is_dir():
        raise DataError(f"{path}: no such rule set (expected a folder with {MANIFEST} or a .py rule file)")
    if not manifest_path.is_file():
        raise DataError(f"{path}: not a rule set folder ({MANIFEST} is missing)")
    try:
        manifest = json.loads(manifest_path.read_text())
    except json.JSONDecodeError as err:
        raise DataError(f"{manifest_path}: not valid JSON: {err}") from err
    if manifest.get("format") != FORMAT:
        raise DataError(f"{manifest_path}: unknown format {manifest.get('format')!r}, expected {FORMAT!r}")
    rules = []
    for entry in manifest.get("rules", []):
        rule_path = rule_file_in(path, entry.get("file"), manifest_path)
        if not rule_path.is_file():
            raise DataError(f"{manifest_path}: rule file {entry.get('file')!r} is missing")
        meta = {k: v for k, v in entry.items() if k not in ("file", "name")}
        rules.append(Rule(name=entry.get("name", rule_path.stem), source=rule_path.read_text(), meta=meta))
    if not rules:
        raise DataError(f"{manifest_path}: the rule set has no rules")
    info = {k: v for k, v in manifest.items()
            if k not in ("format", "dataset", "modality", "window", "combine_with", "rules")}
    modality = manifest.get("modality", "series")
    window = manifest.get("window", {})
    return RuleSet(
        rules=rules,
        window_length=int(window_length or window.get("length", DEFAULT_WINDOW_LENGTH)),
        dataset=manifest.get("dataset", ""),
        combine_with=manifest.get("combine_with"),
        info=info,
        modality=modality,
        window=dict(window) if modality == "logs" else {},
    )
