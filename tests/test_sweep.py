"""The sweep runner: variants as overrides, per-variant folders, skip on rerun, failures tabulated."""

from __future__ import annotations

import csv

import pytest
import yaml

from anomamind.config import ConfigError
from anomamind.rl.sweep import deep_merge, load_sweep, run_sweep


def _write(tmp_path, doc):
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_deep_merge_merges_mappings_and_replaces_the_rest():
    base = {"a": {"b": 1, "c": [1]}, "d": 1}
    merged = deep_merge(base, {"a": {"c": [2]}, "e": 3})
    assert merged == {"a": {"b": 1, "c": [2]}, "d": 1, "e": 3}
    assert base == {"a": {"b": 1, "c": [1]}, "d": 1}


def test_bad_sweep_files_are_rejected_with_the_reason(tmp_path):
    with pytest.raises(ConfigError, match="non-empty list"):
        load_sweep(_write(tmp_path, {"base": {}, "variants": []}))
    with pytest.raises(ConfigError, match="needs a 'name'"):
        load_sweep(_write(tmp_path, {"variants": [{"detector": "sr"}]}))
    with pytest.raises(ConfigError, match="kind"):
        load_sweep(_write(tmp_path, {"variants": [{"name": "x", "kind": "dance"}]}))
    with pytest.raises(ConfigError, match="share the name"):
        load_sweep(_write(tmp_path, {"variants": [{"name": "a b"}, {"name": "a_b"}]}))


def test_inference_sweep_runs_skips_finished_and_reports_failures(tmp_path):
    path = _write(
        tmp_path,
        {
            "name": "tiny",
            "metrics": ["f1", "best_f1"],
            "base": {"kind": "inference", "data": "synthetic:2", "detector": "zscore", "progress": False},
            "variants": [
                {"name": "z-values"},
                {"name": "z-diffs", "detector": "zscore-diff"},
                {"name": "broken", "detector": "no-such-detector"},
            ],
        },
    )
    out = tmp_path / "out"
    records = run_sweep(load_sweep(path), out)
    status = {r["name"]: r["status"] for r in records}
    assert status == {"z-values": "ok", "z-diffs": "ok", "broken": "failed"}
    assert "no-such-detector" in next(r for r in records if r["name"] == "broken")["error"]
    assert (out / "z-values" / "config.yaml").is_file()
    assert yaml.safe_load((out / "z-diffs" / "config.yaml").read_text())["detector"] == "zscore-diff"
    rows = list(csv.DictReader(open(out / "table.csv")))
    assert [r["variant"] for r in rows] == ["z-values", "z-diffs", "broken"]
    assert rows[2]["status"].startswith("failed")
    f1 = float(rows[0]["SYNTHETIC f1"])
    assert 0.0 <= f1 <= 1.0
    table = (out / "table.md").read_text()
    assert "| z-values |" in table and "failed" in table

    # a rerun skips finished variants (their result files are not rewritten) and retries the failed one
    stamp = (out / "z-values" / "result.json").stat().st_mtime_ns
    again = run_sweep(load_sweep(path), out)
    assert (out / "z-values" / "result.json").stat().st_mtime_ns == stamp
    assert [r["status"] for r in again] == ["ok", "ok", "failed"]


def test_a_sweep_without_data_says_so(tmp_path):
    path = _write(tmp_path, {"variants": [{"name": "x", "detector": "sr"}]})
    records = run_sweep(load_sweep(path), tmp_path / "out")
    assert records[0]["status"] == "failed"
    assert "--data" in records[0]["error"]
