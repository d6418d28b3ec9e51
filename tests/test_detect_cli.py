"""``anomamind detect`` on a synthetic series and on a TSB-AD-U CSV written by the test."""

from __future__ import annotations

import json

import numpy as np
import pytest

from anomamind.cli import main
from anomamind.envs.synthetic import generate_series, write_tsbad_csv


def trajectories(out):
    return [json.loads(line) for line in (out / "trajectories.jsonl").read_text().splitlines()]


def test_detect_synthetic_writes_json_and_png(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["detect", "synthetic:3", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    record = json.loads((out / "detection.json").read_text())
    assert set(record) >= {"series", "intervals", "settings", "trajectory_file"}
    assert record["intervals"], "the synthetic series has clear anomalies"
    first = record["intervals"][0]
    assert set(first) >= {"start", "end", "type", "explanation", "confidence"}
    assert f"[{first['start']}, {first['end']}]" in printed
    assert len(trajectories(out)) == len(range(0, record["series"]["length"], 100))
    assert (out / "detection.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_detect_csv_with_ablation(tmp_path):
    series = generate_series(5, length=1200)
    path = write_tsbad_csv(series, tmp_path)
    out = tmp_path / "out"
    assert main(["detect", str(path), "--out", str(out), "--set", "disable=[localization]", "--set", "evaluator=false"]) == 0
    record = json.loads((out / "detection.json").read_text())
    assert record["series"]["name"] == path.stem and record["series"]["labelled"]
    assert all(t["info"]["disabled"] == ["localization"] for t in trajectories(out))
    assert all(s["role"] != "evaluator" for t in trajectories(out) for s in t["steps"])


def kpi_values(n: int = 1500) -> np.ndarray:
    rng = np.random.default_rng(0)
    values = 10 + 3 * np.sin(np.arange(n) * 2 * np.pi / 96) + rng.normal(0, 0.2, n)
    values[[400, 1100]] += [5.0, -6.0]
    return values


@pytest.mark.parametrize("layout", ["value-only", "timestamp-value", "headerless"])
def test_detect_runs_on_a_users_export_without_labels(tmp_path, capsys, layout):
    values = kpi_values()
    stamps = np.datetime64("2024-02-01T00:00") + np.arange(values.size) * np.timedelta64(15, "m")
    lines = {
        "value-only": ["value"] + [f"{v:.4f}" for v in values],
        "timestamp-value": ["timestamp,value"] + [f"{str(t).replace('T', ' ')},{v:.4f}" for t, v in zip(stamps, values)],
        "headerless": [f"{v:.4f}" for v in values],
    }[layout]
    path = tmp_path / "ops" / "latency.csv"
    path.parent.mkdir()
    path.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    assert main(["detect", str(path), "--out", str(out)]) == 0
    record = json.loads((out / "detection.json").read_text())
    assert not record["series"]["labelled"] and record["series"]["dataset"] == "ops"
    assert "label-free" in record["settings"]["settings_source"]
    found = {i for iv in record["intervals"] for i in range(iv["start"], iv["end"] + 1)}
    assert {400, 1100} <= found
    if layout == "timestamp-value":
        spike = next(iv for iv in record["intervals"] if iv["start"] <= 400 <= iv["end"])
        assert spike["start_time"] <= "2024-02-05T04:00:00" <= spike["end_time"]
        assert "2024-02-05T04:00:00" in capsys.readouterr().out
    assert (out / "detection.png").is_file()


def test_detect_with_a_users_knowledge_entry(tmp_path):
    path = tmp_path / "latency.csv"
    path.write_text("value\n" + "".join(f"{v:.4f}\n" for v in kpi_values()))
    entry = tmp_path / "mine.yaml"
    entry.write_text(
        "dataset: LATENCY\ndescription: Request latency of my service.\nlabelling: [spikes]\n"
        "typical_types: [point-global]\nheuristic_detector:\n  thresholds: {spike: 1000.0}\n"
    )
    out = tmp_path / "out"
    assert main(["detect", str(path), "--out", str(out), "--knowledge", str(entry)]) == 0
    record = json.loads((out / "detection.json").read_text())
    assert record["series"]["dataset"] == "LATENCY"
    assert record["settings"]["settings_source"] == "knowledge memory (LATENCY)"
    assert record["intervals"] == []  # the entry's (absurd) threshold overrides the calibration
    entry.write_text("dataset: X\n")
    assert main(["detect", str(path), "--out", str(out), "--knowledge", str(entry)]) == 2


def test_detect_writes_json_before_a_failing_plot(tmp_path, capsys, monkeypatch):
    import anomamind.tools.plotting as plotting

    def broken(*args, **kwargs):
        raise RuntimeError("no room to draw")

    monkeypatch.setattr(plotting, "render_detection", broken)
    out = tmp_path / "out"
    assert main(["detect", "synthetic:3", "--out", str(out)]) == 1
    assert json.loads((out / "detection.json").read_text())["intervals"]
    assert "could not draw detection.png" in capsys.readouterr().err and not (out / "detection.png").exists()


def test_detect_works_on_values_near_the_float_limit(tmp_path):
    values = 1e308 * np.sin(np.arange(600) / 5.0)
    values[300] = -1.7e308
    path = tmp_path / "huge.csv"
    path.write_text("value\n" + "".join(f"{float(v)!r}\n" for v in values))
    out = tmp_path / "out"
    assert main(["detect", str(path), "--out", str(out)]) == 0
    record = json.loads((out / "detection.json").read_text())
    assert any(iv["start"] <= 300 <= iv["end"] and iv["confidence"] == 3 for iv in record["intervals"])
    assert all("inf" not in iv["explanation"] for iv in record["intervals"])
    assert (out / "detection.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_detect_on_a_long_series_writes_json_first_and_a_downsampled_plot(tmp_path, monkeypatch, capsys):
    import anomamind.envs.detect_cli as detect_cli
    import anomamind.tools.plotting as plotting

    monkeypatch.setattr(detect_cli, "PROMPT_POINT_LIMIT", 2_000)  # the 10M-point path, at 20k points
    drawn = {}
    real_envelope = plotting.envelope

    def spy(values, lo, hi, width_px):
        x, y = real_envelope(values, lo, hi, width_px)
        drawn.setdefault("sizes", []).append((hi - lo, x.size))
        assert (tmp_path / "out" / "detection.json").is_file()  # written before any drawing
        return x, y

    monkeypatch.setattr(plotting, "envelope", spy)
    values = np.tile(kpi_values(1500), 14)[:20_000]
    path = tmp_path / "long.csv"
    path.write_text("value\n" + "".join(f"{v:.4f}\n" for v in values))
    out = tmp_path / "out"
    assert main(["detect", str(path), "--out", str(out)]) == 0
    assert "without the detector prompts" in capsys.readouterr().out
    whole, points_drawn = drawn["sizes"][0]
    assert whole == 20_000 and points_drawn < 3_000  # the main panel: a per-pixel envelope
    lines = trajectories(out)
    assert 0 < len(lines) < 200 and all(t["detection"]["intervals"] for t in lines)
    assert all(not step["messages"] for t in lines for step in t["steps"] if step["role"] == "detector")
