"""``anomamind detect`` on a synthetic series and on a TSB-AD-U CSV written by the test."""

from __future__ import annotations

import json

from anomamind.cli import main
from anomamind.envs.synthetic import generate_series, write_tsbad_csv


def test_detect_synthetic_writes_json_and_png(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["detect", "synthetic:3", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    record = json.loads((out / "detection.json").read_text())
    assert set(record) >= {"series", "intervals", "trajectory"}
    assert record["intervals"], "the synthetic series has clear anomalies"
    first = record["intervals"][0]
    assert set(first) >= {"start", "end", "type", "explanation", "confidence"}
    assert f"[{first['start']}, {first['end']}]" in printed
    assert len(record["trajectory"]) == len(range(0, record["series"]["length"], 100))
    assert (out / "detection.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_detect_csv_with_ablation(tmp_path):
    series = generate_series(5, length=1200)
    path = write_tsbad_csv(series, tmp_path)
    out = tmp_path / "out"
    assert main(["detect", str(path), "--out", str(out), "--set", "disable=[localization]", "--set", "evaluator=false"]) == 0
    record = json.loads((out / "detection.json").read_text())
    assert record["series"]["name"] == path.stem
    assert all(t["info"]["disabled"] == ["localization"] for t in record["trajectory"])
    assert all(s["role"] != "evaluator" for t in record["trajectory"] for s in t["steps"])


def test_detect_bad_source_is_a_clear_error(tmp_path, capsys):
    assert main(["detect", str(tmp_path / "missing.csv"), "--out", str(tmp_path)]) == 2
    assert "missing.csv: no such file" in capsys.readouterr().err
    assert main(["detect", "synthetic:abc", "--out", str(tmp_path)]) == 2
    assert "integer" in capsys.readouterr().err
