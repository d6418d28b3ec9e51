"""Tool registry: name -> function + JSON schema, validated dispatch, group switches.

Schemas are generated from each tool's signature and docstring (OpenAI function-calling
format, the ``ctx`` parameter left out), so a tool is documented once. ``call`` checks the
arguments against the schema and turns every failure (unknown tool, disabled group, bad
JSON, missing/extra/wrong-typed argument, out-of-range index, an exception inside the tool)
into ``ToolResult.error`` text the model can read; it never raises into the workflow.

Groups follow the paper's ablations: "feature_extraction" switches off the three feature
groups ("statistical", "local_structural", "global_structural") at once;
"knowledge_memory" and "localization" are the other two. "raw_values" holds the tools
that read only the window's raw values (no series context); no ablation switches it off,
so a feature-extraction ablation still has something to measure with.
"""

from __future__ import annotations

import inspect
import json
import re
import time
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Literal

from anomamind.tools.context import Bounds, ToolArgumentError, ToolContext
from anomamind.types import ToolCall, ToolResult

FEATURE_GROUPS: tuple[str, ...] = ("statistical", "local_structural", "global_structural")
GROUPS: tuple[str, ...] = FEATURE_GROUPS + ("knowledge_memory", "localization", "raw_values")
#: Names accepted by ``disabled_groups``: the groups plus the umbrella of the feature groups.
GROUP_ALIASES: dict[str, tuple[str, ...]] = {
    "feature_extraction": FEATURE_GROUPS,
    **{g: (g,) for g in GROUPS},
}

_JSON_TYPES = {int: "integer", float: "number", bool: "boolean", str: "string"}
_ARG_LINE = re.compile(r"^\s{4,}(\w+):\s*(.*)$")


@dataclass
class ParamSpec:
    """One tool parameter as the registry validates it."""

    name: str
    py_type: type
    optional: bool
    required: bool
    default: Any = None
    bounds: Bounds | None = None
    choices: tuple[Any, ...] | None = None


@dataclass
class RegisteredTool:
    """A tool function with its group, parameters and generated schema."""

    name: str
    fn: Callable[..., dict[str, Any]]
    group: str
    params: dict[str, ParamSpec]
    schema: dict[str, Any] = field(default_factory=dict)


def _parse_docstring(doc: str) -> tuple[str, dict[str, str]]:
    """(description, {argument: text}) from a Google-style docstring."""
    doc = inspect.cleandoc(doc or "")
    head, _, tail = doc.partition("\nArgs:")
    description = " ".join(line.strip() for line in head.splitlines() if line.strip())
    args: dict[str, str] = {}
    current = None
    for line in tail.splitlines():
        match = _ARG_LINE.match(line)
        if match:
            current = match.group(1)
            args[current] = match.group(2).strip()
        elif current and line.strip():
            args[current] += " " + line.strip()
    return description, args


def _param_spec(name: str, annotation: Any, parameter: inspect.Parameter) -> ParamSpec:
    bounds = None
    if typing.get_origin(annotation) is typing.Annotated:
        annotation, *extras = typing.get_args(annotation)
        bounds = next((e for e in extras if isinstance(e, Bounds)), None)
    optional = False
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        optional = len(members) < len(typing.get_args(annotation))
        if len(members) != 1:
            raise TypeError(f"parameter {name}: only 'X | None' unions are supported")
        annotation = members[0]
    choices = None
    if typing.get_origin(annotation) is Literal:
        choices = typing.get_args(annotation)
        annotation = type(choices[0])
    if annotation not in _JSON_TYPES:
        raise TypeError(f"parameter {name}: unsupported type {annotation!r}")
    required = parameter.default is inspect.Parameter.empty
    default = None if required else parameter.default
    return ParamSpec(name, annotation, optional, required, default, bounds, choices)


def build_tool(fn: Callable[..., dict[str, Any]], group: str, name: str | None = None) -> RegisteredTool:
    """Inspect ``fn(ctx, *, ...)`` and build its parameters and OpenAI-style schema."""
    name = name or fn.__name__
    hints = typing.get_type_hints(fn, include_extras=True)
    signature = inspect.signature(fn)
    description, arg_docs = _parse_docstring(fn.__doc__ or "")
    if not description:
        raise TypeError(f"tool {name} needs a docstring: it becomes the model's description")
    params: dict[str, ParamSpec] = {}
    properties: dict[str, Any] = {}
    for pname, parameter in list(signature.parameters.items())[1:]:  # skip ctx
        if parameter.kind is not inspect.Parameter.KEYWORD_ONLY:
            raise TypeError(f"tool {name}: parameter {pname} must be keyword-only")
        spec = _param_spec(pname, hints[pname], parameter)
        params[pname] = spec
        json_type = _JSON_TYPES[spec.py_type]
        prop: dict[str, Any] = {"type": [json_type, "null"] if spec.optional else json_type}
        if pname not in arg_docs:
            raise TypeError(f"tool {name}: parameter {pname} is not described in the docstring's Args")
        prop["description"] = arg_docs[pname]
        if spec.choices:
            prop["enum"] = list(spec.choices)
        if spec.bounds is not None:
            if spec.bounds.minimum is not None:
                prop["minimum"] = spec.bounds.minimum
            if spec.bounds.maximum is not None:
                prop["maximum"] = spec.bounds.maximum
            if spec.bounds.exclusive_minimum is not None:
                prop["exclusiveMinimum"] = spec.bounds.exclusive_minimum
        if not spec.required and spec.default is not None:
            prop["default"] = spec.default
        properties[pname] = prop
    schema = {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {
                "type": "object",
                "properties": properties,
                "required": [p for p, s in params.items() if s.required],
                "additionalProperties": False,
            },
        },
    }
    return RegisteredTool(name, fn, group, params, schema)


def _coerce(spec: ParamSpec, value: Any) -> Any:
    """Check one argument's type (integral floats count as integers); return the value."""
    if value is None:
        if spec.optional:
            return None
        raise ToolArgumentError(f"{spec.name} must not be null")
    expected = spec.py_type
    if expected is bool:
        ok = isinstance(value, bool)
    elif expected is int:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif expected is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    else:
        ok = isinstance(value, str)
    if not ok:
        raise ToolArgumentError(f"{spec.name} must be of type {_JSON_TYPES[expected]}, got {value!r}")
    if spec.choices is not None and value not in spec.choices:
        raise ToolArgumentError(f"{spec.name} must be one of {list(spec.choices)}, got {value!r}")
    if spec.bounds is not None:
        spec.bounds.check(spec.name, value)
    return value


def expand_groups(groups: Iterable[str] | None) -> set[str]:
    """Resolve group names (aliases included) to the set of basic groups; reject unknown names."""
    out: set[str] = set()
    for group in groups or ():
        if group not in GROUP_ALIASES:
            raise ValueError(f"unknown tool group {group!r}; known: {sorted(GROUP_ALIASES)}")
        out.update(GROUP_ALIASES[group])
    return out


class ToolRegistry:
    """Registered tools by name; disabled groups are hidden from schemas and refused by call."""

    def __init__(self, disabled_groups: Iterable[str] | None = None) -> None:
        self._tools: dict[str, RegisteredTool] = {}
        self.disabled_groups: set[str] = expand_groups(disabled_groups)

    @classmethod
    def default(cls, disabled_groups: Iterable[str] | None = None) -> "ToolRegistry":
        """A registry holding every built-in tool, with ``disabled_groups`` switched off."""
        from anomamind.tools.catalogue import BUILTIN_TOOLS

        registry = cls(disabled_groups)
        for fn, group in BUILTIN_TOOLS:
            registry.register(fn, group=group)
        return registry

    def register(self, fn: Callable[..., dict[str, Any]], group: str, name: str | None = None) -> Callable[..., dict[str, Any]]:
        """Add ``fn`` under ``group``; returns ``fn`` so it can be used as a plain call."""
        if group not in GROUPS:
            raise ValueError(f"unknown tool group {group!r}; known: {list(GROUPS)}")
        tool = build_tool(fn, group, name)
        if tool.name in self._tools:
            raise ValueError(f"tool {tool.name!r} is already registered")
        self._tools[tool.name] = tool
        return fn

    def __contains__(self, name: str) -> bool:
        return name in self._tools

    def get(self, name: str) -> RegisteredTool:
        """The registered tool ``name`` (KeyError if unknown)."""
        return self._tools[name]

    def is_enabled(self, name: str) -> bool:
        return name in self._tools and self._tools[name].group not in self.disabled_groups

    def names(self, groups: Iterable[str] | None = None) -> list[str]:
        """Enabled tool names, optionally only those of ``groups`` (aliases allowed)."""
        wanted = expand_groups(groups) if groups is not None else set(GROUPS)
        return [n for n, t in self._tools.items() if t.group in wanted and self.is_enabled(n)]

    def schemas(self, groups: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """OpenAI function-calling schemas of the enabled tools (optionally of ``groups``)."""
        return [self._tools[n].schema for n in self.names(groups)]

    def call(self, ctx: ToolContext, call: ToolCall) -> ToolResult:
        """Validate and run one call; every failure becomes ``ToolResult.error``."""
        started = time.perf_counter()
        result = ToolResult(name=call.name, arguments=call.arguments, call_id=call.id)
        try:
            tool, kwargs = self._validated(call)
            output = tool.fn(ctx, **kwargs)
            json.dumps(output)  # a tool must never hand the workflow something unserialisable
            result.output = output
        except ToolArgumentError as err:
            result.error = f"{call.name}: {err}"
        except Exception as err:  # noqa: BLE001 - the model gets the message, the workflow goes on
            result.error = f"{call.name} failed: {type(err).__name__}: {err}"
        result.seconds = time.perf_counter() - started
        return result

    def run_calls(self, ctx: ToolContext, calls: Iterable[ToolCall]) -> list[ToolResult]:
        """Run calls in order; each result carries its own timing and error."""
        return [self.call(ctx, c) for c in calls]

    def with_disabled(self, groups: Iterable[str]) -> "ToolRegistry":
        """A view of the same tools with ``groups`` switched off as well."""
        view = ToolRegistry()
        view._tools = self._tools
        view.disabled_groups = self.disabled_groups | expand_groups(groups)
        return view

    def _validated(self, call: ToolCall) -> tuple[RegisteredTool, dict[str, Any]]:
        if call.name not in self._tools:
            raise ToolArgumentError(f"unknown tool; available tools: {', '.join(self.names())}")
        tool = self._tools[call.name]
        if tool.group in self.disabled_groups:
            raise ToolArgumentError(f"tool is disabled in this run (group {tool.group!r} is switched off)")
        arguments = call.arguments
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments) if arguments.strip() else {}
            except json.JSONDecodeError as err:
                raise ToolArgumentError(f"arguments are not valid JSON: {err}") from err
        if arguments is None:
            arguments = {}
        if not isinstance(arguments, dict):
            raise ToolArgumentError(f"arguments must be a JSON object, got {type(arguments).__name__}")
        extra = sorted(set(arguments) - set(tool.params))
        if extra:
            raise ToolArgumentError(
                f"unexpected argument(s) {', '.join(extra)}; accepted: {', '.join(tool.params) or 'none'}"
            )
        missing = [p for p, s in tool.params.items() if s.required and p not in arguments]
        if missing:
            raise ToolArgumentError(f"missing required argument(s) {', '.join(missing)}")
        return tool, {k: _coerce(tool.params[k], v) for k, v in arguments.items()}


class TaskTools:
    """The registry in the workflow's calling convention (envs/workflow.py, agents/):
    ``schemas()`` and ``run_calls(calls, task)``.

    ``task`` is an ``agents.roles.WindowTask`` (read by duck typing: ``series``,
    ``window``, ``preprocessing["mode"]`` ("causal" makes the context causal) and
    ``disabled``, whose tool groups are refused on top of the registry's own).
    """

    def __init__(self, registry: ToolRegistry | None = None) -> None:
        self.registry = registry or default_registry()

    def schemas(self) -> list[dict[str, Any]]:
        return self.registry.schemas()

    def run_calls(self, calls: Iterable[ToolCall], task: Any) -> list[ToolResult]:
        causal = (getattr(task, "preprocessing", None) or {}).get("mode") == "causal"
        ctx = ToolContext.for_window(task.series, task.window, causal=causal)
        disabled = [g for g in getattr(task, "disabled", ()) if g in GROUP_ALIASES]
        registry = self.registry.with_disabled(disabled) if disabled else self.registry
        return registry.run_calls(ctx, calls)


_DEFAULT: ToolRegistry | None = None


def default_registry() -> ToolRegistry:
    """The shared registry of all built-in tools, every group enabled."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = ToolRegistry.default()
    return _DEFAULT
