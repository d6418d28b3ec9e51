"""Every feature and localization tool on synthetic series with one planted anomaly:
its evidence must point at the plant and stay quiet on the clean series."""

from __future__ import annotations

import numpy as np
import pytest

from anomamind.tools import features_global, features_local, features_statistical, localization
from anomamind.tools.context import ToolContext, tail_scale
from anomamind.tools.registry import default_registry
from anomamind.types import ToolCall

N, PERIOD, W0, W1 = 3000, 50, 1000, 1200  # series length, season, analysed window
PLANT = 1100  # where every anomaly starts


def base_series(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(N)
    return np.sin(2 * np.pi * t / PERIOD) + 0.1 * rng.standard_normal(N)


def planted(kind: str) -> np.ndarray:
    x = base_series()
    t = np.arange(N)
    if kind == "spike":
        x[PLANT] += 6.0
    elif kind == "dip":
        x[PLANT] -= 6.0
    elif kind == "contextual":  # in range globally, wrong for its phase (a trough raised to the peak level)
        x[PLANT + 37] = 1.0
    elif kind == "level":
        x[PLANT : PLANT + 60] += 3.0
    elif kind == "variance":
        x[PLANT : PLANT + 50] += np.random.default_rng(5).standard_normal(50) * 1.5
    elif kind == "flat":
        x[PLANT : PLANT + 25] = x[PLANT]
    elif kind == "trend":  # a temporary ramp, then back to normal at PLANT + 80
        x[PLANT : PLANT + 80] += 0.04 * (t[PLANT : PLANT + 80] - PLANT)
    elif kind == "seasonal":  # one period at double frequency, same amplitude
        x[PLANT : PLANT + PERIOD] = np.sin(4 * np.pi * t[PLANT : PLANT + PERIOD] / PERIOD)
    return x


def run(kind: str, tool: str, **arguments: object) -> dict:
    ctx = ToolContext(planted(kind), W0, W1, dataset="synthetic-test")
    result = default_registry().call(ctx, ToolCall(tool, arguments))
    assert result.ok, result.error
    return result.output


def flagged_indices(output: dict, key: str = "flagged") -> set[int]:
    return {p["index"] for p in output[key]["points"]}


def near(indices: set[int] | list[int], target: int, slack: int = 2) -> bool:
    return any(abs(i - target) <= slack for i in indices)


# --- statistical ------------------------------------------------------------------------


def test_segment_statistics_reports_the_planted_extreme_and_level() -> None:
    out = run("spike", "segment_statistics")
    assert out["max"]["index"] == PLANT
    shifted = run("level", "segment_statistics", start=PLANT, end=PLANT + 59)
    clean = run("none", "segment_statistics", start=PLANT, end=PLANT + 59)
    assert shifted["mean_shift_sigma"] > 2.5 > abs(clean["mean_shift_sigma"])


@pytest.mark.parametrize("robust", [True, False])
def test_global_value_zscore_flags_only_the_spike(robust: bool) -> None:
    out = run("spike", "global_value_zscore", robust=robust)
    assert flagged_indices(out) == {PLANT}
    assert out["argmax"] == PLANT
    assert run("none", "global_value_zscore", robust=robust)["flagged"]["count"] == 0


def test_value_percentiles_puts_the_dip_in_the_lower_tail() -> None:
    out = run("dip", "value_percentiles", tail=0.1)
    assert PLANT in flagged_indices(out)
    assert out["min_percentile"] < 0.1
    assert run("none", "value_percentiles", tail=0.01)["flagged"]["count"] == 0


def test_distribution_shift_separates_the_shifted_side() -> None:
    out = run("level", "distribution_shift", start=PLANT - 60, end=PLANT + 59, split=PLANT)
    assert out["p_value"] < 1e-6 and out["median_shift_sigma"] > 2
    clean = run("none", "distribution_shift", start=PLANT - 60, end=PLANT + 59, split=PLANT)
    assert clean["p_value"] > 1e-3


# --- local structural -------------------------------------------------------------------


@pytest.mark.parametrize("tool", ["global_diff_zscore", "local_diff_zscore"])
def test_diff_zscores_flag_the_jump_edges(tool: str) -> None:
    out = run("spike", tool)
    assert flagged_indices(out) <= {PLANT, PLANT + 1} and PLANT in flagged_indices(out)
    assert run("none", tool, threshold=5.0)["flagged"]["count"] == 0


def test_second_difference_zscore_sees_the_spike_too() -> None:
    out = run("spike", "global_diff_zscore", order=2)
    assert near(flagged_indices(out), PLANT, 1)


def test_spikes_and_dips_separate_directions() -> None:
    spike = run("spike", "spikes_and_dips")
    dip = run("dip", "spikes_and_dips")
    assert {p["index"] for p in spike["spikes"]["points"]} == {PLANT} and spike["dips"]["count"] == 0
    assert {p["index"] for p in dip["dips"]["points"]} == {PLANT} and dip["spikes"]["count"] == 0
    clean = run("none", "spikes_and_dips")
    assert clean["spikes"]["count"] + clean["dips"]["count"] == 0


def test_level_shifts_find_both_edges_of_the_plateau() -> None:
    out = run("level", "level_shifts")
    found = {s["index"]: s["direction"] for s in out["shifts"]}
    assert near(found, PLANT) and near(found, PLANT + 60)
    assert found[min(found, key=lambda i: abs(i - PLANT))] == "up"
    assert run("none", "level_shifts")["count"] == 0


def test_variance_changes_find_the_noisy_stretch() -> None:
    out = run("variance", "variance_changes")
    volatile = [s["interval"] for s in out["segments"] if s["kind"] == "volatile"]
    assert volatile and all(PLANT - 10 <= s <= e <= PLANT + 60 for s, e in volatile)
    assert not [s for s in run("none", "variance_changes")["segments"] if s["kind"] == "volatile"]


def test_flat_segments_find_the_stuck_run() -> None:
    out = run("flat", "flat_segments")
    assert [s["interval"] for s in out["segments"]] == [[PLANT, PLANT + 24]]
    # the reference holds no other run this long: only the planted one itself
    assert out["segments"][0]["runs_as_long_in_reference"] == 1
    assert run("none", "flat_segments")["segment_count"] == 0


def test_flat_runs_with_tolerance() -> None:
    x = np.array([0, 1, 1.001, 0.999, 1.0, 1.0, 5, 5, 6], dtype=float)
    assert features_local.flat_runs(x, min_length=4, tolerance=0.01) == [(1, 5)]
    assert features_local.flat_runs(x, min_length=2) == [(4, 5), (6, 7)]


# --- global structural ------------------------------------------------------------------


def test_period_estimate_finds_the_season() -> None:
    out = run("none", "period_estimate")
    assert abs(out["period"] - PERIOD) <= 1 and out["strength"] > 0.8
    noise = ToolContext(np.random.default_rng(3).standard_normal(2000), 0, 100)
    assert default_registry().call(noise, ToolCall("period_estimate", {})).output["period"] is None


def test_seasonal_residual_flags_the_contextual_point() -> None:
    out = run("contextual", "seasonal_residual_zscore")
    assert near(flagged_indices(out), PLANT + 37, 1)
    # globally the value is ordinary: the value z-score does not see it
    assert run("contextual", "global_value_zscore")["flagged"]["count"] == 0
    assert run("none", "seasonal_residual_zscore")["flagged"]["count"] == 0


def test_phase_deviation_flags_the_deformed_period() -> None:
    out = run("seasonal", "phase_deviation")
    hits = flagged_indices(out)
    assert hits and all(PLANT <= i < PLANT + PERIOD for i in hits)
    assert out["flagged"]["count"] >= 10
    assert run("none", "phase_deviation")["flagged"]["count"] == 0


def test_trend_break_locates_the_slope_change() -> None:
    out = run("trend", "trend_break", start=W0, end=PLANT + 79)
    assert abs(out["break_index"] - PLANT) <= 3
    assert out["slope_after"] > out["slope_before"] + 0.03 and out["p_value"] < 1e-9
    assert out["deseasonalised_with_period"] == PERIOD
    assert run("none", "trend_break", start=W0, end=PLANT + 79)["sse_reduction"] < 0.2


def test_spectral_residual_flags_the_spike() -> None:
    out = run("spike", "spectral_residual")
    assert near(flagged_indices(out), PLANT, 1) and near([out["argmax"]], PLANT, 1)


def test_hinge_break_matches_a_brute_force_fit() -> None:
    rng = np.random.default_rng(7)
    t = np.arange(80.0)
    x = 0.2 * t + rng.standard_normal(80)
    x[50:] += 1.5 * (t[50:] - 50)
    fit = features_global.hinge_break(x)
    best_k, best_sse = None, np.inf
    for k in range(5, 75):
        design = np.column_stack([np.ones(80), t, np.maximum(t - k, 0)])
        coef, *_ = np.linalg.lstsq(design, x, rcond=None)
        sse = float(((design @ coef - x) ** 2).sum())
        if sse < best_sse:
            best_k, best_sse, best_coef = k, sse, coef
    assert fit["k"] == best_k
    assert fit["slope_before"] == pytest.approx(best_coef[1], rel=1e-6)
    assert fit["slope_after"] == pytest.approx(best_coef[1] + best_coef[2], rel=1e-6)


# --- localization -----------------------------------------------------------------------


@pytest.fixture(autouse=True)
def default_candidate_thresholds(monkeypatch: pytest.MonkeyPatch) -> None:
    """Localization tests must not depend on thresholds derived from real data."""
    monkeypatch.setattr(localization, "candidate_thresholds", lambda ctx: dict(localization.DEFAULT_THRESHOLDS))


@pytest.mark.parametrize("kind, target", [("spike", PLANT), ("dip", PLANT), ("contextual", PLANT + 37), ("level", PLANT)])
def test_locate_candidates_covers_the_plant(kind: str, target: int) -> None:
    out = run(kind, "locate_candidates")
    spans = [c["interval"] for c in out["candidates"]]
    assert any(s - 2 <= target <= e + 2 for s, e in spans), spans


def test_locate_candidates_is_quiet_on_clean_data() -> None:
    assert run("none", "locate_candidates")["count"] == 0


# --- raw numpy functions ----------------------------------------------------------------


def test_raw_functions_agree_with_the_tools() -> None:
    x = planted("spike")
    z = features_statistical.robust_zscore(x)
    assert int(np.argmax(np.abs(z))) == PLANT
    dz = features_local.diff_zscore(x)
    assert dz.shape == x.shape and int(np.argmax(dz)) == PLANT and dz[0] == 0
    sal = features_global.spectral_residual_score(x)
    assert abs(int(np.argmax(sal)) - PLANT) <= 1
    period, strength = features_global.estimate_period(x)
    assert abs(period - PERIOD) <= 1
    resid = features_global.seasonal_residual(x, PERIOD)
    assert int(np.argmax(np.abs(resid))) == PLANT
    assert tail_scale(np.zeros(10)) > 0


def test_causal_reference_ignores_the_future() -> None:
    x = planted("none")
    x[2000:] += 100.0  # a huge shift after the window must not change causal statistics
    causal = ToolContext(x, W0, W1, causal=True)
    stats = default_registry().call(causal, ToolCall("segment_statistics", {})).output
    assert abs(stats["reference"]["mean"]) < 0.1
    assert 40 < default_registry().call(causal, ToolCall("value_percentiles", {})).output["median_percentile"] < 60
    blind = ToolContext(x, W0, W1, causal=False)
    assert default_registry().call(blind, ToolCall("segment_statistics", {})).output["reference"]["mean"] > 30


def test_ks_two_sample_matches_scipy() -> None:
    from scipy import stats

    rng = np.random.default_rng(11)
    for a, b in [(rng.normal(size=100), rng.normal(0.4, size=100)), (rng.normal(size=37), rng.normal(size=80))]:
        d, p = features_statistical.ks_two_sample(a, b)
        assert d == pytest.approx(stats.ks_2samp(a, b).statistic)
        assert p == pytest.approx(stats.kstwobign.sf(np.sqrt(a.size * b.size / (a.size + b.size)) * d))


def test_same_phase_deviation_matches_a_loop() -> None:
    x = np.random.default_rng(12).standard_normal(400)
    fast = features_global.same_phase_deviation(x, 30, 3)
    slow = [
        x[t] - np.median([x[t - k * 30] for k in (1, 2, 3) if t - k * 30 >= 0]) if t >= 30 else np.nan
        for t in range(400)
    ]
    np.testing.assert_allclose(fast, slow)
    at = np.array([5, 65, 399])
    np.testing.assert_allclose(features_global.same_phase_deviation(x, 30, 3, at=at), fast[at])


def test_level_step_matches_a_loop() -> None:
    x = np.random.default_rng(13).standard_normal(60)
    step = features_local.level_step(x, 5)
    for t in range(60):
        expected = np.median(x[t : t + 5]) - np.median(x[t - 5 : t]) if 5 <= t <= 55 else np.nan
        np.testing.assert_allclose(step[t], expected)


def test_hinge_break_on_a_perfect_line_reports_no_break() -> None:
    for x in (np.full(50, 3.0), 2.0 * np.arange(50.0) + 1):
        fit = features_global.hinge_break(x)
        assert fit["p_value"] == 1.0 and fit["sse_reduction"] == 0.0
        assert fit["slope_before"] == pytest.approx(fit["slope_after"])
