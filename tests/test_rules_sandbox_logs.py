"""Log rules (``detect(lines) -> bool`` per window of log lines) run in the same sandbox as
series rules, with their own import allow-list."""

import numpy as np
import pytest

from anomamind.rules.policy import static_problems
from anomamind.rules.sandbox import RuleRejected, SandboxLimits, SandboxWorker, check_log_rule, vet_source

LIMITS = SandboxLimits(time_limit_s=2.0, memory_limit_mb=256, seconds_per_million_points=0.0)

WINDOWS = [
    ["INFO block 1 served", "INFO block 2 served"],
    ["INFO block 3 served", "ERROR disk failure on dn-7", "INFO retry"],
    [],
    ["WARN ünïcödé ✓ line", "ERROR timeout"],
]

ERRORS = """
import re
from collections import Counter

def detect(lines):
    # any ERROR line makes the window anomalous
    kinds = Counter(m.group(1) for m in (re.match(r"(ERROR|WARN)", line) for line in lines) if m)
    return kinds["ERROR"] > 0
"""


@pytest.fixture(scope="module")
def fresh():
    with SandboxWorker(LIMITS, fresh_process_per_call=True) as worker:
        yield worker


def test_log_rule_flags_one_value_per_window(fresh):
    flags = check_log_rule(ERRORS, WINDOWS, checker=fresh)
    assert flags.dtype == np.int8 and flags.tolist() == [0, 1, 0, 1]
    with SandboxWorker(LIMITS) as persistent:
        assert persistent.run_lines(ERRORS, WINDOWS, name="errors").tolist() == [0, 1, 0, 1]
        assert persistent.run_lines(ERRORS, []).tolist() == []
        assert persistent.run_lines(ERRORS, [[], []]).tolist() == [0, 0]


def test_log_rule_sees_the_lines_exactly(fresh):
    """Every window arrives as the same list of str (unicode and empty lines included)."""
    echo = (
        "def detect(lines):\n"
        "    # flags the window whose lines are exactly the expected ones\n"
        "    return lines == ['', 'WARN ünïcödé ✓ line', '  padded  ']\n"
    )
    windows = [["", "WARN ünïcödé ✓ line", "  padded  "], ["x"], [""]]
    assert check_log_rule(echo, windows, checker=fresh).tolist() == [1, 0, 0]


@pytest.mark.parametrize(
    "body, kind, words",
    [
        ("return 2", "dtype", "returned 2"),
        ("return 0.5", "dtype", "returned 0.5"),
        ("return [1]", "shape", "returned a list"),
        ("return None", "shape", "returned a NoneType"),
        ("return len(lines[5])", "raised", "IndexError"),
    ],
)
def test_wrong_verdicts_are_rejected(fresh, body, kind, words):
    source = f"def detect(lines):\n    # broken on purpose\n    {body}\n"
    with pytest.raises(RuleRejected) as info:
        check_log_rule(source, WINDOWS, checker=fresh)
    assert info.value.kind == kind and words in info.value.reason


def test_numpy_bools_and_ints_are_verdicts(fresh):
    source = "import numpy as np\ndef detect(lines):\n    # numpy answers count too\n    return np.int64(len(lines) > 2)\n"
    assert check_log_rule(source, WINDOWS, checker=fresh).tolist() == [0, 1, 0, 0]


def test_static_check_uses_the_log_allow_list():
    uses_re = "import re\ndef detect(lines):\n    return any(re.search('ERROR', x) for x in lines)\n"
    assert static_problems(uses_re, modality="logs") == []
    assert "import of 're' is not allowed" in static_problems(uses_re)[0]
    uses_scipy = "import scipy.stats\ndef detect(lines):\n    return False\n"
    assert "import of 'scipy.stats' is not allowed" in static_problems(uses_scipy, modality="logs")[0]
    assert "detect(lines)" in static_problems("x = 1\n", modality="logs")[0]
    with pytest.raises(RuleRejected) as info:
        vet_source("import os\ndef detect(lines):\n    return False\n", modality="logs")
    assert info.value.kind == "static"
    with pytest.raises(ValueError, match="unknown rule modality 'audio'"):
        static_problems(uses_re, modality="audio")


def test_runtime_import_check_uses_the_log_allow_list():
    """Bypass the static check: the sandbox's import hook refuses what logs may not import."""
    with SandboxWorker(LIMITS) as persistent:
        with pytest.raises(RuleRejected, match="import of 'scipy' is not allowed") as info:
            persistent.run_lines("import scipy\ndef detect(lines):\n    return False\n", WINDOWS)
        assert info.value.kind == "import"


def test_hanging_log_rule_is_stopped(fresh):
    with pytest.raises(RuleRejected) as info:
        check_log_rule("def detect(lines):\n    while True:\n        pass\n", WINDOWS, checker=fresh)
    assert info.value.kind == "timeout"


def test_lines_with_newlines_are_refused_before_sending(fresh):
    with pytest.raises(ValueError, match="log window 1: a line contains a newline"):
        fresh.run_lines(ERRORS, [["a"], ["b\nc"]])
