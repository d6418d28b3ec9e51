"""The benchmark never serves a wrong answer: failed pairs are not cached, keys follow the
files a detector reads, cache writes are atomic and corrupt entries recomputed, one run at a
time writes an output folder, and pool workers die with a killed run."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from fake_chat_server import FakeChatServer, FakeError

from anomamind.cli import main as cli_main
from anomamind.eval import bench, bench_cache
from anomamind.eval.registry import DETECTORS
from anomamind.folder_lock import FolderLocked, folder_lock
from anomamind.types import Series

from test_bench import CALLS, tiny_set  # noqa: F401 - CALLS is filled by the counting detector

pytestmark = pytest.mark.usefixtures("counting_detector")


@pytest.fixture
def counting_detector(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(DETECTORS, "counting", "test_bench:make_counting")
    CALLS.clear()
    bench._DETECTORS.clear()
    yield
    for _, detector in bench._DETECTORS.values():  # rule sets hold a sandbox process
        if callable(getattr(detector, "close", None)):
            detector.close()
    bench._DETECTORS.clear()


def short_series(i: int, n: int = 200) -> Series:
    values = np.random.default_rng(i).normal(size=n)
    labels = np.zeros(n, dtype=np.int8)
    values[50] += 8.0
    labels[50] = 1
    return Series(values, labels, name=f"s{i}", dataset="D", train_end=50)


def run(series: list[Series], detectors: list[str], out: Path, **kwargs) -> pd.DataFrame:
    bench.run_benchmark(series, detectors, out, sample_plots=0, progress=False, **kwargs)
    return pd.read_csv(out / "per_series.csv", keep_default_na=False)


# --- failures are recorded as failures and computed again ------------------------------


def test_an_endpoint_that_refuses_is_a_failure_and_is_retried_once_fixed(tmp_path: Path) -> None:
    endpoint = {"fixed": False}

    def answer(body: dict):
        return "<think>quiet</think>[]" if endpoint["fixed"] else FakeError(401, '{"error": {"message": "bad key"}}')

    series = [short_series(0), short_series(1)]
    with FakeChatServer(answer) as server:
        backend = {"kind": "openai", "base_url": server.base_url, "model": "m", "api_key_env": "NO_KEY_NEEDED", "max_retries": 0}
        config = tmp_path / "llm.yaml"
        config.write_text(yaml.safe_dump({"backends": {"general": backend, "vision": backend, "detector": backend}}))
        options = {"llm-agent": {"config": str(config), "window": 100, "evaluator": False}}

        # refused credentials are fatal (issue 17): the run stops at the first pair, with one line
        with pytest.raises(bench.BenchAborted, match=r"HTTP 401 .*\$NO_KEY_NEEDED is not set"):
            run(series, ["llm-agent"], tmp_path / "out", detector_options=options)
        assert not list((tmp_path / "out" / "cache").rglob("*.json")), "a failure was cached"
        refused = len(server.requests)

        endpoint["fixed"] = True
        second = run(series, ["llm-agent"], tmp_path / "out", detector_options=options)
    assert list(second["status"]) == ["ok", "ok"] and not second["cached"].any()
    assert len(server.requests) > refused  # the pairs were computed again, not served from cache


TIMEOUT_RULE = """
import numpy as np

def detect(values):
    # never finishes: the sandbox's time limit stops it
    total = 0
    for i in range(10**12):
        total += i
    return values > total
"""

SPIKE_RULE = """
import numpy as np

def detect(values):
    # a point far above the window's mean
    return values > values.mean() + {k} * values.std()
"""


def test_a_rule_timeout_is_a_failure_and_is_not_cached(tmp_path: Path) -> None:
    rule = tmp_path / "slow.py"
    rule.write_text(TIMEOUT_RULE)
    name = f"rules:{rule}"
    options = {name: {"time_limit_s": 0.5}}
    first = run([short_series(0)], [name], tmp_path / "out", detector_options=options)
    assert first["status"].iloc[0] == "failed" and "slow" in first["error"].iloc[0]
    assert not list((tmp_path / "out" / "cache").rglob("*.json"))
    second = run([short_series(0)], [name], tmp_path / "out", detector_options=options)
    assert second["status"].iloc[0] == "failed" and not second["cached"].any()


# --- keys follow the content of what a detector reads ----------------------------------


def test_editing_a_rule_file_invalidates_its_cached_results(tmp_path: Path) -> None:
    rule = tmp_path / "rules" / "spike.py"
    rule.parent.mkdir()
    rule.write_text(SPIKE_RULE.format(k=4))
    series = [short_series(0), short_series(1)]
    name = f"rules:{rule}"
    first = run(series, [name], tmp_path / "out")
    assert (first["status"] == "ok").all() and first["recall"].astype(float).min() == 1.0
    assert run(series, [name], tmp_path / "out")["cached"].all()

    rule.write_text(SPIKE_RULE.format(k=100))  # now flags nothing
    edited = run(series, [name], tmp_path / "out")
    assert not edited["cached"].any(), "the old rule's results were served"
    assert edited["recall"].astype(float).max() == 0.0


def test_editing_a_prompt_named_by_an_agent_yaml_invalidates_its_cached_results(tmp_path: Path) -> None:
    prompt = tmp_path / "my_planner.md"
    prompt.write_text("Plan the analysis.")
    seen_plans: list[str] = []

    def answer(body: dict):
        system = body["messages"][0]["content"]
        if system.startswith("Plan"):
            seen_plans.append(system)
        return "<think>quiet</think>[]"

    series = [short_series(0)]
    with FakeChatServer(answer) as server:
        backend = {"kind": "openai", "base_url": server.base_url, "model": "m", "api_key_env": "NO_KEY_NEEDED", "max_retries": 0}
        config = tmp_path / "llm.yaml"
        config.write_text(yaml.safe_dump({"backends": {"general": backend, "vision": backend, "detector": backend},
                                          "planner": {"prompt": str(prompt)}}))
        options = {"llm-agent": {"config": str(config), "window": 100, "evaluator": False}}
        assert run(series, ["llm-agent"], tmp_path / "out", detector_options=options)["status"].iloc[0] == "ok"
        assert run(series, ["llm-agent"], tmp_path / "out", detector_options=options)["cached"].all()
        assert {plan.split("\n\n")[0] for plan in seen_plans} == {"Plan the analysis."}  # + the data rule

        prompt.write_text("Plan the analysis, step by step.")
        edited = run(series, ["llm-agent"], tmp_path / "out", detector_options=options)
    assert not edited["cached"].any(), "results of the old prompt were served"
    assert any(plan.startswith("Plan the analysis, step by step.") for plan in seen_plans)


def test_detector_inputs_follow_yaml_strings_but_not_outputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Unit test of the discovery itself: relative names, nested files, outputs left out."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "prompts").mkdir()
    prompt = tmp_path / "prompts" / "planner.md"
    prompt.write_text("plan carefully")
    agent = tmp_path / "agent.yaml"
    agent.write_text(yaml.safe_dump({"planner": {"prompt": "prompts/planner.md"}, "knowledge": "knowledge.yaml"}))
    knowledge = tmp_path / "knowledge.yaml"
    knowledge.write_text("YAHOO: {threshold: 3}\n")
    options = {"config": "agent.yaml", "trajectories": "traj.jsonl"}

    assert bench_cache.detector_inputs("llm-agent", options) == sorted(p.resolve() for p in (agent, prompt, knowledge))
    digests = [bench_cache.inputs_digest("llm-agent", options)]
    for path, text in ((prompt, "plan differently"), (knowledge, "YAHOO: {threshold: 4}\n"), (agent, agent.read_text() + "# edited\n")):
        path.write_text(text)
        digests.append(bench_cache.inputs_digest("llm-agent", options))
    assert len(set(digests)) == 4, "an edited input file kept the old key"
    (tmp_path / "traj.jsonl").write_text("{}\n")  # an output the detector writes is not an input
    assert bench_cache.inputs_digest("llm-agent", options) == digests[-1]


# --- atomic writes, corrupt entries ----------------------------------------------------


def test_a_truncated_cache_entry_is_recomputed_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    series = tiny_set()
    run(series, ["counting"], tmp_path)
    entry = sorted((tmp_path / "cache").rglob("*.npz"))[0]
    entry.write_bytes(entry.read_bytes()[:40])  # a crash mid-write on older code, a full disk
    CALLS.clear()
    with caplog.at_level(logging.WARNING):
        again = run(series, ["counting"], tmp_path)
    assert len(CALLS) == 1 and (again["status"] == "ok").all()
    assert int((~again["cached"]).sum()) == 1
    assert any(str(entry.with_suffix("")) in r.getMessage() and "unreadable" in r.getMessage() for r in caplog.records)


def test_a_failed_cache_write_leaves_no_entry_and_loses_no_result(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def disk_full(file, **arrays):  # writes part of the archive, then the disk is full
        handle = open(file, "wb") if isinstance(file, (str, Path)) else file
        handle.write(b"PK\x03\x04 half a zip")
        handle.flush()
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez_compressed", disk_full)
    first = run(tiny_set(), ["counting"], tmp_path)
    assert (first["status"] == "ok").all() and len(CALLS) == 5  # computed results stand
    assert not [p for p in (tmp_path / "cache").rglob("*") if p.is_file()], "a partial entry was left"
    monkeypatch.undo()
    monkeypatch.setitem(DETECTORS, "counting", "test_bench:make_counting")
    run(tiny_set(), ["counting"], tmp_path)
    assert len(CALLS) == 10  # nothing was cached, so everything ran again


# --- one run per output folder ----------------------------------------------------------


def test_a_second_run_on_a_busy_out_folder_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with folder_lock(tmp_path / "out", "a first bench"):
        with pytest.raises(FolderLocked, match="in use by pid .* \\(a first bench\\)"):
            bench.run_benchmark(tiny_set(), ["counting"], tmp_path / "out", sample_plots=0, progress=False)
        code = cli_main(["bench", "--data", "synthetic:2", "--detector", "sr", "--out", str(tmp_path / "out"),
                         "--no-progress", "--sample-plots", "0"])
        assert code == 75
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "in use by" in err and str(tmp_path / "out") in err
    assert CALLS == [] and not (tmp_path / "out" / "per_series.csv").exists()
    run(tiny_set(), ["counting"], tmp_path / "out")  # released: the next run proceeds
    assert len(CALLS) == 5


# --- pool workers die with the run -------------------------------------------------------

SLOW_BENCH = textwrap.dedent(
    """
    import os, sys, time
    import numpy as np
    from anomamind.eval import bench
    from anomamind.eval.registry import DETECTORS
    from anomamind.types import Series

    class Sleeper:
        name = "sleeper"
        def detect(self, series):
            open(os.path.join(sys.argv[1], f"worker-{os.getpid()}"), "w").close()
            time.sleep(120)

    def make(**options):
        return Sleeper()

    sys.modules["sleeper_module"] = sys.modules[__name__]
    DETECTORS["sleeper"] = "sleeper_module:make"
    series = [Series(np.arange(50.0), np.zeros(50, dtype=np.int8), name=f"s{i}", dataset="D") for i in range(2)]
    bench.run_benchmark(series, ["sleeper"], os.path.join(sys.argv[1], "out"), workers=2, progress=False)
    """
)


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads process states from /proc")
def test_pool_workers_die_when_the_run_is_killed(tmp_path: Path) -> None:
    script = tmp_path / "slow_bench.py"
    script.write_text(SLOW_BENCH)
    run_proc = subprocess.Popen([sys.executable, str(script), str(tmp_path)], stderr=subprocess.PIPE)
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 60
        while len(workers) < 2 and time.monotonic() < deadline and run_proc.poll() is None:
            time.sleep(0.1)
            workers = [int(p.name.split("-")[1]) for p in tmp_path.glob("worker-*")]
        assert len(workers) == 2, f"the workers did not start: {run_proc.stderr.read().decode()[-2000:] if run_proc.poll() is not None else ''}"
        os.kill(run_proc.pid, signal.SIGKILL)
        run_proc.wait(10)
        deadline = time.monotonic() + 10
        while any(_running(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [pid for pid in workers if _running(pid)], "pool workers outlived the killed run"
    finally:
        for pid in [run_proc.pid, *workers]:  # only the processes this test started
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        run_proc.wait(10)
        run_proc.stderr.close()


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads process states from /proc")
def test_a_worker_whose_owner_is_not_its_parent_still_dies_with_it(tmp_path: Path) -> None:
    """The fork-server case: the owner is watched by a thread instead of PR_SET_PDEATHSIG."""
    owner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    worker = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from anomamind.worker_lifetime import die_with_owner; "
        "die_with_owner(int(sys.argv[1]), poll_s=0.05); print('ready', flush=True); time.sleep(120)"
    ), str(owner.pid)], stdout=subprocess.PIPE, text=True)
    try:
        assert worker.stdout.readline().strip() == "ready"
        owner.kill()  # not reaped yet: a zombie counts as gone
        assert worker.wait(10) == 1
    finally:
        for proc in (owner, worker):
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        worker.stdout.close()


def test_a_tilde_string_that_names_no_user_is_not_a_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A folder option (an agent's tokenizer) holds JSON whose strings start with "~" (BPE
    tokens): "~nosuchuser" made Path.expanduser raise; it names no file."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tok").mkdir()
    (tmp_path / "tok" / "tokenizer.json").write_text(json.dumps({"vocab": {"~nosuchuser_xyz": 1, "~": 2}}))
    assert bench_cache.detector_inputs("llm-agent", {"tokenizer": "tok"}) == [(tmp_path / "tok" / "tokenizer.json").resolve()]
