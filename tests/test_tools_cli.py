"""``anomamind tools list | call | plot`` on a CSV the test writes itself."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest

from anomamind.tools import cli


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


@pytest.fixture(scope="module")
def csv_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    values = np.sin(np.arange(600) / 6.0)
    values[250] += 8
    labels = np.zeros(600, dtype=int)
    labels[250] = 1
    path = tmp_path_factory.mktemp("data") / "001_TEST_id_1_Synthetic_tr_200_1st_250.csv"
    path.write_text("Data,Label\n" + "\n".join(f"{v:.6f},{l}" for v, l in zip(values, labels)) + "\n")
    return path


def test_list_by_group_and_as_schemas(capsys: pytest.CaptureFixture) -> None:
    assert run(["tools", "list", "--groups", "localization"]) == 0
    assert capsys.readouterr().out.split()[1] == "locate_candidates"
    assert run(["tools", "list", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) >= 19
    assert run(["tools", "list", "--groups", "nonsense"]) == 2
    assert "unknown tool group" in capsys.readouterr().err


def test_call_prints_the_tool_output(csv_file: Path, capsys: pytest.CaptureFixture) -> None:
    code = run(["tools", "call", "spikes_and_dips", "--data", str(csv_file), "--window", "200", "300"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert [p["index"] for p in out["spikes"]["points"]] == [250]


def test_call_reports_bad_input(csv_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert run(["tools", "call", "spikes_and_dips", "--data", str(csv_file), "--window", "200", "300", "--args", '{"half_width": 0}']) == 1
    assert "half_width must be >= 1" in capsys.readouterr().err
    assert run(["tools", "call", "segment_statistics", "--data", str(csv_file), "--window", "500", "700"]) == 2
    assert "not inside" in capsys.readouterr().err
    assert run(["tools", "call", "segment_statistics", "--data", str(tmp_path / "missing.csv"), "--window", "0", "10"]) == 2
    assert "missing.csv" in capsys.readouterr().err


def test_plot_writes_a_png(csv_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "w.png"
    assert run(["tools", "plot", "--data", str(csv_file), "--window", "200", "300", "--context", "20", "--labels", "--out", str(out)]) == 0
    assert out.read_bytes().startswith(b"\x89PNG")
