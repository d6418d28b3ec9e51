"""The five roles as LLM calls over chat backends: locator (a VLM looking at the plotted
window), planner, actor (tool calls, several rounds), detector and evaluator.

Prompts are files under agents/prompts/ (the paper's templates, appendix D.4); the
workflow context goes into the user message. Every answer is parsed forgivingly (think
blocks, fenced or bare JSON, trailing text, reversed or out-of-window indices) and every
repair or failure is written into the role's ``Step.info`` (``notes``, ``parse_error``):
an unparseable answer never stops the workflow, it just contributes nothing (no
candidates, an empty plan, no refinement). Backend failures (after the backend's own
retries) do raise, and the workflow counts the window as failed.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass, field, is_dataclass
from pathlib import Path
from typing import Any

from anomamind.agents.backends.base import INVALID_ARGUMENTS_KEY, ChatBackend, ChatResponse
from anomamind.agents.backends.factory import backend_config, make_backends
from anomamind.agents.backends.messages import (
    assistant_message,
    image_part,
    parse_hermes_tool_calls,
    text_part,
    tool_message,
)
from anomamind.agents.detector_prompt import compact, dumps
from anomamind.agents.roles import Evidence, EvaluatorOutput, LocatorOutput, PlanOutput, Roles, WindowTask
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
    """Intervals from loosely typed items, reversed ones swapped and others clipped to the
    window ``[start, end)`` (dropped when wholly outside); every repair is noted."""
    last = end - 1
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
        if hi < start or lo > last:
            notes.append(f"interval {k}: [{lo}, {hi}] outside window [{start}, {last}]; dropped")
            continue
        if lo < start or hi > last:
            notes.append(f"interval {k}: [{lo}, {hi}] clipped to window [{start}, {last}]")
            lo, hi = max(lo, start), min(hi, last)
        out.append((lo, hi))
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


def _chat(
    backend: ChatBackend, settings: RoleSettings, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None
) -> tuple[ChatResponse, float]:
    t0 = time.perf_counter()
    response = backend.chat(
        messages, tools=tools, temperature=settings.temperature, max_tokens=settings.max_tokens, seed=settings.seed
    )
    return response, time.perf_counter() - t0


def _step(role: str, messages: list[dict[str, Any]], response: ChatResponse, seconds: float, **info: Any) -> Step:
    return Step(
        role=role,
        messages=messages,
        text=response.text,
        seconds=seconds,
        prompt_tokens=int(response.usage.get("prompt_tokens", 0)),
        completion_tokens=int(response.usage.get("completion_tokens", 0)),
        info={k: v for k, v in info.items() if v not in (None, [], {})},
    )


def _window_text(task: WindowTask) -> str:
    w, s = task.window, task.series
    values = ",".join(json.dumps(compact(float(v))) for v in w.values)
    text = (
        f"Series: {s.name} (dataset {s.dataset}, domain {s.domain})\n"
        f"Window: indices {w.start}..{w.end - 1} ({len(w)} points)\n"
        f"Values from index {w.start}: [{values}]"
    )
    if task.disabled:  # ablations: tell the model, so it does not plan around missing inputs
        text += f"\nSwitched off in this run: {', '.join(task.disabled)}"
    return text


def _knowledge_text(task: WindowTask) -> str:
    knowledge = task.knowledge
    if knowledge is None or "knowledge_memory" in task.disabled:
        return "not available (knowledge memory switched off)"
    if hasattr(knowledge, "to_dict"):
        knowledge = knowledge.to_dict()
    elif is_dataclass(knowledge):
        knowledge = asdict(knowledge)
    return dumps(knowledge)


def _tools_text(schemas: list[dict[str, Any]]) -> str:
    return "\n".join(dumps(s.get("function", s)) for s in schemas) or "none"


# ----------------------------------------------------------------------------- roles


@dataclass
class LLMLocator:
    """Shows the VLM the plotted window; parses candidate intervals and a description."""

    backend: ChatBackend
    settings: LocatorSettings = field(default_factory=LocatorSettings)

    def locate(self, task: WindowTask) -> LocatorOutput:
        if "localization" in task.disabled:
            step = Step("locator", [], "localization disabled", info={"disabled": True})
            return LocatorOutput([], "localization disabled", step)
        from anomamind.tools.plotting import render_window

        w = task.window
        png = render_window(
            task.series.values, w.start, w.end, context=self.settings.context, high_res=self.settings.high_res
        )
        context_note = " Grey parts are context outside the window." if self.settings.context else ""
        request = (
            f"Series {task.series.name} (dataset {task.series.dataset}, domain {task.series.domain}). "
            f"The plot shows the window at indices {w.start}..{w.end - 1} ({len(w)} points), "
            f"values min-max normalised.{context_note} Propose candidate intervals inside [{w.start}, {w.end - 1}]."
        )
        messages = [
            {"role": "system", "content": load_prompt(self.settings.prompt or "locator.md")},
            {"role": "user", "content": [text_part(request), image_part(png)]},
        ]
        response, seconds = _chat(self.backend, self.settings, messages)
        answer = parse_locator_answer(response.text, w.start, w.end, self.settings.max_candidates)
        candidates = [Interval(lo, hi, "other", "visual candidate", 2) for lo, hi in answer.intervals]
        description = answer.description or (
            "locator answer could not be parsed; no candidates" if answer.error else "no description given"
        )
        step = _step(
            "locator", messages, response, seconds,
            candidates=[[c.start, c.end] for c in candidates], notes=answer.notes, parse_error=answer.error,
        )
        return LocatorOutput(candidates, description, step)


@dataclass
class LLMPlanner:
    """Writes the analysis plan (which tools, which thresholds) from the locator's view,
    the window's values, the toolkit and the knowledge memory."""

    backend: ChatBackend
    tool_schemas: list[dict[str, Any]]
    settings: RoleSettings = field(default_factory=RoleSettings)

    def plan(self, task: WindowTask, located: LocatorOutput) -> PlanOutput:
        if "localization" in task.disabled:
            visual = "Visual analysis: not available (localization switched off)"
        else:
            cands = [[c.start, c.end] for c in located.candidates]
            visual = f"Visual analysis: {located.description}\nVision anomaly intervals: {json.dumps(cands)}"
        user = "\n\n".join(
            [
                _window_text(task),
                visual,
                "Available tools (one JSON line each):\n" + _tools_text(self.tool_schemas),
                "Domain knowledge: " + _knowledge_text(task),
            ]
        )
        messages = [
            {"role": "system", "content": load_prompt(self.settings.prompt or "planner.md")},
            {"role": "user", "content": user},
        ]
        response, seconds = _chat(self.backend, self.settings, messages)
        answer = parse_plan_answer(response.text)
        step = _step(
            "planner", messages, response, seconds,
            think=answer.think or None, thresholds=answer.thresholds, notes=answer.notes, parse_error=answer.error,
        )
        return PlanOutput(answer.plan, [], answer.thresholds, step)


def _result_text(result: ToolResult) -> str:
    return dumps({"error": result.error} if result.error else {"output": result.output})


@dataclass
class LLMActor:
    """Turns the plan into tool calls, runs them through the workflow's registry and feeds
    the results back (``role: tool`` messages); the model may call again after seeing
    them, for at most ``max_tool_rounds`` rounds of calls."""

    backend: ChatBackend
    settings: ActorSettings = field(default_factory=ActorSettings)

    def act(self, task: WindowTask, plan: PlanOutput, registry: Any) -> Evidence:
        schemas = registry.schemas()
        native = self.settings.tool_mode == "native"
        system = load_prompt(self.settings.prompt or "actor.md")
        if not native:
            system += "\n\n" + load_prompt("actor_text_tools.md") + "\n" + _tools_text(schemas)
        plan_text = plan.text or "(the planner gave no usable plan: run the tools that fit the data)"
        thresholds = f"\nThresholds: {dumps(plan.thresholds)}" if plan.thresholds else ""
        user = f"Plan:\n{plan_text}{thresholds}\n\n{_window_text(task)}\n\nCall the tools the plan needs."
        messages: list[dict[str, Any]] = [{"role": "system", "content": system}, {"role": "user", "content": user}]
        sent_from = 0  # each step records only the messages it added to the transcript
        results: list[ToolResult] = []
        steps: list[Step] = []
        for round_no in range(1, self.settings.max_tool_rounds + 1):
            response, seconds = _chat(self.backend, self.settings, messages, schemas if native else None)
            text, calls, fallback = response.text, list(response.tool_calls), False
            if not calls:
                text, calls = parse_hermes_tool_calls(response.text)
                fallback = bool(calls) and native
            step = _step(
                "actor", messages[sent_from:], response, seconds,
                round=round_no, text_tool_calls=fallback or None,
            )
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
    """Answers the detector messages (agents/detector_prompt.py) with the chat model."""

    backend: ChatBackend
    settings: RoleSettings = field(default_factory=lambda: RoleSettings(backend="detector"))

    def detect(self, task: WindowTask, messages: list[dict[str, Any]]) -> tuple[str, Step]:
        response, seconds = _chat(self.backend, self.settings, messages)
        refinement = (len(messages) - 2) // 2  # each refinement appends the previous answer + feedback
        return response.text, _step("detector", messages, response, seconds, refinement=refinement or None)


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
        user = "\n\n".join(
            [
                f"Plan:\n{plan.text or '(no plan)'}",
                f"Window: indices {w.start}..{w.end - 1} of series {task.series.name}",
                "Evidence (tool results, one JSON line each):\n" + ("\n".join(evidence_lines) or "none"),
                f"Detector result:\n{detection.raw_text}\n\n{parsed}",
            ]
        )
        messages = [
            {"role": "system", "content": load_prompt(self.settings.prompt or "evaluator.md")},
            {"role": "user", "content": user},
        ]
        response, seconds = _chat(self.backend, self.settings, messages)
        answer = parse_evaluation_answer(response.text)
        step = _step(
            "evaluator", messages, response, seconds,
            needs_refinement=answer.needs_refinement, notes=answer.notes, parse_error=answer.error,
        )
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
    """
    cfg = load_llm_config(config, overrides)
    pool = backends if backends is not None else make_backends(cfg.backends)
    missing = sorted({getattr(cfg, r).backend for r in ("locator", "planner", "actor", "detector", "evaluator")} - set(pool))
    if missing:
        raise ConfigError(f"no backend named {missing}; have {sorted(pool)}")
    return Roles(
        locator=LLMLocator(pool[cfg.locator.backend], cfg.locator),
        planner=LLMPlanner(pool[cfg.planner.backend], tool_schemas if tool_schemas is not None else default_tool_schemas(), cfg.planner),
        actor=LLMActor(pool[cfg.actor.backend], cfg.actor),
        detector=LLMDetector(pool[cfg.detector.backend], cfg.detector),
        evaluator=LLMEvaluator(pool[cfg.evaluator.backend], cfg.evaluator) if evaluator else None,
    )
