"""Batch inference with a (trained) detector over prepared windows.

The upstream stages (locate, plan, act) were run once by ``anomamind prepare`` and stored
with each window's detector prompt; here only the detector runs, in batches, through any
chat backend: a local transformers model on CPU/GPU (windows batched), a vLLM offline
engine on GPU nodes, or an OpenAI-compatible server (a vLLM server, say) with concurrent
requests. Answers are appended to ``OUT/detections.jsonl`` as they arrive (with the
server's ``finish_reason`` and token usage), so an interrupted run resumes where it
stopped; the run ends with point metrics per dataset and the measured throughput in
``OUT/summary.json``. A window whose request fails (timeout, oversized reply, a prompt
over the backend's context, ...) is counted by kind with the first error of each kind and
is not written, so a rerun tries it again; a fatal backend error (refused credentials, an
endpoint that does not answer) stops the run. An answer cut at ``max_tokens`` predicts
nothing and is counted as ``cut_at_max_tokens``.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from anomamind.agents.backends.base import BackendError, ChatResponse
from anomamind.agents.budget import PromptTooLongError, check_budget
from anomamind.agents.parsing import parse_detection
from anomamind.eval.convert import intervals_to_binary


@dataclass
class InferenceSettings:
    """Generation settings; greedy by default so runs are reproducible."""

    batch_size: int = 8
    max_tokens: int = 512
    temperature: float = 0.0
    limit: int | None = None


def window_key(row: dict[str, Any]) -> str:
    """A stable key for one prepared window (series and bounds)."""
    return f"{row['series']}@{int(row['window_start'])}-{int(row['window_end'])}"


def load_prepared_rows(prepared: str | Path, split: str) -> list[dict[str, Any]]:
    """Rows of one split of a prepared dataset (``datasets.load_from_disk``)."""
    from datasets import load_from_disk

    data = load_from_disk(str(prepared))
    if split not in data:
        raise KeyError(f"{prepared}: no split {split!r}; splits: {sorted(data.keys())}")
    rows = data[split].to_list()
    missing = {"prompt", "series", "window_start", "window_end", "labels"} - set(rows[0] if rows else {})
    if rows and missing:
        raise KeyError(f"{prepared}: split {split!r} lacks column(s) {sorted(missing)}")
    return rows


def _done_keys(path: Path) -> set[str]:
    if not path.is_file():
        return set()
    keys = set()
    for line in path.read_text().splitlines():
        try:
            keys.add(json.loads(line)["key"])
        except (json.JSONDecodeError, KeyError):
            continue  # a line cut by a crash: that window is simply run again
    return keys


def _batches(items: list[Any], size: int) -> Iterable[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def answer_all(backend: Any, prompts: list[list[dict[str, Any]]], settings: InferenceSettings) -> list[ChatResponse | BackendError]:
    """Each prompt's response, or the error that stopped it (fatal errors are raised).
    Prompts over the backend's context fail before any request; HTTP backends get one
    request per prompt (up to their ``max_concurrency`` at once), local ones a batch."""
    out: list[ChatResponse | BackendError | None] = [None] * len(prompts)
    todo = []
    for k, prompt in enumerate(prompts):
        try:
            check_budget("detector", backend, settings.max_tokens, prompt)
            todo.append(k)
        except PromptTooLongError as err:
            out[k] = err
    kwargs = {"temperature": settings.temperature, "max_tokens": settings.max_tokens}

    def one(k: int) -> ChatResponse | BackendError:
        try:
            return backend.chat(prompts[k], **kwargs)
        except BackendError as err:
            if err.fatal:
                raise
            return err

    if hasattr(backend, "max_concurrency"):
        with ThreadPoolExecutor(max_workers=max(1, min(int(backend.max_concurrency), len(todo) or 1))) as pool:
            answers = list(pool.map(one, todo))
    else:
        try:
            answers = backend.chat_many([prompts[k] for k in todo], **kwargs)
        except BackendError as err:
            if err.fatal:
                raise
            answers = [one(k) for k in todo]  # find which prompt failed; the others still count
    for k, answer in zip(todo, answers):
        out[k] = answer
    return out  # type: ignore[return-value]


def run_batch_inference(
    backend: Any,
    rows: list[dict[str, Any]],
    out_dir: str | Path,
    settings: InferenceSettings | None = None,
    *,
    progress: bool = True,
) -> dict[str, Any]:
    """Run the detector on every row not yet answered; return the summary (also written)."""
    from tqdm.auto import tqdm

    settings = settings or InferenceSettings()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    answers_path = out / "detections.jsonl"
    if settings.limit is not None:
        rows = rows[: settings.limit]
    done = _done_keys(answers_path)
    todo = [r for r in rows if window_key(r) not in done]
    started = time.perf_counter()
    completion_tokens = 0
    failures: Counter[str] = Counter()
    first_errors: dict[str, str] = {}
    bar = tqdm(total=len(todo), desc="detector", unit="win", disable=not progress)
    with open(answers_path, "a") as fh:
        for batch in _batches(todo, settings.batch_size):
            for row, answer in zip(batch, answer_all(backend, [r["prompt"] for r in batch], settings)):
                if isinstance(answer, BackendError):
                    failures[answer.kind] += 1
                    first_errors.setdefault(answer.kind, f"{window_key(row)}: {answer}"[:500])
                    continue
                completion_tokens += int(answer.usage.get("completion_tokens", 0))
                record = {"key": window_key(row), "text": answer.text, "usage": answer.usage,
                          "finish_reason": answer.finish_reason}
                fh.write(json.dumps(record) + "\n")
            fh.flush()
            bar.update(len(batch))
    bar.close()
    seconds = time.perf_counter() - started
    summary = score_answers(rows, answers_path)
    summary["failed_requests"] = {"by_kind": dict(failures), "first_errors": first_errors,
                                  "rule": "not written to detections.jsonl: a rerun tries them again"}
    answered = len(todo) - sum(failures.values())
    summary["throughput"] = {
        "windows_run": answered,
        "seconds": round(seconds, 3),
        "windows_per_s": round(answered / seconds, 3) if answered and seconds > 0 else None,
        "completion_tokens_per_s": round(completion_tokens / seconds, 1) if todo and seconds > 0 else None,
        "backend": type(backend).__name__,
        "model": getattr(backend, "model", ""),
        "batch_size": settings.batch_size,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


def score_answers(rows: list[dict[str, Any]], answers_path: Path) -> dict[str, Any]:
    """Point precision/recall/F1 per dataset, pooled over windows; unparseable answers and
    answers cut at max_tokens count as empty (and are counted)."""
    answers, cut = {}, set()
    for line in answers_path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        answers[rec["key"]] = rec["text"]
        if rec.get("finish_reason") == "length":
            cut.add(rec["key"])
    per_dataset: dict[str, dict[str, float]] = {}
    for row in rows:
        key = window_key(row)
        if key not in answers or row["labels"] is None:  # unlabelled windows cannot be scored
            continue
        start, end = int(row["window_start"]), int(row["window_end"])
        detection = parse_detection(answers[key], start, end)
        intervals = [] if key in cut else detection.intervals
        n = end - start
        pred = intervals_to_binary([(iv.start - start, iv.end - start) for iv in intervals], n)
        truth = np.asarray(row["labels"], dtype=np.int8)[:n]
        stats = per_dataset.setdefault(
            str(row.get("dataset", "all")),
            {"tp": 0, "fp": 0, "fn": 0, "windows": 0, "parse_errors": 0, "cut_at_max_tokens": 0},
        )
        stats["tp"] += int(((pred == 1) & (truth == 1)).sum())
        stats["fp"] += int(((pred == 1) & (truth == 0)).sum())
        stats["fn"] += int(((pred == 0) & (truth == 1)).sum())
        stats["windows"] += 1
        stats["parse_errors"] += int(detection.parse_error is not None and key not in cut)
        stats["cut_at_max_tokens"] += int(key in cut)
    for stats in per_dataset.values():
        tp, fp, fn = stats["tp"], stats["fp"], stats["fn"]
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        stats["precision"] = round(precision, 4)
        stats["recall"] = round(recall, 4)
        stats["f1"] = round(2 * precision * recall / (precision + recall), 4) if precision + recall else 0.0
    return {
        "datasets": per_dataset,
        "rule": "point P/R/F1 pooled over the split's windows; unparseable answers and answers cut at max_tokens predict nothing",
    }
