"""The learning experiment's environment mode (scripts/bench_grpo_learning.py --rollout
environment: its overrides and folders) and the side-by-side table of both rollout modes
(scripts/compare_grpo_rollouts.py), on small made-up reports."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"
sys.path.insert(0, str(SCRIPTS))

import bench_grpo_learning as bench  # noqa: E402
import compare_grpo_rollouts as compare  # noqa: E402


def test_the_environment_flag_sets_its_rollout_and_keeps_its_run_apart():
    single = bench.parse_args(["--data", "d", "--out", "r"])
    assert single.report == "benchmarks/train/grpo_learning" and bench.rollout_sets(single) == ([], [])
    assert bench.phase_name(single, "grpo") == "grpo"
    env = bench.parse_args(["--data", "d", "--out", "r", "--rollout", "environment"])
    assert env.report == str(Path("r") / "report") and bench.phase_name(env, "sft") == "sft_environment"
    sft, grpo = bench.rollout_sets(env)
    assert sft == ["rollout=environment"]
    assert grpo == ["rollout=environment", f"grpo.max_completion_length={bench.ENVIRONMENT_EPISODE_TOKENS}"]


def _metrics(f1: float) -> dict:
    row = {c: f1 for c in compare.COLUMNS} | {"windows": 4}
    return {"all": row, "IOPS": dict(row, windows=2), "teacher_miss": dict(row, windows=1)}


def _report(path: Path, seeds: list[int], f1: dict[str, float], command: str) -> Path:
    metrics = {"teacher/-": _metrics(0.5), "base/-": _metrics(0.1)}
    for seed in seeds:
        metrics |= {f"sft/{seed}": _metrics(f1["sft"] + seed / 100), f"grpo/{seed}": _metrics(f1["grpo"] + seed / 100)}
    quarter = {"steps": "1-2", "reward": 0.5, **{f"rewards/{t}/mean": 0.1 for t in compare.TERMS}}
    report = {
        "context": {"command": command, "data": "/abs/data/dev", "commit": "abc1234", "machine": "x86_64 2-core CPU",
                    "load_start": [1.0, 1.0, 1.0], "load_end": [2.0, 2.0, 2.0], "minutes": 60.0},
        "metrics": metrics,
        "grpo_training": {str(s): {"steps": 2, "quarters": [quarter]} for s in seeds},
    }
    path.write_text(json.dumps(report))
    return path


def test_both_rollouts_side_by_side(tmp_path):
    single = _report(tmp_path / "single.json", [0, 1], {"sft": 0.3, "grpo": 0.4},
                     "python scripts/bench_grpo_learning.py --data /abs/data/dev --out /abs/run1 --seeds 0 1")
    env = _report(tmp_path / "env.json", [0], {"sft": 0.2, "grpo": 0.1},
                  "python scripts/bench_grpo_learning.py --data /abs/data/dev --out /abs/run2 --rollout environment "
                  "--report /abs/run2/report")
    log = tmp_path / "run" / "seed_0" / "grpo_environment" / "log_history.json"
    log.parent.mkdir(parents=True)
    log.write_text(json.dumps([{"step": s, "reward": 0.1, "environment/submitted": v, "environment/feedback": v / 2,
                                "environment/refinements": 0.0, "environment/tool_calls": 1.0}
                               for s, v in ((1, 0.5), (2, 1.0))]))
    out = tmp_path / "table"
    assert compare.main(["--single-turn", str(single), "--environment", str(env),
                         "--environment-run", str(tmp_path / "run"), "--out", str(out)]) == 0
    text = (out / "README.md").read_text()
    assert "/abs/" not in text and str(tmp_path) not in text  # this machine's paths become placeholders
    assert "--data DATA --out RUN --rollout environment --report REPORT" in text
    assert any(line.startswith("- Commit: `") for line in text.splitlines()[:10])
    assert "| grpo | 0 | single_turn | 4 | 0.400 |" in text and "| grpo | 0 | environment | 4 | 0.100 |" in text
    assert "| 0 | single_turn | 0.300 | 0.400 | 0.300 | 0.400 | yes |" in text
    assert "| 0 | environment | 0.200 | 0.100 | 0.200 | 0.100 | no |" in text
    assert "| 1 |" not in text and "single_turn: [1]" in text  # a seed in one report only is named, not compared
    assert "0.400 / 0.400 (2)" in text  # per dataset (IOPS)
    assert "| 0 | 0.750 | 0.375 | 0.000 | 1.000 |" in text  # episode statistics: means over the steps
    rows = (out / "table.csv").read_text().splitlines()
    assert rows[0] == "phase,seed,rollout,subset,metric,value" and "grpo,0,environment,all,point_f1,0.1" in rows
    assert json.loads((out / "environment.json").read_text())["context"]["command"].endswith("--report REPORT")


def test_a_file_that_is_not_a_report_is_refused(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"metrics": {}}')
    with pytest.raises(SystemExit, match="bad.json: not a report"):
        compare.main(["--single-turn", str(bad), "--environment", str(bad), "--out", str(tmp_path / "o")])
    single = _report(tmp_path / "s.json", [0], {"sft": 0.3, "grpo": 0.4}, "python x")
    env = _report(tmp_path / "e.json", [1], {"sft": 0.3, "grpo": 0.4}, "python x")
    with pytest.raises(SystemExit, match="no seed in both"):
        compare.main(["--single-turn", str(single), "--environment", str(env), "--out", str(tmp_path / "o")])
