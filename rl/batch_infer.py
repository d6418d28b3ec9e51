"""Batch inference with a (trained) detector over prepared windows.

The upstream stages (locate, plan, act) were run once by ``anomamind prepare`` and stored
with each window's detector prompt; here only the detector runs, in batches, through any
chat backend: a local transformers model on CPU/GPU (windows batched), a vLLM offline
engine on GPU nodes, or an OpenAI-compatible server (a vLLM server, say) with concurrent
requests. Answers are appended to ``OUT/detections.jsonl`` as they arrive, so an
interrupted run resumes where it stopped; the run ends with point metrics per dataset and
the measured throughput in ``OUT/summary.json``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np

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
    bar = tqdm(total=len(todo), desc="detector", unit="win", disable=not progress)
    with open(answers_path, "a") as fh:
        for batch in _batches(todo, settings.batch_size):
            responses = backend.chat_many(
                [r["prompt"] for r in batch], temperature=settings.temperature, max_tokens=settings.max_tokens
            )
            for row, response in zip(batch, responses):
                completion_tokens += int(response.usage.get("completion_tokens", 0))
                record = {"key": window_key(row), "text": response.text, "usage": response.usage}
                fh.write(json.dumps(record) + "\n")
            fh.flush()
            bar.update(len(batch))
    bar.close()
    seconds = time.perf_counter() - started
    summary = score_answers(rows, answers_path)
    summary["throughput"] = {
        "windows_run": len(todo),
        "seconds": round(seconds, 3),
        "windows_per_s": round(len(todo) / seconds, 3) if todo and seconds > 0 else None,
        "completion_tokens_per_s": round(completion_tokens / seconds, 1) if todo and seconds > 0 else None,
        "backend": type(backend).__name__,
        "model": getattr(backend, "model", ""),
        "batch_size": settings.batch_size,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


def score_answers(rows: list[dict[str, Any]], answers_path: Path) -> dict[str, Any]:
    """Point precision/recall/F1 per dataset, pooled over windows; unparseable answers count as empty."""
    answers = {}
    for line in answers_path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        answers[rec["key"]] = rec["text"]
    per_dataset: dict[str, dict[str, float]] = {}
    for row in rows:
        key = window_key(row)
        if key not in answers or row["labels"] is None:  # unlabelled windows cannot be scored
            continue
        start, end = int(row["window_start"]), int(row["window_end"])
        detection = parse_detection(answers[key], start, end)
        n = end - start
        pred = intervals_to_binary([(iv.start - start, iv.end - start) for iv in detection.intervals], n)
        truth = np.asarray(row["labels"], dtype=np.int8)[:n]
        stats = per_dataset.setdefault(
            str(row.get("dataset", "all")), {"tp": 0, "fp": 0, "fn": 0, "windows": 0, "parse_errors": 0}
        )
        stats["tp"] += int(((pred == 1) & (truth == 1)).sum())
        stats["fp"] += int(((pred == 1) & (truth == 0)).sum())
        stats["fn"] += int(((pred == 0) & (truth == 1)).sum())
        stats["windows"] += 1
        stats["parse_errors"] += int(detection.parse_error is not None)
    for stats in per_dataset.values():
        tp, fp, fn = stats["tp"], stats["fp"], stats["fn"]
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        stats["precision"] = round(precision, 4)
        stats["recall"] = round(recall, 4)
        stats["f1"] = round(2 * precision * recall / (precision + recall), 4) if precision + recall else 0.0
    return {"datasets": per_dataset, "rule": "point P/R/F1 pooled over the split's windows; unparseable answers predict nothing"}
