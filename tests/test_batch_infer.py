"""Batch inference over prepared windows: resume, scoring, and a real HTTP backend."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

datasets = pytest.importorskip("datasets")

from anomamind.agents.backends.base import ChatResponse  # noqa: E402
from anomamind.rl.batch_infer import InferenceSettings, load_prepared_rows, run_batch_inference  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from fake_chat_server import FakeChatServer  # noqa: E402

ANSWER_HIT = '<think>spike at 12</think>[{"interval": [12, 13], "type": "point-global", "explanation": "z=9", "confidence": 3}]'
ANSWER_EMPTY = "<think>nothing</think>[]"


def _prepared(tmp_path: Path) -> Path:
    labels_a = [0] * 20
    labels_a[12] = labels_a[13] = 1
    rows = {
        "prompt": [[{"role": "user", "content": f"window {k}"}] for k in range(3)],
        "series": ["a", "b", "c"],
        "dataset": ["D", "D", "D"],
        "window_start": [0, 0, 0],
        "window_end": [20, 20, 20],
        "labels": [labels_a, [0] * 20, [0] * 20],
    }
    path = tmp_path / "prepared"
    datasets.DatasetDict({"validation": datasets.Dataset.from_dict(rows)}).save_to_disk(str(path))
    return path


class ScriptedBackend:
    """Answers by the window number in the prompt; counts calls to prove resume does no work."""

    model = "scripted"

    def __init__(self, fail_after: int | None = None):
        self.calls = 0
        self.fail_after = fail_after

    def chat_many(self, conversations, **_):
        out = []
        for conv in conversations:
            if self.fail_after is not None and self.calls >= self.fail_after:
                raise RuntimeError("backend died")
            self.calls += 1
            text = ANSWER_HIT if conv[-1]["content"] == "window 0" else ANSWER_EMPTY
            out.append(ChatResponse(text=text, usage={"prompt_tokens": 5, "completion_tokens": 7}))
        return out


def test_scores_and_resumes_after_a_crash(tmp_path):
    rows = load_prepared_rows(_prepared(tmp_path), "validation")
    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match="backend died"):
        run_batch_inference(ScriptedBackend(fail_after=2), rows, out, InferenceSettings(batch_size=1), progress=False)
    assert len((out / "detections.jsonl").read_text().splitlines()) == 2  # finished windows kept
    backend = ScriptedBackend()
    summary = run_batch_inference(backend, rows, out, InferenceSettings(batch_size=2), progress=False)
    assert backend.calls == 1  # only the window not answered before
    stats = summary["datasets"]["D"]
    assert stats["windows"] == 3 and stats["tp"] == 2 and stats["fp"] == 0 and stats["f1"] == 1.0
    assert summary["throughput"]["windows_run"] == 1
    assert json.loads((out / "summary.json").read_text())["datasets"]["D"]["f1"] == 1.0


def test_unparseable_answers_count_as_empty_predictions(tmp_path):
    rows = load_prepared_rows(_prepared(tmp_path), "validation")

    class Garbage(ScriptedBackend):
        def chat_many(self, conversations, **_):
            return [ChatResponse(text="no idea") for _ in conversations]

    summary = run_batch_inference(Garbage(), rows, tmp_path / "g", progress=False)
    stats = summary["datasets"]["D"]
    assert stats["parse_errors"] == 3 and stats["tp"] == 0 and stats["fn"] == 2 and stats["f1"] == 0.0


def test_openai_server_with_concurrent_requests(tmp_path):
    from anomamind.agents.backends.factory import make_backend

    rows = load_prepared_rows(_prepared(tmp_path), "validation")

    def responder(request):
        return ANSWER_HIT if request["messages"][-1]["content"] == "window 0" else ANSWER_EMPTY

    with FakeChatServer(responder) as server:
        backend = make_backend({"kind": "openai", "model": "served", "base_url": server.base_url,
                                "api_key_env": None, "max_concurrency": 3})
        summary = run_batch_inference(backend, rows, tmp_path / "o", InferenceSettings(batch_size=3), progress=False)
        assert len(server.requests) == 3
    assert summary["datasets"]["D"]["f1"] == 1.0


def test_missing_split_is_named(tmp_path):
    with pytest.raises(KeyError, match="no split 'train'"):
        load_prepared_rows(_prepared(tmp_path), "train")


def test_cli_reports_a_dead_server_and_keeps_what_it_has(tmp_path, capsys):
    from anomamind.cli import main
    from fake_chat_server import FakeError

    prepared = _prepared(tmp_path)
    out = tmp_path / "cli"
    with FakeChatServer([ANSWER_HIT, FakeError(401)]) as server:
        code = main(["infer", "--prepared", str(prepared), "--kind", "openai", "--model", "m",
                     "--base-url", server.base_url, "--batch-size", "1", "--out", str(out)])
    assert code == 1
    err = capsys.readouterr().err
    assert "backend failed" in err and "resume" in err
    assert len((out / "detections.jsonl").read_text().splitlines()) == 1


def test_cut_answers_and_failed_requests_are_counted_and_failures_not_kept(tmp_path):
    from anomamind.agents.backends.factory import make_backend
    from fake_chat_server import FakeError, reply

    rows = load_prepared_rows(_prepared(tmp_path), "validation")

    def responder(request):
        window = request["messages"][-1]["content"]
        if window == "window 0":
            return reply(ANSWER_HIT, finish_reason="length")  # parseable, but cut: predicts nothing
        return FakeError(500, "overloaded") if window == "window 1" else ANSWER_EMPTY

    with FakeChatServer(responder) as server:
        backend = make_backend({"kind": "openai", "model": "served", "base_url": server.base_url,
                                "api_key_env": None, "max_retries": 0, "max_concurrency": 2})
        summary = run_batch_inference(backend, rows, tmp_path / "o", InferenceSettings(batch_size=3), progress=False)
    stats = summary["datasets"]["D"]
    assert stats["windows"] == 2 and stats["cut_at_max_tokens"] == 1 and stats["tp"] == 0
    assert summary["failed_requests"]["by_kind"] == {"backend_error": 1}
    assert "b@0-20" in summary["failed_requests"]["first_errors"]["backend_error"]
    lines = [json.loads(x) for x in (tmp_path / "o" / "detections.jsonl").read_text().splitlines()]
    assert [(x["key"], x["finish_reason"]) for x in lines] == [("a@0-20", "length"), ("c@0-20", "stop")]


def test_a_prompt_over_the_context_fails_before_it_is_sent(tmp_path):
    from anomamind.agents.backends.factory import make_backend

    rows = load_prepared_rows(_prepared(tmp_path), "validation")
    rows[2]["prompt"] = [{"role": "user", "content": "window 2 " + "1.2345, " * 400}]
    with FakeChatServer(lambda request: ANSWER_EMPTY) as server:
        backend = make_backend({"kind": "openai", "model": "served", "base_url": server.base_url,
                                "api_key_env": None, "context_tokens": 1024})
        summary = run_batch_inference(backend, rows, tmp_path / "o", InferenceSettings(max_tokens=256), progress=False)
        assert len(server.requests) == 2
    assert summary["failed_requests"]["by_kind"] == {"context_overflow": 1}
    assert "c@0-20: detector: the prompt needs" in summary["failed_requests"]["first_errors"]["context_overflow"]
