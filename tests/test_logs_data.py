"""Log data: line formats, loading with labels, bad input, Drain templates, windows, the generator."""

from __future__ import annotations

import collections
import os

import numpy as np
import pytest

from anomamind.envs.log_formats import FORMATS, detect_format
from anomamind.envs.log_loaders import load_log, read_session_labels
from anomamind.envs.log_synthetic import ANOMALY_KINDS, generate_log, write_log
from anomamind.envs.log_templates import UNSEEN, parse_templates
from anomamind.envs.log_windows import LogWindowSpec, make_windows, window_labels, window_lines
from anomamind.types import DataError

# Hand-written lines in the Loghub layouts (invented content, not copied from Loghub).
BGL_LINES = [
    "- 1117000000 2005.06.01 R01-M0-N1-C:J02-U01 2005-06-01-10.00.00.000001 R01-M0-N1-C:J02-U01 RAS KERNEL INFO "
    "cache parity error corrected",
    "- 1117000060 2005.06.01 R01-M0-N1-C:J02-U01 2005-06-01-10.01.00.000001 R01-M0-N1-C:J02-U01 RAS KERNEL INFO "
    "17 alignment exceptions",
    "KERNDTLB 1117000120 2005.06.01 R01-M0-N1-C:J02-U01 2005-06-01-10.02.00.000001 R01-M0-N1-C:J02-U01 RAS KERNEL "
    "FATAL data TLB error interrupt",
    "- 1117000180 2005.06.01 R01-M0-N1-C:J02-U01 2005-06-01-10.03.00.000001 R01-M0-N1-C:J02-U01 RAS KERNEL INFO "
    "23 alignment exceptions",
]
THUNDERBIRD_LINE = ("- 1131000000 2005.11.03 tb12 Nov 3 08:00:01 tb12/tb12 sshd[123]: session opened for "
                    "user admin by (uid=0)")
HDFS_LINES = [
    "081109 203518 143 INFO dfs.DataNode$DataXceiver: Receiving block blk_111 src: /10.0.0.1:5000 dest: /10.0.0.2:50010",
    "081109 203519 35 INFO dfs.FSNamesystem: BLOCK* NameSystem.allocateBlock: /tmp/file. blk_-222",
    "081109 203520 143 INFO dfs.DataNode$PacketResponder: PacketResponder 0 for block blk_111 terminating",
    "081109 203521 35 WARN dfs.DataNode: Got exception while serving blk_-222 to /10.0.0.3",
]
HADOOP_LINES = [
    "2015-10-18 18:01:47,978 INFO [main] org.apache.hadoop.mapreduce.v2.app.MRAppMaster: Created MRAppMaster",
    "2015-10-18 18:01:48,100 WARN [main] org.apache.hadoop.hdfs.LeaseRenewer: Failed to renew lease",
    "java.net.ConnectException: Connection refused",
    "\tat sun.nio.ch.SocketChannelImpl.checkConnect(Native Method)",
    "2015-10-18 18:01:49,000 INFO [main] org.apache.hadoop.mapreduce.v2.app.MRAppMaster: Shutting down",
]


def test_each_format_parses_its_lines_and_is_recognised():
    samples = {"bgl": BGL_LINES, "thunderbird": [THUNDERBIRD_LINE], "hdfs": HDFS_LINES, "hadoop": HADOOP_LINES[:2]}
    for name, lines in samples.items():
        assert detect_format(lines).name == name
        for other in FORMATS.values():  # only the right format reads these lines
            if other.name != name:
                assert not all(other.header.match(line) for line in lines), (name, other.name)
    line = FORMATS["bgl"].parse(BGL_LINES[2])
    assert line.category == "KERNDTLB" and line.time == 1117000120.0
    assert line.message == "data TLB error interrupt" and not line.text.startswith("KERNDTLB")
    hdfs = FORMATS["hdfs"].parse(HDFS_LINES[1])
    assert hdfs.session == "blk_-222" and hdfs.category is None and hdfs.time is not None


def test_bgl_labels_come_from_the_first_field(tmp_path):
    path = tmp_path / "bgl.log"
    path.write_text("\r\n".join(BGL_LINES) + "\r\n\r\n")  # CRLF and a trailing blank line, as in Loghub
    data = load_log(path)
    assert data.format == "bgl" and len(data) == 4
    assert data.labels.tolist() == [0, 0, 1, 0] and data.categories[2] == "KERNDTLB"
    assert data.lines[0].startswith("1117000000 ") and not data.lines[0].endswith("\r")
    assert np.all(np.diff(data.times) == 60)


def test_hdfs_sessions_take_their_labels_from_the_csv(tmp_path):
    (tmp_path / "HDFS.log").write_text("\n".join(HDFS_LINES) + "\n")
    (tmp_path / "anomaly_label.csv").write_text("BlockId,Label\nblk_111,Normal\nblk_-222,Anomaly\n")
    data = load_log(tmp_path / "HDFS.log")
    assert data.sessions == ["blk_111", "blk_-222", "blk_111", "blk_-222"]
    assert data.labels.tolist() == [0, 1, 0, 1]
    windows = make_windows(data, LogWindowSpec(by="session"))
    assert [w.tolist() for w in windows] == [[0, 2], [1, 3]]
    assert window_labels(data, windows).tolist() == [0, 1]


def test_hadoop_folder_labels_applications_and_keeps_stack_traces(tmp_path):
    for app, lines in (("application_1445_0001", HADOOP_LINES), ("application_1445_0002", HADOOP_LINES[:1])):
        folder = tmp_path / app
        folder.mkdir()
        (folder / f"container_{app[12:]}_01_000001.log").write_text("\n".join(lines) + "\n")
    (tmp_path / "abnormal_label.txt").write_text(
        "### WordCount\nNormal:\n+ application_1445_0002\nMachine down:\n+ application_1445_0001\n")
    data = load_log(tmp_path)
    assert data.format == "hadoop" and len(data) == 6
    assert data.lines[3].startswith("\tat sun.nio") and data.times[3] == data.times[1]  # continuation line
    assert data.sessions == ["application_1445_0001"] * 5 + ["application_1445_0002"]
    assert data.labels.tolist() == [1, 1, 1, 1, 1, 0] and data.categories[0] == "Machine down"


def test_bad_input_gets_a_clear_message(tmp_path):
    bad = tmp_path / "bad.log"
    bad.write_text("\n".join([BGL_LINES[0], "this line is not BGL", BGL_LINES[1]]) + "\n")
    with pytest.raises(DataError, match=r"bad.log:2: does not match the bgl log format .*not BGL"):
        load_log(bad, "bgl")
    skipped = load_log(bad, "bgl", bad_lines="skip")
    assert len(skipped) == 2 and skipped.n_skipped == 1 and "bad.log:2" in skipped.skipped[0]
    empty = tmp_path / "empty.log"
    empty.write_text("")
    with pytest.raises(DataError, match="empty.log: the file is empty"):
        load_log(empty)
    blank = tmp_path / "blank.log"
    blank.write_text("\n  \n")
    with pytest.raises(DataError, match="only blank lines"):
        load_log(blank)
    binary = tmp_path / "binary.log"
    binary.write_bytes(b"\x7fELF\x02\x01\x01\x00\x00\x00" + bytes(range(256)))
    with pytest.raises(DataError, match="binary.log: looks like a binary file"):
        load_log(binary)
    unknown = tmp_path / "unknown.log"
    unknown.write_text("hello world\nsecond line\n")
    with pytest.raises(DataError, match="match none of the known log formats"):
        load_log(unknown)
    with pytest.raises(DataError, match="no such log file"):
        load_log(tmp_path / "missing.log")
    fifo = tmp_path / "pipe.log"
    os.mkfifo(fifo)
    with pytest.raises(DataError, match="pipe.log: a FIFO"):  # refused before it is read (reading would block)
        load_log(fifo)
    labels = tmp_path / "labels.csv"
    labels.write_text("BlockId,Label\nblk_1,Maybe\n")
    with pytest.raises(DataError, match=r"labels.csv:2: label 'Maybe' is not Anomaly/Normal"):
        read_session_labels(labels)


def test_synthetic_log_is_seeded_has_every_kind_and_round_trips(tmp_path):
    data = generate_log(3000, seed=3)
    again = generate_log(3000, seed=3)
    assert data.lines == again.lines and np.array_equal(data.labels, again.labels)
    assert generate_log(3000, seed=4).lines != data.lines
    assert set(data.categories) == {"-", *ANOMALY_KINDS}
    assert 2800 < len(data) < 3300 and 0.01 < data.labels.mean() < 0.15
    assert np.all(np.diff(data.times) >= 0)
    # sessions hold the workflow's steps in order; an ORDER session's response comes early
    steps = collections.defaultdict(list)
    for message, session in zip(data.messages, data.sessions):
        if session:
            steps[session].append(message.split()[1] if message.startswith("req_") else message.split()[0])
    kinds = {s: c for s, c in zip(data.sessions, data.categories) if s}
    normal = [v for s, v in steps.items() if kinds[s] == "-"]
    assert all(v[0] == "session" and v[-1] == "session" for v in normal)
    assert all(steps[s][1] == "responded" for s, k in kinds.items() if k == "ORDER")
    path = write_log(data, tmp_path / "synthetic.log")
    loaded = load_log(path)
    assert loaded.format == "synthetic" and loaded.lines == data.lines and loaded.sessions == data.sessions
    assert np.array_equal(loaded.labels, data.labels) and np.allclose(loaded.times, data.times)


def test_drain_templates_fit_on_the_training_part_and_mark_unseen_lines():
    data = generate_log(2000, seed=1)
    columns, templates = parse_templates(data.messages, fit_end=1500)
    assert columns.shape == (len(data),) and columns[:1500].min() == 0
    assert any(t.startswith("session <*> opened for user") for t in templates)
    opened = [c for c, m in zip(columns, data.messages) if m.startswith("session ") and " opened " in m]
    assert len(set(opened)) == 1  # one template for all "opened" lines, whatever the ids
    unseen = np.flatnonzero(columns == UNSEEN)
    assert all(i >= 1500 for i in unseen)
    _, novel = parse_templates(["disk full on /dev/sda1", "disk full on /dev/sdb1"], fit_end=1)
    assert len(novel) == 1


def test_windows_by_lines_time_and_session():
    data = generate_log(1500, seed=2)
    by_lines = make_windows(data, LogWindowSpec(by="lines", size=100), start=100, end=1050)
    assert [len(w) for w in by_lines] == [100] * 9 + [50] and by_lines[0][0] == 100 and by_lines[-1][-1] == 1049
    overlapping = make_windows(data, LogWindowSpec(by="lines", size=100, stride=50), end=300)
    assert [w[0] for w in overlapping] == [0, 50, 100, 150, 200, 250]
    by_time = make_windows(data, LogWindowSpec(by="time", size=60))
    assert sum(len(w) for w in by_time) == len(data)
    for w in by_time:
        assert data.times[w].max() - data.times[w].min() < 60
    sessions = make_windows(data, LogWindowSpec(by="session"))
    assert all(len({data.sessions[i] for i in w}) == 1 for w in sessions)
    assert sum(len(w) for w in sessions) == sum(s is not None for s in data.sessions)
    labels = window_labels(data, by_lines)
    assert labels.tolist() == [int(data.labels[w].any()) for w in by_lines]
    assert window_lines(data, by_lines[:1])[0][0] == data.lines[100]
    with pytest.raises(DataError, match="positive"):
        LogWindowSpec(by="time", size=0)
    with pytest.raises(DataError, match="cut by one of"):
        LogWindowSpec(by="minutes")


def test_windows_need_what_they_cut_by(tmp_path):
    path = tmp_path / "bgl.log"
    path.write_text("\n".join(BGL_LINES) + "\n")
    data = load_log(path)
    with pytest.raises(DataError, match="need session ids"):
        make_windows(data, LogWindowSpec(by="session"))
    data.times = None
    with pytest.raises(DataError, match="need a time on every line"):
        make_windows(data, LogWindowSpec(by="time", size=10))


def test_fetch_unpacks_a_tar_gz_log_archive_checked_by_md5(tmp_path):
    import hashlib
    import io
    import tarfile

    from test_data_fetch import ArchiveServer

    from anomamind.envs.fetch import FetchError, fetch, unpack

    log = write_log(generate_log(500, seed=0), tmp_path / "staging" / "synthetic.log")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as bundle:
        bundle.add(log, arcname="Logs/synthetic.log")
    payload = buffer.getvalue()
    config = tmp_path / "data.yaml"
    with ArchiveServer(payload) as server:
        config.write_text(f"sources:\n  logs:\n    url: {server.url}\n    archive: logs.tar.gz\n"
                          f"    md5: {hashlib.md5(payload).hexdigest()}\n")
        dest = fetch("logs", tmp_path / "data", config=config, log=lambda _: None)
        assert len(load_log(dest / "Logs" / "synthetic.log")) == len(load_log(log))
        with pytest.raises(FetchError, match="MD5 mismatch"):
            fetch("logs", tmp_path / "other", config=config, md5="0" * 32, log=lambda _: None)
    assert not (tmp_path / "other" / "logs.tar.gz").exists()
    evil = tmp_path / "evil.tar.gz"
    with tarfile.open(evil, "w:gz") as bundle:
        bundle.add(log, arcname="../escape.log")
    with pytest.raises(FetchError, match="outside"):
        unpack(evil, tmp_path / "out")
    assert not (tmp_path / "escape.log").exists()
