"""The built-in tools and their groups, in the order the model sees them."""

from __future__ import annotations

from typing import Any, Callable

from anomamind.tools import features_global as global_
from anomamind.tools import features_local as local
from anomamind.tools import features_profile as profile
from anomamind.tools import features_statistical as statistical
from anomamind.tools import knowledge, localization

#: (tool function, group) for every built-in tool.
BUILTIN_TOOLS: list[tuple[Callable[..., dict[str, Any]], str]] = [
    (statistical.segment_statistics, "statistical"),
    (statistical.global_value_zscore, "statistical"),
    (statistical.value_percentiles, "statistical"),
    (statistical.distribution_shift, "statistical"),
    (local.global_diff_zscore, "local_structural"),
    (local.local_diff_zscore, "local_structural"),
    (local.spikes_and_dips, "local_structural"),
    (local.level_shifts, "local_structural"),
    (local.variance_changes, "local_structural"),
    (local.flat_segments, "local_structural"),
    (profile.feature_runs, "local_structural"),
    (global_.period_estimate, "global_structural"),
    (global_.seasonal_residual_zscore, "global_structural"),
    (global_.phase_deviation, "global_structural"),
    (global_.trend_break, "global_structural"),
    (global_.spectral_residual, "global_structural"),
    (localization.locate_candidates, "localization"),
    (profile.raw_value_outliers, "raw_values"),
    (knowledge.get_domain_knowledge, "knowledge_memory"),
    (knowledge.get_anomaly_type_definition, "knowledge_memory"),
    (knowledge.get_tool_semantics, "knowledge_memory"),
]
