"""YAML files onto dataclasses, with ``a.b=value`` overrides from the command line.

Every configurable part has a dataclass; a YAML file gives some of its fields (nested
sections map onto nested dataclasses) and overrides change single fields. Unknown keys are
an error that names the key and the file, so a typo never silently does nothing.
"""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A config file or override that does not fit its dataclass."""


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping; a clear error for a missing file or a non-mapping document."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from err
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def parse_assignment(item: str) -> tuple[str, Any]:
    """``"a.b=[1, 2]"`` -> ``("a.b", [1, 2])``: the value parsed as YAML (``3``, ``true``,
    ``[x, y]``; an empty value is None). A clear error for anything else."""
    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {item!r} is not of the form key=value")
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError as err:
        raise ConfigError(f"override {item!r}: cannot parse the value ({err})") from None
    return key.strip(), value


def format_assignment(key: str, value: Any) -> str:
    """The inverse of :func:`parse_assignment`: ``key=value`` with the value written as YAML."""
    text = yaml.safe_dump(value, default_flow_style=True, width=1 << 30).strip()
    return f"{key}={text.removesuffix('...').strip()}"


def apply_overrides(data: dict[str, Any], overrides: list[str] | None) -> dict[str, Any]:
    """Apply ``a.b=value`` overrides (values parsed as YAML) to a nested dict, in place."""
    for item in overrides or []:
        key, value = parse_assignment(item)
        node = data
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {part!r} is not a section")
        node[parts[-1]] = value
    return data


def from_dict(cls: type[T], data: dict[str, Any], where: str = "config") -> T:
    """Build dataclass ``cls`` from ``data``, recursing into nested dataclass fields."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown} for {cls.__name__}; known: {sorted(fields)}")
    kwargs = {}
    for name, value in data.items():
        hint = hints.get(name)
        if isinstance(hint, type) and dataclasses.is_dataclass(hint) and isinstance(value, dict):
            value = from_dict(hint, value, f"{where}.{name}")
        kwargs[name] = value
    return cls(**kwargs)


def load_config(cls: type[T], path: str | Path | None = None, overrides: list[str] | None = None) -> T:
    """Load ``cls`` from an optional YAML file plus overrides."""
    data = read_yaml(path) if path else {}
    apply_overrides(data, overrides)
    return from_dict(cls, data, str(path) if path else "config")


def to_dict(obj: Any) -> dict[str, Any]:
    """A dataclass as a plain dict (for writing resolved configs next to results)."""
    return dataclasses.asdict(obj)
