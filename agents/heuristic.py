"""The five roles as deterministic, offline heuristics: the embedded default detector.

- locator: spectral-residual saliency of the window (what the eye catches in the plot)
  -> candidate intervals; optionally renders the window as a PNG (plotting mode);
- planner: which feature tools to call with which z thresholds, from the knowledge memory's
  per-dataset settings (generic defaults when the memory is switched off);
- actor: runs the calls; a second round re-examines the locator's candidates that round
  one left unexplained, with a relaxed threshold;
- detector: fuses the tool runs into typed intervals with a confidence from the strength
  of the evidence, and writes the ``<think>`` + JSON answer an LLM detector would; its
  per-point evidence strength (the strongest feature's z over its threshold) is the
  continuous score that ranks points for the threshold-free metrics;
- evaluator: checks every interval against the evidence (supported, not window-long,
  not one of too many weak ones) and sends the answer back once when it is not.

The actor runs its calls through the workflow's toolbox, the shared tool registry
(``tools.registry.TaskTools``): ``feature_runs`` over the series'
:class:`~anomamind.tools.features_profile.FeatureProfile`, or ``raw_value_outliers`` when
feature extraction is off. No role reads the labels.

A dataset the knowledge memory has no entry for gets label-free settings: each feature's
threshold is raised to the series' own peaks-over-threshold level at the settings'
``false_alarm_rate``, and the labelling convention (points or ranges) follows the length
anomalies are expected to have, ``event_fraction`` of the series' period.
"""

from __future__ import annotations

import base64
import io
import time
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from scipy import ndimage

from anomamind.tools.features_profile import FEATURES, runs_above, spectral_residual_saliency
from anomamind.agents.parsing import render_detection
from anomamind.agents.roles import (
    Evidence,
    EvaluatorOutput,
    LocatorOutput,
    PlanOutput,
    Roles,
    WindowTask,
)
from anomamind.types import Detection, Interval, Step, ToolCall

#: Anomaly type suggested by the feature that carries the strongest evidence.
FEATURE_TYPES: dict[str, str] = {
    "spike": "point-contextual",
    "jump": "level-shift",
    "level": "level-shift",
    "seasonal": "seasonal-deviation",
    "global": "point-global",
    "raw": "other",
}


@dataclass
class DetectionSettings:
    """Thresholds and fusion settings; one set per dataset lives in the knowledge memory.

    ``thresholds`` maps a feature to the robust z above which it flags a point (features
    without an entry are not used); runs extend while z stays above ``hysteresis`` times
    the threshold; runs closer than ``merge_gap`` points merge. ``candidate_relief``
    multiplies the thresholds inside locator candidates in the actor's second round;
    ``outside_strength`` is the evidence strength (peak z / threshold) a finding needs when
    localization is on and it lies outside every candidate (the locator's prior that
    nothing there looks abnormal). ``max_fraction``: the evaluator questions intervals
    longer than this fraction of the window unless their evidence is strong (datasets with
    long anomalies set it higher); beyond ``max_intervals`` intervals in one window it
    questions the weakest ones (datasets with dense anomalies set it higher).
    ``confidence_levels`` are the evidence strengths (peak z / threshold) for confidence 2
    and 3.

    ``event_fraction``: anomalies are expected to last this fraction of the series' period
    (:meth:`event_length`); the continuous score spreads evidence over that length.
    Label-free settings (datasets without a knowledge entry) add ``false_alarm_rate``, the
    rate at which each feature's threshold is set from the series' own tail
    (:meth:`FeatureProfile.tail_threshold`; the configured threshold stays the floor), and
    ``ranges``, settings overlaid when the expected length is 2 points or more (anomalies
    labelled as ranges rather than points).
    """

    thresholds: dict[str, float] = field(
        default_factory=lambda: {"spike": 6.0, "jump": 8.0, "level": 6.0, "seasonal": 6.0, "global": 6.0}
    )
    hysteresis: float = 0.6
    merge_gap: int = 3
    candidate_relief: float = 0.8
    outside_strength: float = 1.0
    max_fraction: float = 0.5
    max_intervals: int = 4
    confidence_levels: tuple[float, float] = (1.5, 2.5)
    event_fraction: float = 0.0
    false_alarm_rate: float | None = None
    ranges: dict[str, Any] | None = None
    description: str = ""

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> "DetectionSettings":
        data = dict(data or {})
        if "confidence_levels" in data:
            data["confidence_levels"] = tuple(float(v) for v in data["confidence_levels"])
        unknown = sorted(set(data) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"unknown detection setting(s) {unknown}")
        rate = data.get("false_alarm_rate")
        if rate is not None and not 0 < float(rate) < 1:
            raise ValueError(f"false_alarm_rate must be in (0, 1) or null, got {rate}")
        if data.get("ranges") is not None:
            overlay = data["ranges"]
            if not isinstance(overlay, dict):
                raise ValueError(f"ranges must be a mapping of settings, got {overlay!r}")
            bad = sorted(set(overlay) - set(cls.__dataclass_fields__) | set(overlay) & {"ranges", "description"})
            if bad:
                raise ValueError(f"unknown or nested setting(s) {bad} in ranges")
        return cls(**data)

    def event_length(self, period: int) -> int:
        """Points an anomaly is expected to span: ``event_fraction`` of the period (1 when
        the series has no period)."""
        return max(1, int(round(period * self.event_fraction))) if period > 0 else 1

    def for_period(self, period: int) -> tuple["DetectionSettings", str]:
        """These settings for a series with this period, and its labelling convention:
        ``ranges`` overlaid when anomalies are expected to span 2 points or more."""
        if self.ranges is None:
            return self, ""
        if self.event_length(period) < 2:
            return replace(self, ranges=None), "points"
        overlay = dict(self.ranges)
        if "confidence_levels" in overlay:
            overlay["confidence_levels"] = tuple(float(v) for v in overlay["confidence_levels"])
        return replace(self, **overlay, ranges=None), "ranges"


# ----------------------------------------------------------------------------- roles


def settings_for(task: WindowTask, defaults: DetectionSettings) -> tuple[DetectionSettings, str]:
    """The task's detection settings and where they came from (knowledge memory or defaults)."""
    if "knowledge_memory" not in task.disabled and isinstance(task.knowledge, DetectionSettings):
        if task.knowledge.false_alarm_rate is not None and not task.knowledge.description:
            return task.knowledge, f"the generic label-free settings (no knowledge entry for {task.series.dataset})"
        return task.knowledge, f"knowledge memory ({task.series.dataset})"
    return defaults, "generic defaults (no knowledge memory)"


@dataclass
class HeuristicLocator:
    """Spectral-residual saliency of the window -> candidate intervals.

    ``saliency_threshold`` is in multiples of the window's mean saliency. With ``plot`` on,
    the window is rendered as a PNG and attached to the step, as a VLM locator would see it.
    """

    saliency_threshold: float = 3.0
    merge_gap: int = 2
    max_candidates: int = 3
    plot: bool = False
    _plotter: WindowPlotter | None = field(default=None, init=False, repr=False)

    def locate(self, task: WindowTask) -> LocatorOutput:
        t0 = time.perf_counter()
        w = task.window
        messages: list[dict[str, Any]] = []
        if self.plot:
            if self._plotter is None:
                self._plotter = WindowPlotter()
            messages = [{"role": "user", "content": [self._plotter.png_part(task)]}]
        if "localization" in task.disabled:
            step = Step("locator", messages, "localization disabled", info={"disabled": True})
            step.seconds = time.perf_counter() - t0
            return LocatorOutput([], "localization disabled", step)
        sal = spectral_residual_saliency(w.values)
        runs = runs_above(sal, self.saliency_threshold, self.saliency_threshold / 2, offset=w.start)
        runs = _merge_runs([(s, e, p) for s, e, p in runs], self.merge_gap)
        runs = sorted(runs, key=lambda r: -r[2])[: self.max_candidates]
        candidates = [
            Interval(int(s), int(e), "other", f"saliency {p:.1f}x mean", 3 if p > 2 * self.saliency_threshold else 2)
            for s, e, p in sorted(runs)
        ]
        if candidates:
            description = "salient regions: " + ", ".join(
                f"{iv.start}..{iv.end} ({iv.explanation})" for iv in candidates
            )
        else:
            description = "no salient region; the window looks regular"
        step = Step("locator", messages, description, info={"candidates": [[c.start, c.end] for c in candidates]})
        step.seconds = time.perf_counter() - t0
        return LocatorOutput(candidates, description, step)


@dataclass
class HeuristicPlanner:
    """Feature tools and thresholds from the knowledge memory (or generic defaults)."""

    defaults: DetectionSettings = field(default_factory=DetectionSettings)

    def plan(self, task: WindowTask, located: LocatorOutput) -> PlanOutput:
        t0 = time.perf_counter()
        settings, source = settings_for(task, self.defaults)
        period = int(getattr(task.context, "period", 0) or 0)
        settings, convention = settings.for_period(period)
        calls: list[ToolCall] = []
        thresholds: dict[str, float] = {}
        if "feature_extraction" in task.disabled or task.context is None:
            raw = settings.thresholds.get("global", 6.0)
            calls.append(ToolCall("raw_value_outliers", {"threshold": raw, "low": raw * settings.hysteresis}, "c0"))
            thresholds["raw"] = raw
            text = f"Feature extraction is off: look for raw-value outliers (z > {raw}); thresholds from {source}."
        else:
            available = task.context.features
            rate = settings.false_alarm_rate
            for feature in FEATURES:
                thr = settings.thresholds.get(feature)
                if thr is None or feature not in available:
                    continue
                if rate is not None:  # label-free: the series' own tail, the setting as floor
                    thr = max(thr, task.context.tail_threshold(feature, task.window.start, rate))
                thr = round(float(thr), 3)
                args = {"feature": feature, "threshold": thr, "low": round(thr * settings.hysteresis, 3)}
                calls.append(ToolCall("feature_runs", args, f"c{len(calls)}"))
                thresholds[feature] = thr
            text = (
                f"Check {', '.join(thresholds)} deviations with thresholds from {source}"
                + (f" ({settings.description})" if settings.description and source.startswith("knowledge") else "")
                + (
                    f", raised to this series' own tail at a false-alarm rate of {rate:g}"
                    + f" ({', '.join(f'{k} z > {v:g}' for k, v in thresholds.items())})"
                    if rate is not None
                    else ""
                )
                + (
                    f"; anomalies are expected to span {settings.event_length(period)} point(s) "
                    f"(period {period}), so they are labelled as {convention}"
                    if convention
                    else ""
                )
                + (f"; re-examine candidates {[[c.start, c.end] for c in located.candidates]}" if located.candidates else "")
                + "."
            )
        thresholds.update(
            hysteresis=settings.hysteresis,
            merge_gap=settings.merge_gap,
            candidate_relief=settings.candidate_relief,
            outside_strength=settings.outside_strength,
            max_fraction=settings.max_fraction,
            max_intervals=settings.max_intervals,
            confidence_2=settings.confidence_levels[0],
            confidence_3=settings.confidence_levels[1],
            event_length=settings.event_length(period),
        )
        info: dict[str, Any] = {"settings_source": source}
        if convention:
            info["convention"] = convention
        if settings.false_alarm_rate is not None:
            info["false_alarm_rate"] = settings.false_alarm_rate
        step = Step("planner", [], text, tool_calls=list(calls), info=info)
        step.seconds = time.perf_counter() - t0
        return PlanOutput(text, calls, thresholds, step)


@dataclass
class HeuristicActor:
    """Runs the plan; then (up to ``max_rounds`` in all) re-examines locator candidates that
    no run explains, with thresholds multiplied by the plan's ``candidate_relief``."""

    max_rounds: int = 2

    def act(self, task: WindowTask, plan: PlanOutput, registry: Any) -> Evidence:
        t0 = time.perf_counter()
        results = registry.run_calls(plan.tool_calls, task)
        steps = [Step("actor", [], f"round 1: {len(results)} tool call(s)", list(plan.tool_calls), results)]
        steps[0].seconds = time.perf_counter() - t0
        located = task.upstream.get("located")
        relief = float(plan.thresholds.get("candidate_relief", 1.0))
        if self.max_rounds < 2 or relief >= 1.0 or located is None or not located.candidates:
            return Evidence(list(results), steps)  # same thresholds could find nothing new
        covered = [(s, e) for r in results if r.ok for s, e, _ in r.output["runs"]]
        follow_up: list[ToolCall] = []
        for cand in located.candidates:
            if any(s <= cand.end and e >= cand.start for s, e in covered):
                continue
            for call in plan.tool_calls:
                if call.name != "feature_runs":
                    continue
                args = dict(call.arguments)
                args.update(
                    threshold=round(args["threshold"] * relief, 3),
                    low=round(args["low"] * relief, 3),
                    start=cand.start,
                    end=cand.end,
                )
                follow_up.append(ToolCall("feature_runs", args, f"r2c{len(follow_up)}"))
        if not follow_up:
            return Evidence(list(results), steps)
        t1 = time.perf_counter()
        more = registry.run_calls(follow_up, task)
        step = Step("actor", [], f"round 2: {len(more)} call(s) on unexplained candidates", follow_up, more)
        step.seconds = time.perf_counter() - t1
        return Evidence(list(results) + list(more), steps + [step])


@dataclass
class _Finding:
    start: int
    end: int
    strength: float  # peak z / threshold of the strongest supporting run
    feature: str
    peak_z: float
    supports: list[str]


def fuse_evidence(evidence: Evidence, thresholds: dict[str, float]) -> list[_Finding]:
    """Merge the tool runs into findings: overlapping or close runs (``merge_gap``) merge,
    the strongest run gives the finding its feature and strength."""
    runs = []
    for result in evidence.tool_results:
        if not result.ok or not isinstance(result.output, dict):
            continue
        feature = result.output.get("feature", "raw")
        thr = float(result.arguments.get("threshold", 1.0)) or 1.0
        for s, e, peak in result.output.get("runs", []):
            runs.append((int(s), int(e), float(peak) / thr, feature, float(peak)))
    runs.sort()
    gap = int(thresholds.get("merge_gap", 0))
    findings: list[_Finding] = []
    for s, e, strength, feature, peak in runs:
        last = findings[-1] if findings else None
        if last is not None and s <= last.end + gap + 1:
            last.end = max(last.end, e)
            if strength > last.strength:
                last.strength, last.feature, last.peak_z = strength, feature, peak
            if feature not in last.supports:
                last.supports.append(feature)
        else:
            findings.append(_Finding(s, e, strength, feature, peak, [feature]))
    return findings


def _finding_type(f: _Finding) -> str:
    """Short findings backed by the spike or global feature are point anomalies (global
    when the value is extreme for the whole series); longer ones take the type of their
    strongest feature."""
    if f.end - f.start < 3 and ({"spike", "global"} & set(f.supports) or f.end == f.start):
        return "point-global" if "global" in f.supports else "point-contextual"
    return FEATURE_TYPES.get(f.feature, "other")


def _confidence(strength: float, thresholds: dict[str, float]) -> int:
    if strength >= thresholds.get("confidence_3", 2.5):
        return 3
    if strength >= thresholds.get("confidence_2", 1.5):
        return 2
    return 1


@dataclass
class HeuristicDetector:
    """Fuses the structured evidence (``task.upstream``) into intervals and writes the answer
    text. In a refinement round it applies the evaluator's feedback: flagged intervals are
    trimmed to their core or dropped when weak. It does not read the chat messages, so
    benchmark runs may skip rendering them (``reads_messages``)."""

    reads_messages = False

    def evidence_scores(self, task: WindowTask) -> np.ndarray | None:
        """Per-point evidence strength of the window in [0, 1): the largest z / threshold of
        the planned features (s / (1 + s), so 1 maps to 0.5), spread over the plan's
        expected anomaly length by a running maximum (trailing in causal mode: only the
        past). The workflow adds it to the intervals' confidence to rank points; None
        without series-level features."""
        plan: PlanOutput | None = task.upstream.get("plan")
        profile = task.context
        if plan is None or not hasattr(profile, "zscores"):
            return None
        w0, w1 = task.window.start, task.window.end
        length = max(1, int(plan.thresholds.get("event_length", 1)))
        causal = bool(getattr(profile, "causal", False))
        lo = max(0, w0 - (length - 1 if causal else length // 2))
        hi = w1 if causal else min(profile.n, w1 + length // 2)
        strength = np.zeros(hi - lo)
        for call in plan.tool_calls:
            if call.name == "feature_runs":
                z = profile.zscores(call.arguments["feature"], lo, hi, scale_at=w0)
                np.maximum(strength, z / float(call.arguments["threshold"]), out=strength)
        if length > 1:
            strength = ndimage.maximum_filter1d(strength, length, origin=(length - 1) // 2 if causal else 0)
        strength = strength[w0 - lo : w1 - lo]
        return strength / (1.0 + strength)

    def detect(self, task: WindowTask, messages: list[dict[str, Any]]) -> tuple[str, Step]:
        t0 = time.perf_counter()
        plan: PlanOutput = task.upstream["plan"]
        evidence: Evidence = task.upstream["evidence"]
        feedback: EvaluatorOutput | None = task.upstream.get("feedback")
        findings = fuse_evidence(evidence, plan.thresholds)
        flagged = {tuple(f[:2]): f[2] for f in (feedback.quality.get("flagged", []) if feedback else [])}
        located: LocatorOutput | None = task.upstream.get("located")
        gate = "localization" not in task.disabled and located is not None
        outside_strength = float(plan.thresholds.get("outside_strength", 1.0))
        intervals, notes = [], []
        for f in findings:
            if gate and f.strength < outside_strength and not _near_candidate(f, located.candidates):
                continue  # weak, and the locator saw nothing salient there
            reason = flagged.get((f.start, f.end))
            if reason is not None:
                if f.strength < plan.thresholds.get("confidence_2", 1.5):
                    notes.append(f"dropped {f.start}..{f.end} ({reason})")
                    continue
                if reason == "too long" and f.end - f.start > 2:
                    f = _trim_to_core(f, evidence)
                    notes.append(f"trimmed to {f.start}..{f.end} ({reason})")
            explanation = (
                f"{f.feature} z={f.peak_z:.1f} ({f.strength:.1f}x threshold)"
                + (f"; also {', '.join(s for s in f.supports if s != f.feature)}" if len(f.supports) > 1 else "")
            )
            intervals.append(
                Interval(f.start, f.end, _finding_type(f), explanation, _confidence(f.strength, plan.thresholds))
            )
        if intervals:
            think = (
                f"{len(intervals)} region(s) exceed the planned thresholds: "
                + "; ".join(f"[{iv.start}, {iv.end}] {iv.explanation}" for iv in intervals)
            )
        else:
            think = "No feature exceeds its threshold in this window; it is normal."
        if notes:
            think += " Revised after evaluation: " + "; ".join(notes) + "."
        text = render_detection(intervals, think)
        step = Step("detector", messages, text, info={"refinement": feedback is not None})
        step.seconds = time.perf_counter() - t0
        return text, step


def _near_candidate(f: _Finding, candidates: list[Interval], margin: int = 2) -> bool:
    return any(c.start - margin <= f.end and f.start <= c.end + margin for c in candidates)


def _trim_to_core(f: _Finding, evidence: Evidence) -> _Finding:
    """Shrink a finding to the points where its strongest feature exceeds the full
    threshold (the hysteresis tail removed)."""
    for result in evidence.tool_results:
        if result.ok and result.output.get("feature") == f.feature:
            thr = float(result.arguments["threshold"])
            cores = [
                (s, e)
                for s, e, peak in runs_above_from_runs(result.output["runs"], thr)
                if s <= f.end and e >= f.start
            ]
            if cores:
                return _Finding(cores[0][0], cores[-1][1], f.strength, f.feature, f.peak_z, f.supports)
    return f


def runs_above_from_runs(runs: list[list[float]], threshold: float) -> list[tuple[int, int, float]]:
    """The runs whose peak exceeds ``threshold`` (the run bounds themselves are kept)."""
    return [(int(s), int(e), float(p)) for s, e, p in runs if p > threshold]


@dataclass
class HeuristicEvaluator:
    """Flags intervals that are unsupported by any tool run, that span more than the plan's
    ``max_fraction`` of the window with only moderate evidence, or that are the weakest of
    more than the plan's ``max_intervals`` intervals; asks for one refinement when any is
    flagged. The limits come from the knowledge memory through the plan."""

    def evaluate(self, task: WindowTask, plan: PlanOutput, evidence: Evidence, detection: Detection) -> EvaluatorOutput:
        t0 = time.perf_counter()
        issues: list[str] = []
        flagged: list[list[Any]] = []
        if not detection.ok:
            issues.append(f"the answer could not be parsed: {detection.parse_error}")
        runs = [
            (int(s), int(e))
            for r in evidence.tool_results
            if r.ok and isinstance(r.output, dict)
            for s, e, _ in r.output.get("runs", [])
        ]
        window_len = len(task.window)
        strong = plan.thresholds.get("confidence_3", 2.5)
        max_fraction = float(plan.thresholds.get("max_fraction", 0.5))
        max_intervals = int(plan.thresholds.get("max_intervals", 4))
        for iv in detection.intervals:
            if not any(s <= iv.end and e >= iv.start for s, e in runs):
                issues.append(f"[{iv.start}, {iv.end}] is not supported by any tool result")
                flagged.append([iv.start, iv.end, "unsupported"])
            elif iv.length > max_fraction * window_len and iv.confidence < 3:
                issues.append(f"[{iv.start}, {iv.end}] covers {iv.length}/{window_len} points without strong evidence")
                flagged.append([iv.start, iv.end, "too long"])
        if len(detection.intervals) > max_intervals:
            weakest = sorted(detection.intervals, key=lambda iv: iv.confidence)[: len(detection.intervals) - max_intervals]
            for iv in weakest:
                if iv.confidence < 2:
                    issues.append(f"[{iv.start}, {iv.end}] is one of too many weak intervals")
                    flagged.append([iv.start, iv.end, "too many"])
        suggestions = ["drop or tighten the flagged intervals"] if flagged else []
        quality = {
            "n_intervals": len(detection.intervals),
            "flagged": flagged,
            "strong_threshold": strong,
        }
        text = "; ".join(issues) if issues else "consistent with the evidence"
        step = Step("evaluator", [], text, info=quality)
        step.seconds = time.perf_counter() - t0
        return EvaluatorOutput(bool(flagged), issues, suggestions, quality, step)


def _merge_runs(runs: list[tuple[int, int, float]], gap: int) -> list[tuple[int, int, float]]:
    merged: list[list[float]] = []
    for s, e, p in sorted(runs):
        if merged and s <= merged[-1][1] + gap + 1:
            merged[-1][1] = max(merged[-1][1], e)
            merged[-1][2] = max(merged[-1][2], p)
        else:
            merged.append([s, e, p])
    return [(int(s), int(e), float(p)) for s, e, p in merged]


class WindowPlotter:
    """Renders windows as small PNGs, reusing one figure (creating a matplotlib figure per
    window would cost more than the whole rest of the workflow)."""

    def __init__(self) -> None:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib.figure import Figure

        self.figure = Figure(figsize=(6, 2.2), dpi=80)
        self.axes = self.figure.add_subplot()
        (self.line,) = self.axes.plot([], [], lw=1)
        self.axes.tick_params(labelsize=7)
        self.figure.tight_layout()

    def png_part(self, task: WindowTask) -> dict[str, Any]:
        """The window as a base64 PNG image part (what a VLM locator is shown)."""
        w = task.window
        self.line.set_data(np.arange(w.start, w.end), w.values)
        self.axes.relim()
        self.axes.autoscale_view()
        self.axes.set_title(f"{task.series.name} [{w.start}, {w.end - 1}]", fontsize=8)
        buf = io.BytesIO()
        self.figure.savefig(buf, format="png")
        data = base64.b64encode(buf.getvalue()).decode("ascii")
        return {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{data}"}}


def make_heuristic_roles(
    defaults: DetectionSettings | None = None,
    *,
    evaluator: bool = True,
    plot: bool = False,
    max_rounds: int = 2,
    locator: dict[str, Any] | None = None,
) -> Roles:
    """The five heuristic roles (``evaluator=False`` leaves the evaluator out)."""
    return Roles(
        locator=HeuristicLocator(plot=plot, **(locator or {})),
        planner=HeuristicPlanner(defaults or DetectionSettings()),
        actor=HeuristicActor(max_rounds=max_rounds),
        detector=HeuristicDetector(),
        evaluator=HeuristicEvaluator() if evaluator else None,
    )
