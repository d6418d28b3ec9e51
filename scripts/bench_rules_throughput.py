"""Rule inference throughput in points per second, for trained rule sets; optionally side by
side with the code of another commit (what the sandbox's isolation costs).

Runs each dataset's rule set (``benchmarks/rules/<DS>/``) through the benchmark runner's
detector (``rules:PATH``) over every series of that dataset, once with one call per
series (``detect``, what ``anomamind bench`` does) and once with one call per rule for all
series (``detect_many``), after one warm-up series so the sandbox's start-up (importing
numpy/scipy, about a second) is not counted, and reports the fastest of ``--repeats``
passes (on a shared box other jobs only add time). It also times rule checks (``check_rule``: static check plus one run in a fresh
process on 8 windows of the dataset). Every measurement runs in its own Python process;
with ``--baseline REV`` the same measurements run on the code of commit REV (exported with
``git archive`` into a temporary folder), alternating with the current code, so both see
the same machine load; the fastest of ``--rounds`` counts. Writes a markdown table with the
exact command and machine.

    python scripts/bench_rules_throughput.py --rules benchmarks/rules \
        --data ../shared/data/tsbad/dev --datasets YAHOO TODS IOPS WSD \
        --repeats 3 --rounds 3 --baseline e766c1d --out benchmarks/rules/throughput.md
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODES = ("per series (detect)", "batched (detect_many)", "checks (check_rule)")


def measure(rules: Path, data: str, dataset: str, repeats: int) -> dict:
    """Seconds (the fastest of ``repeats`` passes) per mode on one dataset, with this
    process's ``anomamind`` (current code, or a baseline through PYTHONPATH)."""
    import numpy as np

    import anomamind
    from anomamind.envs.loaders import load_directory
    from anomamind.rules.detector import make_rule_detector
    from anomamind.rules.rule import rule_windows
    from anomamind.rules.sandbox import SandboxWorker, check_rule

    series = load_directory(data, datasets=[dataset]).series
    detector = make_rule_detector(rules / dataset)
    result = {"series": len(series), "points": sum(len(s) for s in series), "rules": len(detector.rule_set.rules),
              "code_path": str(Path(anomamind.__file__).resolve().parent)}
    try:
        detector.detect(series[0])  # warm-up: starts the sandbox
        for mode, run in ((MODES[0], lambda: [detector.detect(s) for s in series]),
                          (MODES[1], lambda: detector.detect_many(series))):
            passes = []
            for _ in range(repeats):
                start = time.perf_counter()
                run()
                passes.append(time.perf_counter() - start)
            result[mode] = min(passes)
    finally:
        detector.close()
    length = detector.rule_set.window_length
    sample = np.concatenate([s.values for s in series])[: 8 * length]
    bounds = rule_windows(sample.size, length)
    with SandboxWorker(detector.worker.limits, fresh_process_per_call=True) as checker:
        check_rule(detector.rule_set.rules[0].source, sample, bounds, checker=checker)  # warm-up
        passes = []
        for _ in range(repeats):
            start = time.perf_counter()
            for rule in detector.rule_set.rules:
                check_rule(rule.source, sample, bounds, checker=checker)
            passes.append((time.perf_counter() - start) / len(detector.rule_set.rules))
    result[MODES[2]] = min(passes)
    return result


def export_commit(revision: str, into: Path) -> str:
    """Unpack ``revision`` into ``into`` and lay out its packages as ``anomamind.*`` (the
    project maps top-level folders onto subpackages); returns the folder for PYTHONPATH."""
    commit = subprocess.run(["git", "rev-parse", "--short", revision], cwd=REPO, check=True,
                            capture_output=True, text=True).stdout.strip()
    archive = subprocess.run(["git", "archive", "--format=tar", commit], cwd=REPO, check=True, capture_output=True).stdout
    source = into / "source"
    source.mkdir()
    with tarfile.open(fileobj=__import__("io").BytesIO(archive)) as tar:
        tar.extractall(source, filter="data")
    mapping = tomllib.loads((source / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    packages = into / "packages"
    for package, folder in sorted(mapping.items()):
        target = packages.joinpath(*package.split("."))
        if package == "anomamind":
            target.mkdir(parents=True)
            for item in (source / folder).iterdir():
                (target / item.name).symlink_to(item)
        elif not target.exists():
            target.symlink_to(source / folder)
    return commit


def run_measurement(args: argparse.Namespace, dataset: str, pythonpath: str | None) -> dict:
    """One measurement in a fresh process; with ``pythonpath``, of the code found there."""
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    command = [sys.executable, str(Path(__file__).resolve()), "--measure", dataset,
               "--rules", str(Path(args.rules).resolve()), "--data", str(Path(args.data).resolve()),
               "--repeats", str(args.repeats), "--datasets", dataset]
    # not run from the checkout: its anomamind/ folder would shadow the baseline's
    done = subprocess.run(command, env=env, cwd=pythonpath or tempfile.gettempdir(), capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"measuring {dataset} failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if pythonpath and not result["code_path"].startswith(str(Path(pythonpath).resolve().parent)):
        raise RuntimeError(f"the baseline measurement ran the code in {result['code_path']}, not {pythonpath}")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rules", required=True, type=Path, help="folder with one rule set per dataset")
    parser.add_argument("--data", required=True, help="data folder (TSB-AD-U CSVs)")
    parser.add_argument("--datasets", nargs="+", required=True)
    parser.add_argument("--repeats", type=int, default=3, help="timed passes per measurement (the fastest counts)")
    parser.add_argument("--rounds", type=int, default=2,
                        help="with --baseline: measurements per dataset and code, alternating (the fastest counts)")
    parser.add_argument("--baseline", default=None, metavar="REV", help="also measure the code of this commit")
    parser.add_argument("--out", default=None, help="write the markdown table here")
    parser.add_argument("--measure", default=None, help=argparse.SUPPRESS)  # internal: one dataset, JSON out
    args = parser.parse_args(argv)
    if args.measure:
        print(json.dumps(measure(args.rules, args.data, args.measure, args.repeats)))
        return 0

    load_start = os.getloadavg()[0]
    codes = {"current": None}
    with tempfile.TemporaryDirectory() as tmp:
        if args.baseline:
            base_commit = export_commit(args.baseline, Path(tmp))
            codes = {"current": None, f"baseline {base_commit}": str(Path(tmp) / "packages")}
        results: dict[str, dict[str, list[dict]]] = {code: {} for code in codes}
        for dataset in args.datasets:
            for round_index in range(args.rounds if args.baseline else 1):
                order = list(codes) if round_index % 2 == 0 else list(reversed(codes))
                for code in order:
                    result = run_measurement(args, dataset, codes[code])
                    results[code].setdefault(dataset, []).append(result)
                    print(f"{code} {dataset}: " + ", ".join(f"{m} {result[m]:.3f} s" for m in MODES), flush=True)
    from anomamind.provenance import command_line, header_lines  # not in --measure: a baseline may lack it

    def best(code: str, dataset: str, key: str) -> float:
        return min(r[key] for r in results[code][dataset])

    lines = [
        "# Rule inference throughput",
        "",
        *header_lines(command_line(argv=argv), split=f"every series of each dataset of {args.data}"),
        "",
        "Timed: all rules of the set over all series, with one call per series (`RuleSetDetector.detect`, what "
        "`anomamind bench` does) and with one call per rule for all series (`detect_many`), after a warm-up "
        "series (sandbox start-up not counted); checks: seconds per `check_rule` (static check and one run in a "
        f"fresh process) on 8 windows of the dataset. Every measurement ran in its own process with {args.repeats} "
        "passes" + (f", each code {args.rounds} times per dataset, alternating" if args.baseline else "")
        + ". The table shows the fastest pass: on a shared box other jobs only add time, so the fastest pass is "
        f"the closest to the code's own cost (load average {load_start:.1f} at the start).",
        "",
        "| code | dataset | calls | series | points | rules | seconds | points/s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for code in codes:
        for dataset in args.datasets:
            first = results[code][dataset][0]
            for mode in MODES[:2]:
                seconds = best(code, dataset, mode)
                lines.append(f"| {code} | {dataset} | {mode} | {first['series']} | {first['points']} | "
                             f"{first['rules']} | {seconds:.2f} | {first['points'] / seconds:,.0f} |")
        for mode in MODES[:2]:
            points = sum(results[code][d][0]["points"] for d in args.datasets)
            seconds = sum(best(code, d, mode) for d in args.datasets)
            series = sum(results[code][d][0]["series"] for d in args.datasets)
            lines.append(f"| {code} | all | {mode} | {series} | {points} | | {seconds:.2f} | {points / seconds:,.0f} |")
    lines += ["", "Rule checks (seconds per `check_rule` call, a fresh process each):", "",
              "| code | " + " | ".join(args.datasets) + " |", "|---|" + "---|" * len(args.datasets)]
    for code in codes:
        lines.append(f"| {code} | " + " | ".join(f"{best(code, d, MODES[2]):.3f}" for d in args.datasets) + " |")
    if args.baseline:
        current, base = codes
        lines += ["", f"Throughput of the current code relative to {base} (all datasets, fastest passes):", ""]
        for mode in MODES[:2]:
            ratio = (sum(best(base, d, mode) for d in args.datasets)
                     / sum(best(current, d, mode) for d in args.datasets))
            lines.append(f"- {mode}: {ratio:.2f}x")
    table = "\n".join(lines) + "\n"
    print(table)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
