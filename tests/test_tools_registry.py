"""The tool registry: generated schemas, argument validation, group switches, dispatch."""

from __future__ import annotations

import json

import numpy as np
import pytest
from jsonschema import Draft202012Validator

from anomamind.tools.context import ToolContext
from anomamind.tools.registry import FEATURE_GROUPS, ToolRegistry, default_registry
from anomamind.types import ToolCall


@pytest.fixture(scope="module")
def ctx() -> ToolContext:
    rng = np.random.default_rng(1)
    values = np.sin(np.arange(600) * 2 * np.pi / 40) + 0.1 * rng.standard_normal(600)
    return ToolContext(values, 300, 400, dataset="YAHOO", domain="unknown")


def test_every_schema_is_valid_json_schema_in_openai_format() -> None:
    schemas = default_registry().schemas()
    assert len(schemas) >= 10
    for schema in schemas:
        assert schema["type"] == "function"
        function = schema["function"]
        assert function["name"] and function["description"]
        Draft202012Validator.check_schema(function["parameters"])
        assert "ctx" not in function["parameters"]["properties"]
        for prop in function["parameters"]["properties"].values():
            assert prop["description"], f"{function['name']}: undocumented parameter"


def test_schema_validates_the_arguments_the_registry_accepts(ctx: ToolContext) -> None:
    registry = default_registry()
    schema = registry.get("global_value_zscore").schema["function"]["parameters"]
    validator = Draft202012Validator(schema)
    good = {"start": 310, "end": 350, "threshold": 2.5, "robust": False}
    assert not list(validator.iter_errors(good))
    assert registry.call(ctx, ToolCall("global_value_zscore", good)).ok
    for bad in ({"threshold": "high"}, {"robust": 1}, {"surprise": 1}, {"threshold": 0}):
        assert list(validator.iter_errors(bad)), bad
        assert registry.call(ctx, ToolCall("global_value_zscore", bad)).error


@pytest.mark.parametrize(
    "arguments, fragment",
    [
        ({"start": 350, "end": 320}, "after end"),
        ({"start": 0, "end": 600}, "outside the readable indices 0..599"),
        ({"start": -5}, "outside"),
        ({"start": "300"}, "type integer"),
        ({"start": True}, "type integer"),
        ({"start": 300.5}, "type integer"),
        ({"colour": "red"}, "unexpected argument(s) colour"),
        ("{not json", "not valid JSON"),
        ([1, 2], "JSON object"),
    ],
)
def test_bad_arguments_become_readable_errors(ctx: ToolContext, arguments: object, fragment: str) -> None:
    result = default_registry().call(ctx, ToolCall("segment_statistics", arguments))  # type: ignore[arg-type]
    assert result.output is None
    assert fragment in result.error


def test_unknown_tool_and_missing_argument(ctx: ToolContext) -> None:
    registry = default_registry()
    unknown = registry.call(ctx, ToolCall("magic_detector", {}))
    assert "unknown tool" in unknown.error and "segment_statistics" in unknown.error
    if "get_anomaly_type_definition" in registry:
        missing = registry.call(ctx, ToolCall("get_anomaly_type_definition", {}))
        assert "missing required argument(s) type_name" in missing.error


def test_integral_floats_and_json_string_arguments_are_accepted(ctx: ToolContext) -> None:
    registry = default_registry()
    result = registry.call(ctx, ToolCall("segment_statistics", '{"start": 310.0, "end": 320}'))
    assert result.ok, result.error
    assert result.output["range"] == [310, 320]


def test_exception_inside_a_tool_is_reported_not_raised(ctx: ToolContext) -> None:
    def broken(ctx: ToolContext, *, start: int | None = None) -> dict:
        """Always fails.

        Args:
            start: ignored.
        """
        raise RuntimeError("boom")

    registry = ToolRegistry()
    registry.register(broken, group="statistical")
    result = registry.call(ctx, ToolCall("broken", {}))
    assert result.error == "broken failed: RuntimeError: boom"


def test_disabled_groups_hide_schemas_and_refuse_calls(ctx: ToolContext) -> None:
    full = ToolRegistry.default()
    ablated = ToolRegistry.default(disabled_groups={"feature_extraction"})
    assert ablated.disabled_groups == set(FEATURE_GROUPS)
    feature_names = set(full.names(groups=["feature_extraction"]))
    assert feature_names and not feature_names & set(ablated.names())
    refused = ablated.call(ctx, ToolCall("segment_statistics", {}))
    assert "disabled" in refused.error
    with pytest.raises(ValueError, match="unknown tool group"):
        ToolRegistry.default(disabled_groups={"features"})


def test_run_calls_keeps_order_ids_and_timing(ctx: ToolContext) -> None:
    calls = [
        ToolCall("segment_statistics", {}, id="a"),
        ToolCall("nope", {}, id="b"),
        ToolCall("global_diff_zscore", {"threshold": 3.0}, id="c"),
    ]
    results = default_registry().run_calls(ctx, calls)
    assert [r.call_id for r in results] == ["a", "b", "c"]
    assert [r.ok for r in results] == [True, False, True]
    assert all(r.seconds >= 0 for r in results)
    json.dumps([r.to_dict() for r in results])


def test_every_tool_output_is_compact_json_with_a_summary(ctx: ToolContext) -> None:
    registry = default_registry()
    for name in registry.names():
        tool = registry.get(name)
        if any(spec.required for spec in tool.params.values()):
            continue
        result = registry.call(ctx, ToolCall(name, {}))
        assert result.ok, f"{name}: {result.error}"
        text = json.dumps(result.output)
        assert len(text) < 6000, f"{name} output too long ({len(text)} chars)"
        assert isinstance(result.output.get("summary"), str) and result.output["summary"]


def test_causal_context_cannot_read_the_future() -> None:
    values = np.arange(1000, dtype=float)
    causal = ToolContext(values, 400, 500, causal=True)
    assert causal.reference_end == 500 and causal.visible_end == 500
    result = default_registry().call(causal, ToolCall("segment_statistics", {"start": 450, "end": 700}))
    assert "causal mode" in result.error
    stats = default_registry().call(causal, ToolCall("segment_statistics", {}))
    assert stats.output["reference"]["points"] == 500


def _tools_with_range() -> list[str]:
    registry = default_registry()
    return [n for n in registry.names() if "start" in registry.get(n).params]


@pytest.mark.parametrize("name", _tools_with_range())
@pytest.mark.parametrize(
    "arguments, fragment",
    [
        ({"start": 390, "end": 310}, "after end"),
        ({"start": 590, "end": 650}, "outside the readable indices"),
        ({"start": "a"}, "type integer"),
        ({"verbose": True}, "unexpected argument(s) verbose"),
    ],
)
def test_every_range_tool_rejects_bad_arguments(ctx: ToolContext, name: str, arguments: dict, fragment: str) -> None:
    result = default_registry().call(ctx, ToolCall(name, arguments))
    assert result.output is None and fragment in result.error


@pytest.mark.parametrize(
    "name, arguments, fragment",
    [
        ("distribution_shift", {"start": 300, "end": 330, "split": 301}, "split must lie in 302..329"),
        ("local_diff_zscore", {"start": 300, "end": 302}, "at least 4 points"),
        ("trend_break", {"start": 300, "end": 305}, "at least 12 points"),
        ("phase_deviation", {"start": 0, "end": 20}, "no earlier period"),
        ("phase_deviation", {"period": 400}, "needs at least 800 reference points"),
        ("seasonal_residual_zscore", {"period": -3}, "period must be >= 0"),
        ("seasonal_residual_zscore", {"period": 2}, "period must be 0 (estimate it) or at least 4"),
        ("global_diff_zscore", {"order": 3}, "order must be <= 2"),
        ("level_shifts", {"width": 1}, "width must be >= 2"),
        ("variance_changes", {"threshold": 0.5}, "threshold must be > 1"),
        ("value_percentiles", {"tail": 50}, "tail must be <= 10"),
        ("flat_segments", {"min_length": 1}, "min_length must be >= 2"),
        ("locate_candidates", {"sensitivity": 0}, "sensitivity must be > 0"),
        ("get_anomaly_type_definition", {"type_name": None}, "type_name must not be null"),
    ],
)
def test_tool_specific_bad_arguments(ctx: ToolContext, name: str, arguments: dict, fragment: str) -> None:
    result = default_registry().call(ctx, ToolCall(name, arguments))
    assert result.output is None and fragment in result.error, result.error


def test_phase_deviation_without_a_period_says_so() -> None:
    noise = ToolContext(np.random.default_rng(4).standard_normal(800), 400, 500)
    result = default_registry().call(noise, ToolCall("phase_deviation", {}))
    assert "no clear period" in result.error
    assert default_registry().call(noise, ToolCall("phase_deviation", {"period": 30})).ok


def test_context_rejects_bad_series() -> None:
    with pytest.raises(ValueError, match="NaN"):
        ToolContext(np.array([1.0, np.nan, 2.0]), 0, 3)
    with pytest.raises(ValueError, match="not inside a series of 3 points"):
        ToolContext(np.ones(3), 2, 5)
    with pytest.raises(ValueError, match="empty"):
        ToolContext(np.ones(0), 0, 1)


def test_tools_import_without_torch() -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import anomamind.tools.registry, anomamind.tools.plotting, anomamind.tools.knowledge\n"
        "anomamind.tools.registry.default_registry()\n"
        "heavy = [m for m in ('torch', 'transformers', 'trl', 'vllm') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


EDGE_SERIES = {
    "constant": (np.full(300, 5.0), 100, 200),
    "tiny": (np.array([1.0, 2, 3, 2, 1, 2, 3, 2, 1, 9, 2, 3, 2, 1]), 0, 14),
    "window at the start": (np.sin(np.arange(150) / 3.0), 0, 100),
    "window at the end": (np.sin(np.arange(150) / 3.0), 100, 150),
    "quantised counts": (np.random.default_rng(2).poisson(0.3, 2000).astype(float), 1900, 2000),
    "one point window": (np.arange(50, dtype=float), 49, 50),
    "huge values": (1e12 + np.random.default_rng(3).standard_normal(500), 200, 300),
}


@pytest.mark.parametrize("case", sorted(EDGE_SERIES))
def test_no_tool_crashes_on_edge_cases(case: str) -> None:
    """Tools may refuse an edge case with a readable argument error, never crash inside."""
    values, start, end = EDGE_SERIES[case]
    registry = default_registry()
    for causal in (False, True):
        ctx = ToolContext(values, start, end, causal=causal)
        for name in registry.names():
            arguments = {"get_anomaly_type_definition": {"type_name": "other"}, "get_tool_semantics": {"tool_name": name}}
            result = registry.call(ctx, ToolCall(name, arguments.get(name, {})))
            assert result.ok or " failed: " not in result.error, f"{case}, causal={causal}: {result.error}"
            if result.ok:
                json.dumps(result.output, allow_nan=False)


def test_task_tools_follow_the_workflow_convention() -> None:
    from anomamind.envs.windowing import make_windows
    from anomamind.tools.registry import TaskTools
    from anomamind.types import Series

    values = np.sin(np.arange(1000) / 5.0)
    values[420] += 5
    series = Series(values, name="s", dataset="YAHOO")
    window = make_windows(series)[4]

    from anomamind.agents.roles import WindowTask

    def Task(mode: str, disabled: tuple[str, ...] = ()) -> WindowTask:  # noqa: N802 - reads like the class
        return WindowTask(series, window, preprocessing={"mode": mode}, disabled=disabled)

    tools = TaskTools()
    assert tools.schemas() == default_registry().schemas()
    calls = [ToolCall("global_diff_zscore", {}, id="1"), ToolCall("segment_statistics", {"end": 900}, id="2")]
    whole = tools.run_calls(calls, Task("whole-series"))
    assert whole[0].ok and 420 in {p["index"] for p in whole[0].output["flagged"]["points"]}
    assert whole[1].ok
    causal = tools.run_calls(calls, Task("causal"))
    assert causal[0].ok and "causal mode" in causal[1].error
    ablated = tools.run_calls(calls, Task("whole-series", disabled=("feature_extraction", "evaluator")))
    assert all("disabled" in r.error for r in ablated)
