"""The five roles as LLM calls over chat backends: locator (a VLM looking at the plotted
window, or the window as text for a model without images), planner, actor (tool calls,
several rounds), detector and evaluator.

Prompts are files under agents/prompts/ (the paper's templates, appendix D.4); the
workflow context goes into the user message, data-derived and model-written text inside
its data section (agents/untrusted.py), shortened to the backend's context budget
(agents/budget.py). Every answer is parsed forgivingly (think blocks, fenced or bare JSON,
trailing text, reversed or out-of-window indices) and every repair or failure is written
into the role's ``Step.info`` (``notes``, ``parse_error``): an unparseable answer never
stops the workflow, it just contributes nothing (no candidates, an empty plan, no
refinement). A failed request or a prompt that cannot fit raises :class:`RoleFailed`
with the role's steps so far; the workflow counts the window as failed by kind.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass, field, is_dataclass
from pathlib import Path
from typing import Any

from anomamind.agents.backends.base import INVALID_ARGUMENTS_KEY, BackendError, ChatBackend, ChatResponse, ImageNotSeenError
from anomamind.agents.backends.factory import backend_config, make_backends
from anomamind.agents.backends.messages import (
    assistant_message,
    image_part,
    parse_hermes_tool_calls,
    text_part,
    tool_message,
)
from anomamind.agents.budget import PromptTooLongError, Section, check_budget, fit_prompt
from anomamind.agents.detector_prompt import compact, dumps, value_strip
from anomamind.agents.parsing import fit_interval
from anomamind.agents.roles import Evidence, EvaluatorOutput, LocatorOutput, PlanOutput, RoleFailed, Roles, WindowTask
from anomamind.agents.untrusted import clean_text, data_section, quote, with_data_rule
from anomamind.config import ConfigError, apply_overrides, from_dict, read_yaml
from anomamind.paths import CONFIG_DIR, PROMPT_DIR
from anomamind.types import Detection, Interval, Step, ToolCall, ToolResult

DEFAULT_LLM_CONFIG = CONFIG_DIR / "agents" / "llm.yaml"
TOOL_MODES: tuple[str, ...] = ("native", "text")

# ----------------------------------------------------------------------------- config


@dataclass
class RoleSettings:
    """Which backend a role uses, its prompt file and its sampling settings."""

    backend: str = "general"
    prompt: str = ""  # file under agents/prompts/ (or a path); empty: "<role>.md"
    temperature: float = 0.0
    max_tokens: int = 1024
    seed: int | None = None


@dataclass
class LocatorSettings(RoleSettings):
    """The locator also says how the window is drawn: ``context`` points each side, and
    the reference's high-resolution figure when ``high_res``."""

    backend: str = "vision"
    max_tokens: int = 512
    context: int = 0
    high_res: bool = False
    max_candidates: int = 5


@dataclass
class ActorSettings(RoleSettings):
    """``max_tool_rounds`` bounds model turns that call tools (the reference allows 1);
    ``tool_mode`` is ``native`` (the endpoint's tool calling, with a fallback to hermes
    blocks in the text) or ``text`` (tools described in the prompt, calls parsed from text)."""

    max_tool_rounds: int = 3
    tool_mode: str = "native"


@dataclass
class LLMAgentConfig:
    """configs/agents/llm.yaml: named backends and the settings of each role."""

    backends: dict[str, dict[str, Any]] = field(default_factory=dict)
    locator: LocatorSettings = field(default_factory=LocatorSettings)
    planner: RoleSettings = field(default_factory=RoleSettings)
    actor: ActorSettings = field(default_factory=ActorSettings)
    detector: RoleSettings = field(default_factory=lambda: RoleSettings(backend="detector"))
    evaluator: RoleSettings = field(default_factory=RoleSettings)

    def validate(self, where: str) -> None:
        for name, data in self.backends.items():
            backend_config(data, f"{where}: backends.{name}")
        for role in ("locator", "planner", "actor", "detector", "evaluator"):
            settings = getattr(self, role)
            if settings.backend not in self.backends:
                raise ConfigError(
                    f"{where}: {role}.backend {settings.backend!r} is not defined; backends: {sorted(self.backends)}"
                )
        if self.actor.tool_mode not in TOOL_MODES:
            raise ConfigError(f"{where}: actor.tool_mode {self.actor.tool_mode!r} is not one of {list(TOOL_MODES)}")
        if self.actor.max_tool_rounds < 1:
            raise ConfigError(f"{where}: actor.max_tool_rounds must be >= 1 (got {self.actor.max_tool_rounds})")


def load_llm_config(config: str | Path | LLMAgentConfig | None = None, overrides: list[str] | None = None) -> LLMAgentConfig:
    """The LLM agent's config from YAML (default configs/agents/llm.yaml) plus ``a.b=value``
    overrides, checked: unknown keys, undefined backends and bad modes name the file."""
    if isinstance(config, LLMAgentConfig):
        if overrides:
            raise ConfigError("overrides apply to a config file, not to a built LLMAgentConfig")
        cfg, where = config, "LLMAgentConfig"
    else:
        path = Path(config) if config else DEFAULT_LLM_CONFIG
        data = apply_overrides(read_yaml(path), overrides)
        cfg, where = from_dict(LLMAgentConfig, data, str(path)), str(path)
    cfg.validate(where)
    return cfg


def load_prompt(name: str) -> str:
    """A prompt file: a name under agents/prompts/ or a path."""
    path = Path(name) if Path(name).is_absolute() else PROMPT_DIR / name
    if not path.is_file():
        raise ConfigError(f"prompt file not found: {path}")
    return path.read_text().strip()


# ----------------------------------------------------------------------------- parsing

_THINK_RE = re.compile(r"<think>(.*?)</think>", re.DOTALL | re.IGNORECASE)
_FENCE_RE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.DOTALL)
_PLAN_RE = re.compile(r"<plan>(.*?)(?:</plan>|$)", re.DOTALL | re.IGNORECASE)
_THRESHOLDS_RE = re.compile(r"<thresholds>(.*?)</thresholds>", re.DOTALL | re.IGNORECASE)


def split_think(text: str) -> tuple[str, str]:
    """(think, rest): the first think block and the text after it (or all text, no block)."""
    text = text or ""
    match = _THINK_RE.search(text)
    if match:
        return match.group(1).strip(), (text[: match.start()] + text[match.end() :]).strip()
    if "</think>" in text:  # the opening tag was part of the prompt
        think, _, rest = text.partition("</think>")
        return think.strip(), rest.strip()
    return "", text.strip()


def find_json(text: str, kind: type) -> Any:
    """The first JSON value of type ``kind`` (dict or list) in ``text``: fenced blocks
    first, then bare JSON anywhere; text around it is ignored. ValueError if none."""
    decoder = json.JSONDecoder()
    opener = "{" if kind is dict else "["
    for candidate in [m.group(1) for m in _FENCE_RE.finditer(text)] + [text]:
        pos = candidate.find(opener)
        while pos != -1:
            try:
                value, _ = decoder.raw_decode(candidate[pos:])
            except json.JSONDecodeError:
                value = None
            if isinstance(value, kind):
                return value
            pos = candidate.find(opener, pos + 1)
    raise ValueError(f"no JSON {'object' if kind is dict else 'array'} found")


def _bounds(item: Any) -> tuple[int, int]:
    if isinstance(item, dict):
        if "interval" in item:
            item = item["interval"]
        elif "start" in item:
            return int(item["start"]), int(item.get("end", item["start"]))
        else:
            raise ValueError(f"no 'interval' or 'start' in {item!r}")
    if isinstance(item, (int, float)) and not isinstance(item, bool):
        return int(item), int(item)
    if isinstance(item, (list, tuple)) and len(item) in (1, 2):
        return int(item[0]), int(item[-1])
    raise ValueError(f"not an interval: {item!r}")


def fit_to_window(items: list[Any], start: int, end: int, notes: list[str]) -> list[tuple[int, int]]:
    """Intervals from loosely typed items for the window ``[start, end)``: reversed ones
    swapped, one end outside clipped, wholly outside or beyond BOTH ends dropped (an
    interval that covers more than the whole window says nothing about where in it the
    anomaly is); every repair is noted."""
    out = []
    for k, item in enumerate(items):
        try:
            lo, hi = _bounds(item)
        except (TypeError, ValueError) as err:
            notes.append(f"interval {k}: {err}; skipped")
            continue
        if lo > hi:
            notes.append(f"interval {k}: reversed [{lo}, {hi}] swapped")
            lo, hi = hi, lo
        bounded = fit_interval(lo, hi, start, end)
        if bounded is None:
            notes.append(f"interval {k}: [{lo}, {hi}] outside window [{start}, {end - 1}]; dropped")
            continue
        if (lo, hi) != bounded:
            notes.append(f"interval {k}: [{lo}, {hi}] clipped to window [{start}, {end - 1}]")
        out.append(bounded)
    return out


@dataclass
class LocatorAnswer:
    intervals: list[tuple[int, int]]
    description: str
    notes: list[str] = field(default_factory=list)
    error: str | None = None


def parse_locator_answer(text: str, start: int, end: int, max_candidates: int = 5) -> LocatorAnswer:
    """``{"description": ..., "intervals": [[s, e], ...]}`` (or a bare array of intervals)."""
    notes: list[str] = []
    _, body = split_think(text)
    if not body:
        return LocatorAnswer([], "", notes, "empty answer")
    try:
        obj = find_json(body, dict)
        items = obj.get("intervals", obj.get("candidates", obj.get("anomalies")))
        description = str(obj.get("description", "")).strip()
        if items is None:
            return LocatorAnswer([], description, notes, "JSON object has no 'intervals' list")
    except ValueError:
        try:
            items = find_json(body, list)
        except ValueError:
            return LocatorAnswer([], "", notes, "unparseable answer: no JSON object or array with intervals")
        description = _THINK_RE.sub("", _FENCE_RE.sub("", body)).split("[")[0].strip()
        notes.append("bare array of intervals (no description object)")
    if not isinstance(items, list):
        return LocatorAnswer([], description, notes, f"'intervals' is not a list: {items!r}")
    intervals = fit_to_window(items, start, end, notes)
    if len(intervals) > max_candidates:
        notes.append(f"{len(intervals)} candidates; kept the first {max_candidates}")
        intervals = intervals[:max_candidates]
    return LocatorAnswer(intervals, description, notes)


@dataclass
class PlanAnswer:
    plan: str
    thresholds: dict[str, float]
    think: str = ""
    notes: list[str] = field(default_factory=list)
    error: str | None = None


def parse_plan_answer(text: str) -> PlanAnswer:
    """``<think>...</think><Plan>...</Plan>`` plus optional ``<Thresholds>{...}</Thresholds>``."""
    notes: list[str] = []
    think, body = split_think(text)
    thresholds: dict[str, float] = {}
    match = _THRESHOLDS_RE.search(body)
    if match:
        try:
            raw = find_json(match.group(1), dict)
            for key, value in raw.items():
                try:
                    thresholds[str(key)] = float(value)
                except (TypeError, ValueError):
                    notes.append(f"threshold {key!r}={value!r} is not a number; ignored")
        except ValueError:
            notes.append("<Thresholds> block holds no JSON object; ignored")
        body = (body[: match.start()] + body[match.end() :]).strip()
    plan_match = _PLAN_RE.search(body)
    if plan_match:
        plan = plan_match.group(1).strip()
        if not plan_match.group(0).lower().endswith("</plan>"):
            notes.append("<Plan> block not closed; text to the end used")
    else:
        plan = body
        if plan:
            notes.append("no <Plan> block; the answer outside the think block used as the plan")
    if not plan:
        return PlanAnswer("", thresholds, think, notes, "no plan in the answer")
    return PlanAnswer(plan, thresholds, think, notes)


@dataclass
class EvaluationAnswer:
    needs_refinement: bool
    issues: list[str]
    suggestions: list[str]
    quality: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    error: str | None = None


def _as_text_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value if str(v).strip()]
    return [str(value)] if str(value).strip() else []


def parse_evaluation_answer(text: str) -> EvaluationAnswer:
    """The evaluator's JSON object; an unparseable one means no refinement (noted)."""
    notes: list[str] = []
    _, body = split_think(text)
    try:
        obj = find_json(body, dict)
    except ValueError:
        return EvaluationAnswer(False, [], [], {}, notes, "unparseable answer: no JSON object")
    flag = obj.get("needs_refinement")
    if isinstance(flag, bool):
        needs = flag
    elif isinstance(flag, str) and flag.strip().lower() in ("true", "yes", "1", "false", "no", "0"):
        needs = flag.strip().lower() in ("true", "yes", "1")
        notes.append(f"needs_refinement given as the string {flag!r}")
    else:
        needs = False
        notes.append(f"needs_refinement missing or not a boolean ({flag!r}); treated as false")
    quality = obj.get("quality_metrics", obj.get("quality", {}))
    if not isinstance(quality, dict):
        notes.append(f"quality_metrics is not an object ({quality!r}); ignored")
        quality = {}
    return EvaluationAnswer(needs, _as_text_list(obj.get("issues")), _as_text_list(obj.get("suggestions")), quality, notes)


# ----------------------------------------------------------------------------- helpers

#: Longest model-written text (plan, locator description, detector answer) passed on to
#: another role; the budget may shorten it further.
MAX_RELAYED_CHARS = 4000
#: Longest tool result returned to the actor in one message.
MAX_TOOL_RESULT_CHARS = 3000


def _ask(
    role: str,
    backend: ChatBackend,
    settings: RoleSettings,
    messages: list[dict[str, Any]],
    budget: dict[str, Any],
    *,
    tools: list[dict[str, Any]] | None = None,
    done: tuple[Step, ...] = (),
    **info: Any,
) -> tuple[ChatResponse, Step]:
    """One model request of ``role`` and its step; a failed request raises RoleFailed with
    ``done`` (the role's earlier steps) and a step recording the error and the attempts."""
    t0 = time.perf_counter()
    try:
        response = backend.chat(
            messages, tools=tools, temperature=settings.temperature, max_tokens=settings.max_tokens, seed=settings.seed
        )
    except BackendError as err:
        failed = Step(
            role=role, messages=messages, seconds=time.perf_counter() - t0,
            info=_clean_info(error=str(err), failure=err.kind, attempts=err.attempts, budget=budget, **info),
        )
        failed.prompt_tokens, failed.completion_tokens = _attempt_tokens(err.attempts)
        raise RoleFailed(role, err, [*done, failed]) from err
    seconds = time.perf_counter() - t0
    notes = list(info.pop("notes", None) or [])
    if response.cut_at_max_tokens:
        notes.append(f"answer cut at max_tokens={settings.max_tokens}")
    attempts = response.attempts if len(response.attempts) > 1 else None
    step = Step(
        role=role,
        messages=messages,
        text=response.text,
        seconds=seconds,
        prompt_tokens=int(response.usage.get("prompt_tokens", 0)),
        completion_tokens=int(response.usage.get("completion_tokens", 0)),
        info=_clean_info(finish_reason=response.finish_reason, budget=budget, attempts=attempts, notes=notes, **info),
    )
    return response, step


def _fit(role: str, backend: ChatBackend, settings: RoleSettings, system: str, sections: list[Section],
         tools: list[dict[str, Any]] | None = None, done: tuple[Step, ...] = ()) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The role's messages fitted to its budget; RoleFailed (context_overflow) when they cannot fit."""
    try:
        return fit_prompt(role, backend, settings.max_tokens, system, sections, tools)
    except PromptTooLongError as err:
        failed = Step(role=role, info={"error": str(err), "failure": err.kind})
        raise RoleFailed(role, err, [*done, failed]) from err


def _clean_info(**info: Any) -> dict[str, Any]:
    return {k: v for k, v in info.items() if v not in (None, [], {})}


def _attempt_tokens(attempts: list[dict[str, Any]]) -> tuple[int, int]:
    usages = [a.get("usage") or {} for a in attempts]
    return sum(int(u.get("prompt_tokens", 0)) for u in usages), sum(int(u.get("completion_tokens", 0)) for u in usages)


def _system(settings: RoleSettings, default: str, extra: str = "") -> str:
    """The role's prompt file (plus ``extra``) with the rule for the data section."""
    text = load_prompt(settings.prompt or default)
    return with_data_rule(f"{text}\n\n{extra}" if extra else text)


def _series_line(task: WindowTask) -> str:
    s, w = task.series, task.window
    return (
        f"Series: {quote(s.name)} (dataset {quote(s.dataset)}, domain {quote(s.domain)})\n"
        f"Window: indices {w.start}..{w.end - 1} ({len(w)} points)"
    )


def _values_section(task: WindowTask, cuttable: bool = False) -> Section:
    """The window's values, or (shorter) one digit per point (:func:`window_levels`)."""
    w = task.window
    values = ",".join(json.dumps(compact(float(v))) for v in w.values)
    return Section(
        "values",
        [("values", f"Values from index {w.start}: [{values}]"), ("0-9 levels", window_levels(w.values, w.start))],
        data=True,
        cuttable=cuttable,
    )


def window_levels(values: Any, start: int, group: int = 10) -> str:
    """The window as one digit per point (agents/detector_prompt.value_strip: 0 = its
    minimum, 9 = its maximum), in groups of ``group`` points each prefixed by its first
    index: the plot for models that take no images, and a short stand-in for the values."""
    strip, scale = value_strip(values)
    if len(strip) == len(values):  # one digit per point: indices can be shown
        strip = " ".join(f"{start + k}:{strip[k:k + group]}" for k in range(0, len(strip), group))
        scale += f", {group} points per group, each group prefixed by its first index"
    return f"Window from index {start}, {scale}:\n{strip}"


def _knowledge_text(task: WindowTask) -> str:
    knowledge = task.knowledge
    if knowledge is None or "knowledge_memory" in task.disabled:
        return "not available (knowledge memory switched off)"
    if hasattr(knowledge, "to_dict"):
        knowledge = knowledge.to_dict()
    elif is_dataclass(knowledge):
        knowledge = asdict(knowledge)
    return dumps(knowledge)


def _disabled_note(task: WindowTask) -> str:
    """Ablations: tell the model, so it does not plan around missing inputs."""
    return f"Switched off in this run: {', '.join(task.disabled)}" if task.disabled else ""


#: Arguments most tools take, named once in the catalogue's header instead of on every line.
RANGE_ARGS = ("start", "end")
#: Words of a tool's description shown in the catalogue.
CATALOGUE_WORDS = 16


def tool_catalogue(schemas: list[dict[str, Any]]) -> str:
    """One line per tool, ``- name(arg, optional_arg?): short description`` (its first
    sentence without parentheses, at most CATALOGUE_WORDS words; ``start?, end?`` said once
    in a header): what the planner needs to choose tools; the actor gets the schemas."""
    lines = []
    for schema in schemas:
        fn = schema.get("function", schema)
        params = fn.get("parameters", {}) or {}
        required = set(params.get("required") or [])
        names = [n for n in (params.get("properties") or {}) if n not in RANGE_ARGS or n in required]
        args = ", ".join(name if name in required else f"{name}?" for name in names)
        words = re.sub(r"\s*\([^()]*\)", "", _first_sentence(fn.get("description", ""))).split()
        text = " ".join(words[:CATALOGUE_WORDS]) + (" ..." if len(words) > CATALOGUE_WORDS else "")
        lines.append(f"- {fn.get('name', '?')}({args}): {text}")
    if not lines:
        return "none"
    header = "Most tools also take start?, end?: the range to examine (absolute indices; default the window)."
    return "\n".join([header, *lines])


def _first_sentence(text: str) -> str:
    text = " ".join(str(text).split())
    match = re.search(r"(?<=[.!?])\s", text)
    return text[: match.start()] if match else text


def compact_schemas(schemas: list[dict[str, Any]], descriptions: bool = True) -> list[dict[str, Any]]:
    """Schemas with the first sentence of each tool's description (none without
    ``descriptions``) and no parameter descriptions: the same calls in a fraction of the tokens."""
    out = []
    for schema in schemas:
        fn = dict(schema.get("function", schema))
        fn["description"] = _first_sentence(fn.get("description", "")) if descriptions else ""
        params = dict(fn.get("parameters") or {})
        params["properties"] = {
            name: {k: v for k, v in (spec or {}).items() if k != "description"}
            for name, spec in (params.get("properties") or {}).items()
        }
        fn["parameters"] = params
        out.append({"type": "function", "function": fn})
    return out


def _tools_text(schemas: list[dict[str, Any]]) -> str:
    return "\n".join(dumps(s.get("function", s)) for s in schemas) or "none"


def _named_tools(text: str, schemas: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The schemas of the tools whose names appear in ``text`` (the plan)."""
    return [s for s in schemas if re.search(rf"\b{re.escape(s.get('function', s).get('name', ''))}\b", text or "")]


# ----------------------------------------------------------------------------- roles


@dataclass
class LLMLocator:
    """Shows the model the plotted window (a vision-language model) or, when its backend
    takes no images, the window as 0-9 levels; parses candidate intervals and a description."""

    backend: ChatBackend
    settings: LocatorSettings = field(default_factory=LocatorSettings)

    def sees_images(self) -> bool:
        """Whether the backend takes images (its probe or config; True when it cannot say)."""
        probe = getattr(self.backend, "accepts_images", None)
        return True if probe is None else bool(probe())

    def locate(self, task: WindowTask) -> LocatorOutput:
        if "localization" in task.disabled:
            step = Step("locator", [], "localization disabled", info={"disabled": True})
            return LocatorOutput([], "localization disabled", step)
        w = task.window
        try:
            image = self.sees_images()
        except BackendError as err:
            raise RoleFailed("locator", err, [Step("locator", info={"error": str(err), "failure": err.kind})]) from err
        lines = [_series_line(task)]
        if image:
            from anomamind.tools.plotting import render_window

            png = render_window(
                task.series.values, w.start, w.end, context=self.settings.context, high_res=self.settings.high_res
            )
            context_note = " Grey parts are context outside the window." if self.settings.context else ""
            ask = f"The plot shows the window, values min-max normalised.{context_note}"
        else:
            lines.append(window_levels(w.values, w.start))
            ask = "The window is given as levels above (this model takes no images)."
        request = f"{ask} Propose candidate intervals inside [{w.start}, {w.end - 1}]."
        user_text_ = "\n\n".join([data_section(lines), request])
        content: Any = [text_part(user_text_), image_part(png)] if image else user_text_
        messages = [
            {"role": "system", "content": _system(self.settings, "locator.md")},
            {"role": "user", "content": content},
        ]
        try:
            budget = check_budget("locator", self.backend, self.settings.max_tokens, messages)
        except PromptTooLongError as err:
            raise RoleFailed("locator", err, [Step("locator", info={"error": str(err), "failure": err.kind})]) from err
        response, step = _ask("locator", self.backend, self.settings, messages, budget,
                              image="sent" if image else "text rendering (the backend takes no images)")
        if image:
            _check_image_seen(response, step, messages)
        answer = parse_locator_answer(response.text, w.start, w.end, self.settings.max_candidates)
        candidates = [Interval(lo, hi, "other", "visual candidate", 2) for lo, hi in answer.intervals]
        description = answer.description or (
            "locator answer could not be parsed; no candidates" if answer.error else "no description given"
        )
        step.info.update(_clean_info(candidates=[[c.start, c.end] for c in candidates], parse_error=answer.error))
        step.info["notes"] = step.info.get("notes", []) + answer.notes
        if not step.info["notes"]:
            del step.info["notes"]
        return LocatorOutput(candidates, description, step)


def _check_image_seen(response: ChatResponse, step: Step, messages: list[dict[str, Any]]) -> None:
    """A server that pasted the image into the prompt as text shows it in the usage (at
    least a token per four base64 characters): the answer is about text, never about the plot."""
    url_chars = sum(
        len(p["image_url"]["url"]) for m in messages if isinstance(m.get("content"), list)
        for p in m["content"] if p.get("type") == "image_url"
    )
    prompt_tokens = int(response.usage.get("prompt_tokens", 0))
    if prompt_tokens >= url_chars / 4:
        err = ImageNotSeenError(
            f"the server pasted the locator's image into the prompt as text ({prompt_tokens} prompt tokens "
            f"for {url_chars} base64 characters); set vision: false for this backend"
        )
        step.info.update(error=str(err), failure=err.kind)
        raise RoleFailed("locator", err, [step])


@dataclass
class LLMPlanner:
    """Writes the analysis plan (which tools, which thresholds) from the locator's view,
    the window's values, the tool catalogue and the knowledge memory."""

    backend: ChatBackend
    tool_schemas: list[dict[str, Any]]
    settings: RoleSettings = field(default_factory=RoleSettings)

    def plan(self, task: WindowTask, located: LocatorOutput) -> PlanOutput:
        if "localization" in task.disabled:
            visual = "Visual analysis: not available (localization switched off)"
        else:
            cands = [[c.start, c.end] for c in located.candidates]
            visual = (
                f"Visual analysis (the locator's words): {clean_text(located.description, MAX_RELAYED_CHARS)}\n"
                f"Vision anomaly intervals: {json.dumps(cands)}"
            )
        sections = [
            Section.fixed("window", "\n".join(filter(None, [_series_line(task), _disabled_note(task)])), data=True),
            _values_section(task),
            Section("locator", [("locator", visual)], data=True, cuttable=True, keep=1),
            Section.fixed("tools", "Tools the action agent can call (name(arguments; ? = optional): what it does):\n"
                          + tool_catalogue(self.tool_schemas)),
            Section("knowledge", [("knowledge", "Domain knowledge: " + _knowledge_text(task))], cuttable=True, keep=2),
        ]
        messages, budget = _fit("planner", self.backend, self.settings, _system(self.settings, "planner.md"), sections)
        response, step = _ask("planner", self.backend, self.settings, messages, budget)
        answer = parse_plan_answer(response.text)
        step.info.update(_clean_info(think=answer.think or None, thresholds=answer.thresholds, parse_error=answer.error))
        if answer.notes:
            step.info["notes"] = step.info.get("notes", []) + answer.notes
        return PlanOutput(answer.plan, [], answer.thresholds, step)


def _result_text(result: ToolResult) -> str:
    text = dumps({"error": result.error} if result.error else {"output": result.output})
    return clean_text(text, MAX_TOOL_RESULT_CHARS)


@dataclass
class LLMActor:
    """Turns the plan into tool calls, runs them through the workflow's registry and feeds
    the results back (``role: tool`` messages); the model may call again after seeing
    them, for at most ``max_tool_rounds`` rounds of calls, and while the transcript fits
    the context. It is offered the full schemas of the tools the plan names (all tools
    when it names none), compacted when they do not fit."""

    backend: ChatBackend
    settings: ActorSettings = field(default_factory=ActorSettings)

    def native_tools(self) -> bool:
        """``tool_mode: native`` on a backend that takes tool schemas (its probe; True when
        it cannot say); otherwise the tools are described in the prompt (text mode)."""
        if self.settings.tool_mode != "native":
            return False
        probe = getattr(self.backend, "accepts_tools", None)
        return True if probe is None else bool(probe())

    def act(self, task: WindowTask, plan: PlanOutput, registry: Any) -> Evidence:
        try:
            native = self.native_tools()
        except BackendError as err:
            raise RoleFailed("actor", err, [Step("actor", info={"error": str(err), "failure": err.kind})]) from err
        messages, budget, schemas = self._first_prompt(task, plan, registry.schemas(), native)
        if not native and self.settings.tool_mode == "native":
            budget["tool_mode"] = "text (the server's chat format ignores tool schemas)"
        sent_from = 0  # each step records only the messages it added to the transcript
        results: list[ToolResult] = []
        steps: list[Step] = []
        for round_no in range(1, self.settings.max_tool_rounds + 1):
            if round_no > 1:
                try:
                    budget = check_budget("actor", self.backend, self.settings.max_tokens, messages, schemas if native else None)
                except PromptTooLongError as err:
                    steps[-1].info["stopped"] = f"round {round_no} would not fit the context: {err}"
                    break
            response, step = _ask(
                "actor", self.backend, self.settings, messages, budget, tools=schemas if native else None,
                done=tuple(steps), round=round_no,
                tools_offered=[s["function"]["name"] for s in schemas] if round_no == 1 else None,
            )
            step.messages = messages[sent_from:]
            text, calls, fallback = response.text, list(response.tool_calls), False
            if not calls:
                text, calls = parse_hermes_tool_calls(response.text)
                fallback = bool(calls) and native
            if fallback:
                step.info["text_tool_calls"] = True
            step.text = text
            steps.append(step)
            if not calls:
                step.info["final"] = True
                break
            round_results = self._run(calls, task, registry)
            step.tool_calls, step.tool_results = calls, round_results
            results.extend(round_results)
            sent_from = len(messages)
            if native and not fallback:
                messages.append(assistant_message(text, calls))
                messages += [tool_message(r.call_id or c.id, c.name, _result_text(r)) for c, r in zip(calls, round_results)]
            else:
                messages.append({"role": "assistant", "content": response.text})
                responses = "\n".join(
                    f"<tool_response>{dumps({'name': c.name, 'arguments': c.arguments})} -> {_result_text(r)}</tool_response>"
                    for c, r in zip(calls, round_results)
                )
                messages.append({"role": "user", "content": responses})
            if round_no == self.settings.max_tool_rounds:
                step.info["bound_reached"] = f"max_tool_rounds={self.settings.max_tool_rounds}"
        return Evidence(results, steps)

    def _first_prompt(self, task: WindowTask, plan: PlanOutput, all_schemas: list[dict[str, Any]], native: bool
                      ) -> tuple[list[dict[str, Any]], dict[str, Any], list[dict[str, Any]]]:
        """The first round's messages with the largest tool offer that fits: the full
        schemas, compact ones, then bare ones (native mode) or the one-line catalogue (text
        mode) - of the tools the plan names, or of all tools when it names none."""
        offered = _named_tools(plan.text, all_schemas) or all_schemas
        offers = [("full schemas", offered), ("compact schemas", compact_schemas(offered)),
                  ("bare schemas" if native else "the catalogue", compact_schemas(offered, descriptions=False))]
        plan_text = clean_text(plan.text, MAX_RELAYED_CHARS) if plan.text else (
            "(the planner gave no usable plan: run the tools that fit the data)"
        )
        thresholds = f"\nThresholds: {dumps(plan.thresholds)}" if plan.thresholds else ""
        error: RoleFailed | None = None
        for label, schemas in offers:
            if native:
                extra = ""
            else:
                listed = tool_catalogue(offered) if label == "the catalogue" else _tools_text(schemas)
                extra = load_prompt("actor_text_tools.md") + "\n" + listed
            sections = [
                Section.fixed("window", "\n".join(filter(None, [_series_line(task), _disabled_note(task)])), data=True),
                Section("plan", [("plan", f"Plan (written by the planner):\n{plan_text}{thresholds}")], data=True,
                        cuttable=True, keep=1),
                _values_section(task, cuttable=True),
                Section.fixed("ask", "Call the tools the plan needs."),
            ]
            try:
                messages, budget = _fit("actor", self.backend, self.settings, _system(self.settings, "actor.md", extra),
                                        sections, schemas if native else None)
            except RoleFailed as failed:
                error = failed
                continue
            budget["tools"] = label
            return messages, budget, schemas
        assert error is not None
        raise error

    @staticmethod
    def _run(calls: list[ToolCall], task: WindowTask, registry: Any) -> list[ToolResult]:
        """Run the calls in order; calls whose arguments were not JSON become tool errors."""
        valid = [c for c in calls if INVALID_ARGUMENTS_KEY not in c.arguments]
        ran = iter(registry.run_calls(valid, task) if valid else [])
        out = []
        for call in calls:
            if INVALID_ARGUMENTS_KEY in call.arguments:
                raw = call.arguments[INVALID_ARGUMENTS_KEY]
                out.append(ToolResult(call.name, {}, None, f"arguments are not valid JSON: {raw[:200]}", 0.0, call.id))
            else:
                out.append(next(ran))
        return out


@dataclass
class LLMDetector:
    """Answers the detector messages (agents/detector_prompt.py) with the chat model; a
    prompt over the budget is refused before the request."""

    backend: ChatBackend
    settings: RoleSettings = field(default_factory=lambda: RoleSettings(backend="detector"))

    def detect(self, task: WindowTask, messages: list[dict[str, Any]]) -> tuple[str, Step]:
        refinement = (len(messages) - 2) // 2  # each refinement appends the previous answer + feedback
        try:
            budget = check_budget("detector", self.backend, self.settings.max_tokens, messages)
        except PromptTooLongError as err:
            raise RoleFailed("detector", err, [Step("detector", messages, info={"error": str(err), "failure": err.kind})]) from err
        response, step = _ask("detector", self.backend, self.settings, messages, budget, refinement=refinement or None)
        return response.text, step


@dataclass
class LLMEvaluator:
    """Reviews the detection against the plan and the tool evidence; may ask to refine."""

    backend: ChatBackend
    settings: RoleSettings = field(default_factory=RoleSettings)

    def evaluate(self, task: WindowTask, plan: PlanOutput, evidence: Evidence, detection: Detection) -> EvaluatorOutput:
        w = task.window
        evidence_lines = [
            dumps({"tool": r.name, "args": r.arguments, **({"error": r.error} if r.error else {"output": r.output})})
            for r in evidence.tool_results
        ]
        if detection.parse_error:
            parsed = f"The answer could not be parsed: {detection.parse_error}"
        else:
            parsed = "Parsed intervals: " + dumps([iv.to_dict() for iv in detection.intervals])
            if detection.notes:
                parsed += "\nRepairs made while parsing: " + "; ".join(detection.notes)
        sections = [
            Section.fixed("window", f"Window: indices {w.start}..{w.end - 1} of series {quote(task.series.name)}", data=True),
            Section.fixed("parsed", clean_text(parsed, MAX_RELAYED_CHARS), data=True),
            Section("answer", [("answer", "Detector result:\n" + clean_text(detection.raw_text, MAX_RELAYED_CHARS))],
                    data=True, cuttable=True, keep=2),
            Section("evidence", [("evidence", "Evidence (tool results, one JSON line each):\n"
                                  + clean_text("\n".join(evidence_lines) or "none"))], data=True, cuttable=True, keep=1),
            Section("plan", [("plan", "Plan:\n" + clean_text(plan.text or "(no plan)", MAX_RELAYED_CHARS))],
                    data=True, cuttable=True),
        ]
        messages, budget = _fit("evaluator", self.backend, self.settings, _system(self.settings, "evaluator.md"), sections)
        response, step = _ask("evaluator", self.backend, self.settings, messages, budget)
        answer = parse_evaluation_answer(response.text)
        step.info.update(_clean_info(needs_refinement=answer.needs_refinement, parse_error=answer.error))
        if answer.notes:
            step.info["notes"] = step.info.get("notes", []) + answer.notes
        return EvaluatorOutput(answer.needs_refinement, answer.issues, answer.suggestions, answer.quality, step)


# ----------------------------------------------------------------------------- assembly


def default_tool_schemas() -> list[dict[str, Any]]:
    """The schemas of the toolbox the workflow runs the actor's calls through: every tool
    of the shared registry (tools/catalogue.py), all groups on."""
    from anomamind.tools.registry import default_registry

    return default_registry().schemas()


def make_llm_roles(
    config: str | Path | LLMAgentConfig | None = None,
    overrides: list[str] | None = None,
    *,
    evaluator: bool = True,
    backends: dict[str, ChatBackend] | None = None,
    tool_schemas: list[dict[str, Any]] | None = None,
) -> Roles:
    """The five LLM roles from a config (default configs/agents/llm.yaml).

    ``backends`` replaces building them from the config (same names), e.g. to share one
    loaded model; ``tool_schemas`` is what the planner is told the toolkit holds (default:
    the workflow's toolbox). ``evaluator=False`` leaves the evaluator out (an ablation).
    Nothing is sent yet: each HTTP backend checks its server before its first request, or
    at once through :func:`check_backends`.
    """
    cfg = load_llm_config(config, overrides)
    pool = backends if backends is not None else make_backends(cfg.backends)
    used = ("locator", "planner", "actor", "detector") + (("evaluator",) if evaluator else ())
    missing = sorted({getattr(cfg, r).backend for r in used} - set(pool))
    if missing:
        raise ConfigError(f"no backend named {missing}; have {sorted(pool)}")
    return Roles(
        locator=LLMLocator(pool[cfg.locator.backend], cfg.locator),
        planner=LLMPlanner(pool[cfg.planner.backend], tool_schemas if tool_schemas is not None else default_tool_schemas(), cfg.planner),
        actor=LLMActor(pool[cfg.actor.backend], cfg.actor),
        detector=LLMDetector(pool[cfg.detector.backend], cfg.detector),
        evaluator=LLMEvaluator(pool[cfg.evaluator.backend], cfg.evaluator) if evaluator else None,
    )


def check_backends(roles: Roles, *, localization: bool = True) -> None:
    """Start-up checks before any window runs: each HTTP backend's ``/models`` (the model
    is served; the server's context length), whether the locator's backend takes images
    (a probe, unless ``localization`` is off) and whether the actor's takes tool schemas
    (in native tool mode). Fatal problems raise BackendError."""
    seen: set[int] = set()
    for role in (roles.locator, roles.planner, roles.actor, roles.detector, roles.evaluator):
        backend = getattr(role, "backend", None)
        if backend is None or id(backend) in seen:
            continue
        seen.add(id(backend))
        if hasattr(backend, "check"):
            backend.check()
    if localization and isinstance(roles.locator, LLMLocator):
        roles.locator.sees_images()
    if isinstance(roles.actor, LLMActor):
        roles.actor.native_tools()


def role_backends(roles: Roles) -> list[ChatBackend]:
    """The distinct backends the LLM roles use (for concurrency and usage reports)."""
    out: list[ChatBackend] = []
    for role in (roles.locator, roles.planner, roles.actor, roles.detector, roles.evaluator):
        backend = getattr(role, "backend", None)
        if backend is not None and all(backend is not b for b in out):
            out.append(backend)
    return out
