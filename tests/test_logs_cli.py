"""`anomamind logs ...`: synth, info, train (resume), show, bench, and bad input on the command line."""

from __future__ import annotations

import json

import pandas as pd

from anomamind.cli import main


def test_synth_info_train_show_bench(tmp_path, capsys):
    log = tmp_path / "syn.log"
    assert main(["logs", "synth", "--out", str(log), "--lines", "4000", "--seed", "3", "--anomaly-rate", "0.05"]) == 0
    assert main(["logs", "info", str(log), "--set", "window.by=session"]) == 0
    info = capsys.readouterr().out
    assert "format synthetic" in info and "templates (Drain" in info and '"alert_windows"' in info
    train = ["logs", "train", str(log), "--out", str(tmp_path / "rules"), "--set", "window.by=session",
             "--set", "max_rounds=2", "--set", "candidates_per_round=2"]
    assert main(train) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["dataset"] == "SYNTHETIC" and summary["rules"] >= 1 and 0 <= summary["test"]["f1"] <= 1
    assert main(train) == 0  # resume: the finished rule set is kept
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["skipped"] is True
    rules = tmp_path / "rules" / "SYNTHETIC"
    manifest = json.loads((rules / "manifest.json").read_text())
    parts = manifest["split"]["parts"]
    assert manifest["modality"] == "logs" and manifest["window"]["by"] == "session"
    assert parts["train"]["line_range"][1] == parts["validation"]["line_range"][0] and parts["test"]["alert_windows"] >= 1

    assert main(["logs", "show", str(rules)]) == 0
    shown = capsys.readouterr().out
    assert "one window per session (log rules)" in shown and "def detect(lines: list[str]) -> bool:" in shown

    out = tmp_path / "bench"
    assert main(["logs", "bench", "--rules", str(rules), "--detector", "keyword", "--detector", "pca",
                 "--out", str(out)]) == 0
    table = (out / "table.md").read_text()
    assert "| SYNTHETIC | one window per session | rules (learned) |" in table
    assert "| SYNTHETIC | one window per session | keyword |" in table
    assert "test:" in table and "with alerts" in table and "load average" in table
    results = pd.read_csv(out / "results.csv")
    assert list(results["detector"]) == ["rules (learned)", "keyword", "pca"]
    rules_row = results.iloc[0]
    assert rules_row["f1"] == manifest["test"]["f1"] or abs(rules_row["f1"] - manifest["test"]["f1"]) < 1e-4
    assert (results["lines_per_s"] > 0).all()
    pca = results[results.detector == "pca"].iloc[0]
    assert pca["lines_per_s_with_parsing"] < pca["lines_per_s"]  # template detectors pay for parsing


def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    empty = tmp_path / "empty.log"
    empty.write_text("")
    assert main(["logs", "info", str(empty)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "empty.log: the file is empty" in err
    binary = tmp_path / "blob.log"
    binary.write_bytes(b"\x00\x01\x02binary")
    assert main(["logs", "train", str(binary), "--out", str(tmp_path / "r")]) == 2
    assert "looks like a binary file" in capsys.readouterr().err
    assert main(["logs", "info", str(tmp_path / "missing.log")]) == 2
    assert "no such log file" in capsys.readouterr().err
    assert main(["logs", "info", str(empty), "--set", "window.by=minutes"]) == 2
    assert "cut by one of" in capsys.readouterr().err
    assert main(["logs", "bench", "--rules", str(tmp_path / "nothing")]) == 2
    assert "no such rule set" in capsys.readouterr().err
