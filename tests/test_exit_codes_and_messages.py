"""Exit codes and terminal messages: a detector that failed everywhere fails the command,
a missing optional extra is named in one line, the Best-F1 warning is printed once, and
``train`` / ``sweep`` show progress and one-line summaries while the full logs go to files."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from anomamind.cli import main as cli_main
from anomamind.extras import EXTRA_OF_MODULE, MISSING_EXTRA
from anomamind.paths import CONFIG_DIR, REPO_ROOT


def bench_args(out: Path, *detectors: str) -> list[str]:
    return ["bench", "--data", "synthetic:2", *[a for d in detectors for a in ("--detector", d)],
            "--out", str(out), "--no-progress", "--sample-plots", "0"]


# --- bench exit codes ------------------------------------------------------------------


def test_bench_exits_1_when_a_detector_failed_on_every_series(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setitem(sys.modules, "stumpy", None)  # the matrixprofile extra is not installed
    assert cli_main(bench_args(tmp_path / "out", "zscore", "matrix-profile")) == 1
    err = capsys.readouterr().err
    assert re.search(r"detector 'matrix-profile' failed on every series: .*stumpy", err)
    assert "zscore" not in err


def test_bench_exits_0_when_failures_are_partial(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from anomamind.eval import bench
    from anomamind.eval.registry import DETECTORS

    monkeypatch.setitem(DETECTORS, "counting", "test_bench:make_counting")
    bench._DETECTORS.clear()
    from test_bench import tiny_series

    folder = tmp_path / "data" / "BETA"
    import pandas as pd

    for name in ("b0", "bad0"):  # the counting detector raises on series named bad*
        s = tiny_series(name, "BETA", 1)
        folder.mkdir(parents=True, exist_ok=True)
        pd.DataFrame({"Data": s.values, "Label": s.labels}).to_csv(folder / f"{name}.csv", index=False)
    code = cli_main(["bench", "--data", str(tmp_path / "data"), "--detector", "counting", "--out", str(tmp_path / "out"),
                     "--no-progress", "--sample-plots", "0"])
    assert code == 0


# --- missing optional extras -------------------------------------------------------------


@pytest.mark.parametrize(
    "module, argv",
    [
        ("datasets", ["prepare", "--data", "synthetic:1", "--out", "{tmp}/prepared"]),
        ("transformers", ["train", "--config", str(CONFIG_DIR / "train" / "smoke.yaml"), "--out", "{tmp}/run"]),
    ],
)
def test_training_commands_name_the_extra_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture, module: str, argv: list[str]) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # importing it raises ModuleNotFoundError
    assert cli_main([a.replace("{tmp}", str(tmp_path)) for a in argv]) == MISSING_EXTRA
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert f"no module '{module}'" in err and "pip install -e '.[train]'" in err


def test_the_extras_map_matches_pyproject() -> None:
    tomllib = pytest.importorskip("tomllib")
    extras = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for module, extra in EXTRA_OF_MODULE.items():
        names = {re.split(r"[<>=\[ ]", requirement, maxsplit=1)[0] for requirement in extras[extra]}
        assert module in names, f"{module} is not in the {extra!r} extra"


def test_the_readme_training_section_says_which_extra_to_install() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    section = readme.split("## Training the detector", 1)[1].split("\n## ", 1)[0]
    assert "pip install -q torch==2.13.0 && pip install -q -e \".[train]\"" in section


# --- the Best-F1 warning -------------------------------------------------------------------


def test_the_nan_best_f1_warning_is_printed_once_without_a_source_line(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "anomamind.cli", "bench", "--data", "synthetic:1", "--detector", "sr",
         "--detector", "zscore", "--out", str(tmp_path / "out"), "--no-progress", "--sample-plots", "0"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
        env={**os.environ, "PYTHONWARNINGS": "default"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [line for line in done.stderr.splitlines() if "no other fold to calibrate on" in line]
    assert len(lines) == 1, done.stderr
    assert "(sr on SYNTHETIC, zscore on SYNTHETIC)" in lines[0]
    assert ".py:" not in done.stderr and "warnings.warn" not in done.stderr and "cross_fitted_best_f1(" not in done.stderr


# --- train and sweep: progress and one line on the terminal, full logs in files ----------


def test_train_prints_a_progress_bar_and_one_line_and_logs_to_files(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    pytest.importorskip("trl")
    prepared = tmp_path / "prepared"
    assert cli_main(["prepare", "--data", "synthetic:2", "--window", "16", "--max-windows-per-series", "1",
                     "--out", str(prepared)]) == 0
    capsys.readouterr()
    code = cli_main(["train", "--config", str(CONFIG_DIR / "train" / "smoke.yaml"), "--out", str(tmp_path / "run"),
                     "--set", f"data.path={prepared}", "--set", "grpo.max_steps=2", "--set", "grpo.save_steps=10",
                     "--set", "validation.every_steps=0"])
    assert code == 0
    captured = capsys.readouterr()
    terminal = captured.out + captured.err
    assert "{'loss'" not in terminal and "'rewards/" not in terminal  # no per-step dicts
    assert "train: 100%" in captured.err and "reward" in captured.err  # the bar and its postfix
    last = captured.out.strip().splitlines()[-1]
    assert last.startswith("trained to step 2") and f"logs: {tmp_path / 'run' / 'logs'}" in last
    logs = [json.loads(line) for line in (tmp_path / "run" / "logs" / "trainer_log.jsonl").read_text().splitlines()]
    assert [entry["step"] for entry in logs if "loss" in entry] == [1, 2]
    assert all("rewards/format_reward/mean" in entry for entry in logs if "loss" in entry)  # the full dicts
    assert "training (grpo) from" in (tmp_path / "run" / "logs" / "train.log").read_text()


def test_sweep_prints_one_line_per_variant_and_logs_to_a_file(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "stumpy", None)
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(yaml.safe_dump({
        "name": "tiny", "metrics": ["f1"],
        "base": {"kind": "inference", "data": "synthetic:2", "progress": False, "sample_plots": 0},
        "variants": [{"name": "z", "detector": "zscore"}, {"name": "mp", "detector": "matrix-profile"}],
    }))
    assert cli_main(["sweep", str(sweep), "--out", str(tmp_path / "out")]) == 0
    captured = capsys.readouterr()
    assert re.search(r"^z \(inference\): ok in [\d.]+ s; SYNTHETIC f1 \d\.\d{3}$", captured.out, re.M)
    assert re.search(r"^mp \(inference\): failed: RuntimeError: detector 'matrix-profile' failed on every series", captured.out, re.M)
    assert "sweep: 100%" in captured.err and "INFO" not in captured.out + captured.err
    log = (tmp_path / "out" / "sweep.log").read_text()
    assert "running variant z (inference)" in log and "variant mp failed" in log
    assert not (tmp_path / "out" / "mp" / "result.json").exists()  # retried on the next run
