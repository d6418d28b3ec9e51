"""The rule sandbox stops hostile or broken rules and says why (both layers: the static
check, and the sandbox process when the static check is bypassed)."""

import numpy as np
import pytest

from anomamind.rules.policy import static_problems
from anomamind.rules.sandbox import RuleRejected, SandboxLimits, SandboxWorker, check_rule

VALUES = np.sin(np.arange(400) / 7.0)
VALUES[[50, 300]] += 6.0  # two spikes the good rule must find
BOUNDS = [(0, 200), (200, 400)]
LIMITS = SandboxLimits(time_limit_s=0.5, memory_limit_mb=256, seconds_per_million_points=0.0)

GOOD = """
import numpy as np
from anomamind.rules import features as F

def detect(values):
    # far from the window's median
    return (np.abs(F.robust_zscore(values)) > 3.0).astype(np.int8)
"""

HOSTILE = {
    "loops_forever": "def detect(values):\n    while True:\n        pass\n",
    "allocates_too_much": "import numpy as np\ndef detect(values):\n    big = np.ones(1 << 28)\n    return big[: values.size]\n",
    "opens_a_file": "def detect(values):\n    open('/etc/hostname').read()\n    return values > 0\n",
    "opens_a_socket": "import socket\ndef detect(values):\n    socket.create_connection(('127.0.0.1', 80))\n    return values > 0\n",
    "imports_os": "import os\ndef detect(values):\n    os.listdir('/')\n    return values > 0\n",
}


@pytest.fixture(scope="module")
def fresh():
    """A fork-mode worker: every call runs in a fresh child of one preloaded sandbox."""
    with SandboxWorker(LIMITS, fresh_process_per_call=True) as worker:
        yield worker


@pytest.fixture(scope="module")
def persistent():
    with SandboxWorker(LIMITS) as worker:
        yield worker


def test_good_rule_runs_and_matches_numpy(fresh, persistent):
    from anomamind.rules import features as F

    expected = np.concatenate([np.abs(F.robust_zscore(VALUES[a:b])) > 3.0 for a, b in BOUNDS]).astype(np.int8)
    assert list(np.flatnonzero(expected)) == [50, 300]
    assert np.array_equal(check_rule(GOOD, VALUES, BOUNDS, checker=fresh), expected)
    assert np.array_equal(persistent.run(GOOD, VALUES, BOUNDS), expected)


@pytest.mark.parametrize("case", ["opens_a_file", "opens_a_socket", "imports_os"])
def test_static_check_rejects_io_and_forbidden_imports(case, fresh):
    with pytest.raises(RuleRejected) as info:
        check_rule(HOSTILE[case], VALUES, BOUNDS, checker=fresh)
    assert info.value.kind == "static"
    assert ("open" in info.value.reason) or ("socket" in info.value.reason) or ("'os'" in info.value.reason)


def test_rule_that_loops_forever_is_stopped(fresh):
    with pytest.raises(RuleRejected) as info:
        check_rule(HOSTILE["loops_forever"], VALUES, BOUNDS, checker=fresh)
    assert info.value.kind == "timeout"


def test_rule_that_allocates_too_much_is_stopped(fresh):
    with pytest.raises(RuleRejected) as info:
        check_rule(HOSTILE["allocates_too_much"], VALUES, BOUNDS, checker=fresh)
    assert info.value.kind == "memory"


def test_sandbox_blocks_files_sockets_and_os_even_without_the_static_check(persistent):
    """Run hostile code straight in the worker: the runtime layer alone must stop it."""
    with pytest.raises(RuleRejected, match="NameError: name 'open' is not defined"):
        persistent.run(HOSTILE["opens_a_file"], VALUES, BOUNDS)
    with pytest.raises(RuleRejected, match="import of 'socket' is not allowed") as info:
        persistent.run(HOSTILE["opens_a_socket"], VALUES, BOUNDS)
    assert info.value.kind == "import"
    with pytest.raises(RuleRejected, match="import of 'os' is not allowed"):
        persistent.run(HOSTILE["imports_os"], VALUES, BOUNDS)
    # numpy's own file reader reaches open(); the seccomp filter kills the rule's process
    np_load = "import numpy as np\ndef detect(values):\n    np.load('/etc/hostname')\n"
    with pytest.raises(RuleRejected, match="system call that the sandbox forbids") as info:
        persistent.run(np_load, VALUES, BOUNDS)
    assert info.value.kind == "forbidden"
    # and the worker still works for the next rule
    assert persistent.run(GOOD, VALUES, BOUNDS).shape == VALUES.shape


def test_worker_recovers_after_a_hang(persistent):
    with pytest.raises(RuleRejected) as info:
        persistent.run(HOSTILE["loops_forever"], VALUES, BOUNDS)
    assert info.value.kind == "timeout"
    assert list(np.flatnonzero(persistent.run(GOOD, VALUES, BOUNDS))) == [50, 300]


@pytest.mark.parametrize(
    "source, kind, words",
    [
        ("import numpy as np\ndef detect(values):\n    return np.zeros(3)\n", "shape", "shape (3,)"),
        ("import numpy as np\ndef detect(values):\n    return values * 0.5\n", "dtype", "other than 0 and 1"),
        ("def detect(values):\n    return 1 / 0\n", "raised", "ZeroDivisionError"),
        ("def detect(values):\n    return values.astype(str)\n", "dtype", "dtype <U"),
    ],
)
def test_wrong_outputs_and_errors_are_reported(fresh, source, kind, words):
    with pytest.raises(RuleRejected) as info:
        check_rule(source, VALUES, BOUNDS, checker=fresh)
    assert info.value.kind == kind
    assert words in info.value.reason


def test_static_check_finds_escape_hatches():
    source = (
        "import numpy as np\n"
        "def detect(values):\n"
        "    values.__class__\n"
        "    np.abs = None\n"
        "    getattr(np, 'load')\n"
        "    np.lib.npyio\n"
        "    return values > 0\n"
    )
    problems = " ".join(static_problems(source))
    for expected in ("'__class__'", "assigning or deleting attribute 'abs'", "'getattr'", "'npyio'"):
        assert expected in problems
    assert static_problems("def detect(values) return 1") == ["syntax error at line 1: expected ':'"]
    assert "no top-level function detect" in static_problems("x = 1\n")[0]


def test_rules_may_use_the_project_tools_but_nothing_unloaded(persistent):
    uses_tools = (
        "import numpy as np\n"
        "from anomamind.tools.features_statistical import robust_zscore\n"
        "def detect(values):\n"
        "    # the tool library's robust z-score\n"
        "    return np.abs(robust_zscore(values)) > 3.0\n"
    )
    assert static_problems(uses_tools) == []
    assert list(np.flatnonzero(persistent.run(uses_tools, VALUES, BOUNDS))) == [50, 300]
    plotting = "import anomamind.tools.plotting\ndef detect(values):\n    return values > 0\n"
    with pytest.raises(RuleRejected, match="not preloaded"):
        persistent.run(plotting, VALUES, BOUNDS)


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie, dead but not yet reaped, counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_no_process_outlives_the_sandbox():
    """close() stops the sandbox process and every rule process it started."""
    worker = SandboxWorker(LIMITS)
    worker.run(GOOD, VALUES, BOUNDS, name="a")
    worker.run("def detect(values):\n    return values > 100\n", VALUES, BOUNDS, name="b")
    pids = [worker._zygote.pid, *(p.pid for p in worker._processes.values())]
    assert len(pids) == 3 and all(_alive(pid) for pid in pids)
    worker.close()
    assert not any(_alive(pid) for pid in pids)


def test_no_process_outlives_a_parent_that_dies_without_closing(tmp_path):
    """The sandbox process sees its control socket close when the parent dies, and its
    rule processes die with it."""
    import subprocess
    import sys
    import time

    script = (
        "import os, numpy as np\n"
        "from anomamind.rules.sandbox import SandboxWorker\n"
        "w = SandboxWorker()\n"
        "w.run('def detect(values):\\n    return values > 0\\n', np.zeros(10), [(0, 10)])\n"
        "print(w._zygote.pid, *(p.pid for p in w._processes.values()), flush=True)\n"
        "os._exit(0)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    pids = [int(p) for p in done.stdout.split()]
    assert len(pids) == 2, done.stderr
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(pid) for pid in pids)


def test_error_text_is_bounded(persistent):
    from anomamind.rules.sandbox import MAX_REASON_CHARS

    shouting = "def detect(values):\n    raise ValueError('x' * 100000)\n"
    with pytest.raises(RuleRejected) as info:
        persistent.run(shouting, VALUES, BOUNDS)
    assert info.value.kind == "raised"
    assert len(info.value.reason) < MAX_REASON_CHARS + 100 and "characters, cut)" in info.value.reason
    assert len(str(info.value)) < MAX_REASON_CHARS + 100


def test_without_os_confinement_only_trusted_rules_run(monkeypatch):
    """Where seccomp is unavailable, the sandbox refuses rules unless told they are trusted."""
    import anomamind.rules.sandbox as sandbox

    monkeypatch.setattr(sandbox, "confinement_problem", lambda: "seccomp is not available here (test)")
    with pytest.raises(sandbox.SandboxUnavailable) as info:
        SandboxWorker(LIMITS)
    message = str(info.value)
    assert "\n" not in message and "seccomp is not available here (test)" in message and "--trusted-rules" in message
    trusted = SandboxLimits(time_limit_s=LIMITS.time_limit_s, memory_limit_mb=256, trusted_rules=True)
    with SandboxWorker(trusted) as worker:
        assert list(np.flatnonzero(worker.run(GOOD, VALUES, BOUNDS))) == [50, 300]
        assert worker.confined is False


def test_commands_refuse_untrusted_rules_without_confinement(monkeypatch, tmp_path, capsys):
    """`anomamind bench --detector rules:FILE` and `rules bench` stop at once with one line
    (exit 2) without --trusted-rules, and run with it."""
    import pandas as pd

    import anomamind.rules.sandbox as sandbox
    from anomamind.cli import main

    monkeypatch.setattr(sandbox, "confinement_problem", lambda: "seccomp is not available here (test)")
    rule_file = tmp_path / "good.py"
    rule_file.write_text(GOOD)
    common = ["bench", "--data", "synthetic:2", "--detector", f"rules:{rule_file}", "--sample-plots", "0", "--no-progress"]
    capsys.readouterr()
    assert main([*common, "--out", str(tmp_path / "refused")]) == 2
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and "cannot confine them: seccomp is not available here (test)" in error
    assert "--trusted-rules" in error
    assert main([*common, "--out", str(tmp_path / "trusted"), "--trusted-rules"]) == 0
    assert (pd.read_csv(tmp_path / "trusted" / "per_series.csv")["status"] == "ok").all()
    capsys.readouterr()
    code = main(["rules", "bench", "--rules", str(tmp_path), "--data", str(tmp_path), "--datasets", "X",
                 "--out", str(tmp_path / "rb")])
    assert code == 2 and "--trusted-rules" in capsys.readouterr().err


def test_sandbox_environment_is_an_allow_list():
    from anomamind.rules.confinement import sandbox_environment

    parent = {"ANOMAMIND_API_KEY": "secret", "OPENAI_API_KEY": "secret", "HOME": "/home/x", "PATH": "/bin",
              "PYTHONPATH": "/src", "OPENBLAS_CORETYPE": "Haswell", "OMP_NUM_THREADS": "8"}
    env = sandbox_environment(parent)
    assert "secret" not in env.values() and "HOME" not in env and "PATH" not in env
    assert env["PYTHONPATH"] == "/src" and env["OPENBLAS_CORETYPE"] == "Haswell"
    assert env["OMP_NUM_THREADS"] == env["OPENBLAS_NUM_THREADS"] == "1"
