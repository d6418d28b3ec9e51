"""Committed results stay true: every report under benchmarks/ names the commit and the
command it came from, and scripts/refresh_benchmarks.sh remakes every CPU table (the
others say where they were made)."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from anomamind.paths import REPO_ROOT

BENCHMARKS = REPO_ROOT / "benchmarks"
REFRESH = REPO_ROOT / "scripts" / "refresh_benchmarks.sh"
#: The header lines anomamind.provenance.header_lines writes; a commit marked "+changes"
#: (code that was never committed) does not match.
COMMIT = re.compile(r"^- Commit: `[0-9a-f]{7,40}`")
COMMAND = re.compile(r"^- Command: `[^`]+`")
HEAD_LINES = 30


def relative(path) -> str:
    return path.relative_to(REPO_ROOT).as_posix()


def reports() -> list:
    return sorted(BENCHMARKS.rglob("*.md"))


def tables() -> list:
    """Generated tables: reports other than the hand-written READMEs, and CSV files outside
    the rule-set folders (those hold a trained rule set: manifest, rules, test file list)."""
    csvs = [p for p in BENCHMARKS.rglob("*.csv") if not (p.parent / "manifest.json").is_file()]
    return sorted([p for p in reports() if p.name != "README.md"] + csvs)


@pytest.mark.parametrize("path", reports(), ids=relative)
def test_each_report_names_its_commit_and_command(path) -> None:
    head = path.read_text().splitlines()[:HEAD_LINES]
    assert any(COMMIT.match(line) for line in head), (
        f"{relative(path)}: no '- Commit: `<hash>`' line (uncommitted code: '+changes') in its first {HEAD_LINES} lines")
    assert any(COMMAND.match(line) for line in head), (
        f"{relative(path)}: no '- Command: `...`' line in its first {HEAD_LINES} lines")


def test_every_csv_has_a_report_beside_it() -> None:
    lonely = [relative(p) for p in tables() if p.suffix == ".csv" and not any(p.parent.glob("*.md"))]
    assert not lonely, f"CSV files without a report naming their commit and command: {lonely}"


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_the_refresh_script_remakes_every_cpu_table_and_names_the_others() -> None:
    listing = subprocess.run(["bash", str(REFRESH), "--list"], capture_output=True, text=True, check=True).stdout
    refreshed, elsewhere = set(), set()
    for line in listing.splitlines():
        if line.startswith("not refreshed: "):
            elsewhere.add(line.removeprefix("not refreshed: ").split(": ", 1)[0])
        else:
            refreshed.update(line.split(": ", 1)[1].split())
    assert refreshed and elsewhere
    missing = [p for p in sorted(refreshed | elsewhere) if not (REPO_ROOT / p).exists()]
    assert not missing, f"refresh_benchmarks.sh names files that are not committed: {missing}"
    covered = refreshed | elsewhere
    uncovered = [relative(p) for p in tables()
                 if relative(p) not in covered and relative(p.parent) not in covered]
    assert not uncovered, f"tables scripts/refresh_benchmarks.sh neither remakes nor lists as made elsewhere: {uncovered}"
