"""Hostile and extreme data get a message naming the file, never a hang, a memory blow-up
or a traceback: huge and sparse files, special files in folders, values near the float64
limit in a benchmark, and bad or tiny data given to ``prepare``."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from anomamind.cli import main as cli_main
from anomamind.envs.data_files import MAX_FILE_ENV
from anomamind.envs.datasets import resolve_data
from anomamind.types import DataError

TSBAD_NAME = "001_EXT_id_1_Test_tr_100_1st_300.csv"


def write_series(path: Path, values: np.ndarray, anomaly_at: int = 300) -> Path:
    labels = np.zeros(values.size, dtype=int)
    labels[anomaly_at] = 1
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"Data": values, "Label": labels}).to_csv(path, index=False)
    return path


def sine(n: int = 600, scale: float = 1.0) -> np.ndarray:
    return scale * np.sin(np.arange(n) / 5.0)


# --- sizes ------------------------------------------------------------------------------


def test_data_info_refuses_a_2gb_sparse_file_before_reading_it(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    big = tmp_path / "DS" / "big.csv"
    big.parent.mkdir()
    with open(big, "wb") as handle:
        handle.truncate(2 << 30)  # sparse: no data block is written
    assert cli_main(["data", "info", str(big)]) == 1
    err = capsys.readouterr().err
    assert str(big) in err and "2,048.0 MiB is over the 512.0 MiB limit" in err and MAX_FILE_ENV in err

    write_series(tmp_path / "DS" / TSBAD_NAME, sine())  # in a folder: reported, the rest loads
    assert cli_main(["data", "info", str(tmp_path / "DS")]) == 0
    out = capsys.readouterr().out
    assert "EXT" in out and f"skipped: {big}: 2,048.0 MiB is over" in out


def test_the_size_limit_is_configurable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_series(tmp_path / TSBAD_NAME, sine())
    monkeypatch.setenv(MAX_FILE_ENV, "0.001")
    with pytest.raises(DataError, match=r"bytes is over the 1,048 bytes limit"):
        resolve_data(str(path))
    monkeypatch.setenv(MAX_FILE_ENV, "lots")
    with pytest.raises(DataError, match=f"{MAX_FILE_ENV}='lots': expected a positive number"):
        resolve_data(str(path))
    monkeypatch.setenv(MAX_FILE_ENV, "1")
    assert len(resolve_data(str(path)).series) == 1


# --- special files ------------------------------------------------------------------------


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_folder_loads_report_special_files_like_other_bad_files(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    folder = tmp_path / "EXT"
    write_series(folder / TSBAD_NAME, sine())
    os.mkfifo(folder / "pipe.csv")  # reading it would block forever
    (folder / "device.csv").symlink_to(os.devnull)
    (folder / "dangling.csv").symlink_to(folder / "gone.csv")
    loaded = resolve_data(str(folder))
    assert len(loaded.series) == 1
    reasons = {Path(path).name: message for path, message in loaded.failures}
    assert "a FIFO (named pipe), not a regular file" in reasons["pipe.csv"]
    assert "a character device (through a symbolic link)" in reasons["device.csv"]
    assert "broken symbolic link" in reasons["dangling.csv"]
    with pytest.raises(DataError, match="pipe.csv: a FIFO"):  # named directly: the same message
        resolve_data(str(folder / "pipe.csv"))

    code = cli_main(["bench", "--data", str(folder), "--detector", "zscore", "--out", str(tmp_path / "out"),
                     "--no-progress", "--sample-plots", "0"])
    assert code == 0
    assert "pipe.csv: a FIFO" in capsys.readouterr().err
    assert "pipe.csv: a FIFO" in (tmp_path / "out" / "table.md").read_text()


# --- extreme values in a benchmark -----------------------------------------------------


def test_bench_on_values_near_the_float64_limit_finishes_with_plots(tmp_path: Path) -> None:
    values = sine(scale=1e308)
    values[300] = -1.7e308
    write_series(tmp_path / "data" / TSBAD_NAME, values)
    code = cli_main(["bench", "--data", str(tmp_path / "data"), "--detector", "zscore", "--out", str(tmp_path / "out"),
                     "--no-progress", "--sample-plots", "1"])
    assert code == 0
    assert (tmp_path / "out" / "table.md").is_file()
    assert len(list((tmp_path / "out" / "plots" / "zscore").glob("*.png"))) == 1


def test_a_plot_that_fails_names_the_file_and_the_run_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from anomamind.eval import report

    def broken_plot(*args, **kwargs):
        raise ValueError("arange: cannot compute length")

    monkeypatch.setattr(report, "plot_series", broken_plot)
    path = write_series(tmp_path / "data" / TSBAD_NAME, sine())
    with caplog.at_level(logging.WARNING):
        code = cli_main(["bench", "--data", str(tmp_path / "data"), "--detector", "zscore", "--out", str(tmp_path / "out"),
                         "--no-progress", "--sample-plots", "1"])
    assert code == 0 and (tmp_path / "out" / "summary.csv").is_file()
    messages = [r.getMessage() for r in caplog.records if "plot of zscore" in r.getMessage()]
    assert len(messages) == 1 and str(path) in messages[0] and "arange: cannot compute length" in messages[0]


# --- prepare: bad data is one line, tiny data works --------------------------------------


@pytest.mark.parametrize("kind", ["empty folder", "missing path", "garbage file"])
def test_prepare_on_bad_data_prints_one_line(tmp_path: Path, capsys: pytest.CaptureFixture, kind: str) -> None:
    pytest.importorskip("datasets")
    if kind == "empty folder":
        data, expected = tmp_path / "empty", "no CSV files found"
        data.mkdir()
    elif kind == "missing path":
        data, expected = tmp_path / "missing", "no such file or folder"
    else:
        data, expected = tmp_path / "garbage.csv", "not a readable CSV file"
        data.write_bytes(b"\x00\x01garbage\xff\n")
    assert cli_main(["prepare", "--data", str(data), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and expected in err and "Traceback" not in err


def test_prepare_on_one_series_saves_a_training_set_without_validation(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    pytest.importorskip("datasets")
    from anomamind.rl.train import DataSection, load_splits

    out = tmp_path / "prepared"
    assert cli_main(["prepare", "--data", "synthetic:1", "--window", "40", "--max-windows-per-series", "1",
                     "--out", str(out)]) == 0
    assert "validation: 0 windows" in capsys.readouterr().out
    train, validation = load_splits(DataSection(path=str(out)))
    assert len(train) > 0 and validation is None
