"""TSB-AD-U / EasyTSAD loading: the name parser, every bad-input case, directory loads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from anomamind.envs.loaders import (
    load_directory,
    load_easytsad,
    load_series,
    parse_tsbad_name,
)
from anomamind.types import DataError

GOOD_NAME = "001_YAHOO_id_1_WebService_tr_5_1st_6.csv"


def write_csv(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def rows(values, labels) -> str:
    return "Data,Label\n" + "".join(f"{v},{l}\n" for v, l in zip(values, labels))


def good_csv(path: Path, n: int = 10, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    labels = np.zeros(n, dtype=int)
    labels[n // 2] = 1
    return write_csv(path, rows(rng.normal(size=n), labels))


# --- the name parser --------------------------------------------------------------------


def test_parse_tsbad_name_reads_every_field():
    parsed = parse_tsbad_name("/some/where/380_IOPS_id_1_WebService_tr_1482_1st_1582.csv")
    assert parsed == {
        "index": 380,
        "dataset": "IOPS",
        "id": 1,
        "domain": "WebService",
        "train_end": 1482,
        "first_anomaly": 1582,
    }


def test_parse_tsbad_name_accepts_a_stem_without_extension():
    assert parse_tsbad_name("365_TODS_id_1_Synthetic_tr_500_1st_11")["dataset"] == "TODS"


@pytest.mark.parametrize(
    "name",
    ["series.csv", "001_YAHOO_1_WebService_tr_5_1st_6.csv", "001_YAHOO_id_x_Web_tr_5_1st_6.csv", "YAHOO_id_1_Web_tr_5_1st_6.csv"],
)
def test_parse_tsbad_name_rejects_other_names(name):
    assert parse_tsbad_name(name) is None


# --- one file ---------------------------------------------------------------------------


def test_load_series_reads_values_labels_and_name_fields(tmp_path):
    path = write_csv(tmp_path / GOOD_NAME, rows([1.5, 2, 3, 4, 5, 6, 7], [0, 0, 0, 0, 0, 1, 0]))
    series = load_series(path)
    assert series.values.dtype == np.float64
    np.testing.assert_array_equal(series.values, [1.5, 2, 3, 4, 5, 6, 7])
    np.testing.assert_array_equal(series.labels, [0, 0, 0, 0, 0, 1, 0])
    assert (series.name, series.dataset, series.domain) == (GOOD_NAME[:-4], "YAHOO", "WebService")
    assert (series.train_end, series.first_anomaly) == (5, 6)
    assert series.meta["id"] == 1 and series.source == str(path)


def test_unpatterned_name_still_loads_with_folder_as_dataset(tmp_path):
    series = load_series(good_csv(tmp_path / "MYDATA" / "machine-7.csv"))
    assert series.dataset == "MYDATA" and series.train_end is None and series.name == "machine-7"


def test_dataset_argument_overrides(tmp_path):
    assert load_series(good_csv(tmp_path / GOOD_NAME), dataset="X").dataset == "X"


BAD_FILES = {
    "extra_column": ("Data,Label,Extra\n1,0,3\n2,0,4\n", ["extra column", "Extra", "--column"]),
    "ambiguous_columns": ("a,b\n1,2\n3,4\n", ["several columns", "['a', 'b']", "--column"]),
    "headerless_two_numbers": ("1,2\n3,4\n", ["several columns", "--column"]),
    "bad_time": ("timestamp,value\n2024-01-01,1\nyesterday,2\n", ["unreadable time", "'yesterday'", "line 3"]),
    "labels_only": ("Label\n0\n1\n", ["no value column"]),
    "non_numeric_value": ("Data,Label\n1,0\nabc,0\n3,0\n", ["non-numeric", "'abc'", "line 3"]),
    "non_numeric_label": ("Data,Label\n1,0\n2,yes\n", ["non-numeric", "'yes'", "Label"]),
    "label_not_binary": ("Data,Label\n1,0\n2,2\n3,-1\n", ["labels must be 0 or 1", "2.0", "line 3"]),
    "label_missing_value": ("Data,Label\n1,0\n2,\n", ["labels must be 0 or 1", "NaN"]),
    "empty_file": ("", ["empty file"]),
    "whitespace_only": ("  \n\n", ["empty file"]),
    "header_only": ("Data,Label\n", ["empty file", "no rows"]),
    "ragged_rows": ("Data,Label\n1,0\n2,0,5,6\n", ["not a readable CSV"]),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_file_error_names_file_and_problem(tmp_path, case):
    text, expected = BAD_FILES[case]
    path = write_csv(tmp_path / f"{case}.csv", text)
    with pytest.raises(DataError) as info:
        load_series(path)
    message = str(info.value)
    assert message.startswith(str(path)), message
    for part in expected:
        assert part in message, (part, message)


# --- a user's own files: no labels, timestamps, a choice of column ------------------------


@pytest.mark.parametrize(
    "text",
    ["3.5\n4\n5\n6\n", "value\n3.5\n4\n5\n6\n", "Data\n3.5\n4\n5\n6\n"],
    ids=["headerless", "header", "tsbad-without-label"],
)
def test_value_only_files_load_without_labels(tmp_path, text):
    series = load_series(write_csv(tmp_path / "KPI" / "cpu.csv", text))
    np.testing.assert_array_equal(series.values, [3.5, 4, 5, 6])
    assert series.labels is None and series.timestamps is None
    assert (series.name, series.dataset) == ("cpu", "KPI")


def test_timestamp_value_export_keeps_parsed_times(tmp_path):
    text = "timestamp,value\n2024-03-01 00:00,1\n2024-03-01 00:05,2\n2024-03-01 00:10,9\n"
    series = load_series(write_csv(tmp_path / "kpi.csv", text))
    np.testing.assert_array_equal(series.values, [1, 2, 9])
    assert series.timestamps.dtype == np.dtype("datetime64[ns]")
    assert str(series.timestamps[2]) == "2024-03-01T00:10:00.000000000"
    assert series.labels is None


def test_headerless_dates_are_recognised_by_content(tmp_path):
    series = load_series(write_csv(tmp_path / "kpi.csv", "2024-03-01T00:00:00Z,1\n2024-03-01T01:00:00+01:00,2\n"))
    np.testing.assert_array_equal(series.values, [1, 2])
    assert series.timestamps[0] == series.timestamps[1]  # offsets converted to UTC


def test_label_column_by_name_and_text_columns_ignored(tmp_path):
    text = "time,host,cpu,is_anomaly\n1,a,0.5,0\n2,a,0.7,1\n3,a,0.6,0\n"
    series = load_series(write_csv(tmp_path / "kpi.csv", text))
    np.testing.assert_array_equal(series.values, [0.5, 0.7, 0.6])
    np.testing.assert_array_equal(series.labels, [0, 1, 0])
    np.testing.assert_array_equal(series.timestamps, [1, 2, 3])
    assert series.meta["value_column"] == "cpu"


def test_column_picks_by_name_or_position(tmp_path):
    path = write_csv(tmp_path / "kpi.csv", "timestamp,cpu,mem\n2024-01-01,1,10\n2024-01-02,2,20\n")
    np.testing.assert_array_equal(load_series(path, column="mem").values, [10, 20])
    np.testing.assert_array_equal(load_series(path, column=1).values, [1, 2])
    assert load_series(path, column="1").timestamps is not None
    with pytest.raises(DataError, match=r"no column 'disk'.*\['timestamp', 'cpu', 'mem'\]"):
        load_series(path, column="disk")
    headerless = write_csv(tmp_path / "two.csv", "1,2\n3,4\n")
    np.testing.assert_array_equal(load_series(headerless, column=1).values, [2, 4])


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="nope.csv: file not found"):
        load_series(tmp_path / "nope.csv")


def test_nan_and_inf_are_interpolated_with_a_warning(tmp_path):
    path = write_csv(tmp_path / "gaps.csv", "Data,Label\n1,0\n,0\n3,0\ninf,0\n5,0\nnan,0\n")
    with pytest.warns(UserWarning) as record:
        series = load_series(path, nan_policy="interpolate")
    np.testing.assert_allclose(series.values, [1, 2, 3, 4, 5, 5])  # trailing gap takes the last value
    assert series.meta["n_interpolated"] == 3
    message = str(record[0].message)
    assert str(path) in message and "3 NaN/inf" in message


def test_nan_rejected_when_policy_says_so(tmp_path):
    path = write_csv(tmp_path / "gaps.csv", "Data,Label\n1,0\n-inf,0\n3,0\n")
    with pytest.raises(DataError) as info:
        load_series(path, nan_policy="reject")
    assert str(path) in str(info.value) and "NaN/inf" in str(info.value) and "line 3" in str(info.value)


def test_all_nan_cannot_be_interpolated(tmp_path):
    path = write_csv(tmp_path / "void.csv", "Data,Label\nnan,0\nnan,0\n")
    with pytest.raises(DataError, match="every value"):
        load_series(path)


def test_unknown_nan_policy_is_rejected(tmp_path):
    with pytest.raises(DataError, match="nan_policy"):
        load_series(good_csv(tmp_path / "a.csv"), nan_policy="drop")


def test_series_shorter_than_min_length(tmp_path):
    path = good_csv(tmp_path / "short.csv", n=10)
    with pytest.raises(DataError) as info:
        load_series(path, min_length=100)
    assert str(path) in str(info.value) and "10 points" in str(info.value) and "100" in str(info.value)
    assert len(load_series(path, min_length=10)) == 10


def test_train_end_beyond_series_is_clamped_with_a_warning(tmp_path):
    # a benchmark file cut to its first points keeps its name: a warning, not a refusal
    path = good_csv(tmp_path / "001_YAHOO_id_1_WebService_tr_500_1st_6.csv", n=10)
    with pytest.warns(UserWarning, match=r"tr_500.*only 10 points.*clamped to 10"):
        series = load_series(path)
    assert series.train_end == 10 and series.meta["train_end_in_name"] == 500


# --- directories --------------------------------------------------------------------------


def make_tree(root: Path) -> None:
    good_csv(root / "YAHOO" / "001_YAHOO_id_1_WebService_tr_5_1st_6.csv", seed=1)
    good_csv(root / "YAHOO" / "002_YAHOO_id_2_WebService_tr_5_1st_6.csv", seed=2)
    good_csv(root / "WSD" / "010_WSD_id_1_WebService_tr_5_1st_6.csv", seed=3)
    good_csv(root / "MINE" / "plain.csv", seed=4)


def test_directory_load_sorted_with_dataset_from_name_or_folder(tmp_path):
    make_tree(tmp_path)
    result = load_directory(tmp_path)
    assert result.failures == []
    assert [s.source for s in result.series] == sorted(s.source for s in result.series)
    assert result.datasets == ["MINE", "WSD", "YAHOO"]


def test_directory_load_skips_and_reports_bad_files(tmp_path):
    make_tree(tmp_path)
    bad = write_csv(tmp_path / "YAHOO" / "003_YAHOO_id_3_WebService_tr_5_1st_6.csv", "Data,Label\n1,7\n")
    result = load_directory(tmp_path)
    assert len(result.series) == 4
    assert [p for p, _ in result.failures] == [str(bad)]
    assert "labels must be 0 or 1" in result.failures[0][1]


def test_duplicate_content_and_duplicate_names_are_reported_once(tmp_path):
    make_tree(tmp_path)
    original = tmp_path / "YAHOO" / "001_YAHOO_id_1_WebService_tr_5_1st_6.csv"
    copy = write_csv(tmp_path / "YAHOO" / "099_YAHOO_id_99_WebService_tr_5_1st_6.csv", original.read_text())
    same_name = good_csv(tmp_path / "ZZZ" / "plain.csv", seed=9)
    result = load_directory(tmp_path)
    assert len(result.series) == 4
    messages = dict(result.failures)
    assert "duplicate of" in messages[str(copy)] and "same content" in messages[str(copy)]
    assert "same file name" in messages[str(same_name)]
    assert (str(copy), str(original)) in result.duplicates


@pytest.mark.parametrize("wanted", [["yahoo"], ["YAHOO"], ["Yahoo", "wsd"], ["mine"]])
def test_dataset_filter_is_case_insensitive(tmp_path, wanted):
    make_tree(tmp_path)
    result = load_directory(tmp_path, datasets=wanted)
    assert {s.dataset.lower() for s in result.series} == {w.lower() for w in wanted}


def test_dataset_filter_matches_name_parsed_dataset_in_a_flat_folder(tmp_path):
    good_csv(tmp_path / "001_NAB_id_1_Traffic_tr_5_1st_6.csv", seed=1)
    good_csv(tmp_path / "002_WSD_id_1_WebService_tr_5_1st_6.csv", seed=2)
    result = load_directory(tmp_path, datasets=["nab"])
    assert [s.dataset for s in result.series] == ["NAB"]


def test_unknown_dataset_names_what_is_available(tmp_path):
    make_tree(tmp_path)
    with pytest.raises(DataError) as info:
        load_directory(tmp_path, datasets=["UCR"])
    assert "ucr" in str(info.value) and "YAHOO" in str(info.value) and str(tmp_path) in str(info.value)


def test_empty_folder_and_missing_folder_are_clear_errors(tmp_path):
    with pytest.raises(DataError, match="no CSV files"):
        load_directory(tmp_path)
    with pytest.raises(DataError, match="not a directory"):
        load_directory(tmp_path / "missing")


def test_file_list_keeps_listed_files_and_reports_missing_ones(tmp_path):
    make_tree(tmp_path / "data")
    listing = write_csv(
        tmp_path / "list.csv",
        "file_name\n001_YAHOO_id_1_WebService_tr_5_1st_6.csv\n010_WSD_id_1_WebService_tr_5_1st_6.csv\n"
        "777_UCR_id_1_Medical_tr_5_1st_6.csv\n",
    )
    result = load_directory(tmp_path / "data", file_list=str(listing))
    assert sorted(s.name for s in result.series) == [
        "001_YAHOO_id_1_WebService_tr_5_1st_6",
        "010_WSD_id_1_WebService_tr_5_1st_6",
    ]
    assert len(result.failures) == 1 and "777_UCR" in result.failures[0][1] and "not found" in result.failures[0][1]


def test_file_list_without_file_name_column(tmp_path):
    make_tree(tmp_path / "data")
    listing = write_csv(tmp_path / "list.csv", "name\nx.csv\n")
    with pytest.raises(DataError, match="file_name"):
        load_directory(tmp_path / "data", file_list=str(listing))


def test_tsbad_file_list_folder_is_not_loaded_as_series(tmp_path):
    make_tree(tmp_path)
    write_csv(tmp_path / "File_List" / "TSB-AD-U-Eva.csv", "file_name\n001_YAHOO_id_1_WebService_tr_5_1st_6.csv\n")
    assert load_directory(tmp_path).failures == []


def test_directory_min_length_reports_short_series(tmp_path):
    make_tree(tmp_path)
    good_csv(tmp_path / "YAHOO" / "005_YAHOO_id_5_WebService_tr_2_1st_2.csv", n=4)
    result = load_directory(tmp_path, min_length=5)
    assert len(result.series) == 4 and "shorter than the minimum of 5" in result.failures[0][1]


# --- EasyTSAD -------------------------------------------------------------------------------


def make_easytsad(root: Path, dataset: str, series: str, n_train: int = 6, n_test: int = 8) -> Path:
    folder = root / "UTS" / dataset / series
    folder.mkdir(parents=True)
    rng = np.random.default_rng(len(series))
    np.save(folder / "train.npy", rng.normal(size=n_train))
    np.save(folder / "test.npy", rng.normal(size=n_test))
    np.save(folder / "train_label.npy", np.zeros(n_train))
    test_labels = np.zeros(n_test)
    test_labels[3] = 1
    np.save(folder / "test_label.npy", test_labels)
    return folder


def test_easytsad_concatenates_train_and_test(tmp_path):
    folder = make_easytsad(tmp_path, "WSD", "1")
    make_easytsad(tmp_path, "Yahoo", "7")
    result = load_easytsad(tmp_path)
    assert result.failures == [] and len(result.series) == 2
    wsd = next(s for s in result.series if s.dataset == "WSD")
    assert len(wsd) == 14 and wsd.train_end == 6 and wsd.first_anomaly == 9
    np.testing.assert_array_equal(wsd.values[:6], np.load(folder / "train.npy"))
    assert load_easytsad(tmp_path / "UTS", datasets=["yahoo"]).series[0].dataset == "Yahoo"


def test_easytsad_bad_series_is_reported_and_skipped(tmp_path):
    make_easytsad(tmp_path, "WSD", "1")
    broken = make_easytsad(tmp_path, "WSD", "2")
    (broken / "test_label.npy").unlink()
    mismatched = make_easytsad(tmp_path, "WSD", "3")
    np.save(mismatched / "test_label.npy", np.zeros(3))
    result = load_easytsad(tmp_path)
    assert len(result.series) == 1
    messages = dict(result.failures)
    assert "missing test_label.npy" in messages[str(broken)]
    assert "test.npy has 8 points but test_label.npy has 3" in messages[str(mismatched)]


def test_easytsad_unknown_dataset(tmp_path):
    make_easytsad(tmp_path, "WSD", "1")
    with pytest.raises(DataError, match="available"):
        load_easytsad(tmp_path, datasets=["NAB"])
