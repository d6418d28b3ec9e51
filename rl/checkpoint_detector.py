"""A trained checkpoint as a benchmark detector: ``--detector checkpoint:PATH``.

The heuristic agent's upstream stages (locate, plan, act) run per window as in the
workflow; the trained model is the detector, answering all windows of a series in batches
(agents/backends' local transformers backend: left-padded batched generation, greedy by
default). With ``evaluator=True`` the heuristic evaluator reviews each answer and the
windows it flags get one batched refinement round, as in the workflow. A window whose
answer does not parse predicts nothing and is counted in ``failed_windows``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from anomamind.agents.parsing import parse_detection
from anomamind.eval.registry import SeriesPrediction
from anomamind.types import DataError, Detection, Series


class CheckpointDetector:
    """SeriesDetector: heuristic upstream + the checkpoint's model as the detector."""

    def __init__(self, path: str, backend: Any, workflow: Any, *, max_tokens: int, temperature: float, evaluator: bool) -> None:
        self.name = f"checkpoint:{path}"
        self.path = path
        self.backend = backend
        self.workflow = workflow
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.evaluator = evaluator

    def _answer(self, conversations: list[list[dict[str, Any]]]) -> list[str]:
        responses = self.backend.chat_many(conversations, temperature=self.temperature, max_tokens=self.max_tokens)
        return [r.text for r in responses]

    def detect_windows(self, series: Series) -> tuple[list[Any], list[str], list[Detection]]:
        """Tasks, final answer texts and detections for every window of ``series``."""
        tasks = self.workflow.tasks(series)
        for task in tasks:
            self.workflow.upstream(task)
        texts = self._answer([self.workflow.detector_messages(t) for t in tasks])
        detections = [parse_detection(x, t.window.start, t.window.end) for x, t in zip(texts, tasks)]
        evaluator = self.workflow.roles.evaluator
        if self.evaluator and evaluator is not None:
            redo, messages = [], []
            for i, (task, det) in enumerate(zip(tasks, detections)):
                up = task.upstream
                verdict = evaluator.evaluate(task, up["plan"], up["evidence"], det)
                if verdict.needs_refinement:
                    redo.append(i)
                    messages.append(self.workflow.detector_messages(task, feedback=verdict.feedback_text(), previous_answer=texts[i]))
            for i, text in zip(redo, self._answer(messages) if messages else []):
                texts[i] = text
                detections[i] = parse_detection(text, tasks[i].window.start, tasks[i].window.end)
        return tasks, texts, detections

    def detect(self, series: Series) -> SeriesPrediction:
        from anomamind.envs.workflow import merge_intervals
        from anomamind.eval.convert import intervals_to_binary, intervals_to_scores

        tasks, _, detections = self.detect_windows(series)
        intervals = merge_intervals(iv for d in detections for iv in d.intervals)
        n = len(series)
        return SeriesPrediction(
            pred=intervals_to_binary(intervals, n).astype(np.int8),
            scores=intervals_to_scores(intervals, n).astype(float),
            intervals=intervals,
            failed_windows=sum(not d.ok for d in detections),
            info={"windows": len(tasks), "checkpoint": self.path,
                  "parse_errors": [d.parse_error for d in detections if not d.ok][:5]},
        )


def trained_prompt_style(folder: Path) -> str | None:
    """The prompt style recorded beside a trained model (rl/train.save_final), or None."""
    from anomamind.rl.train import DETECTOR_INFO

    info = folder / DETECTOR_INFO
    if not info.is_file():
        return None
    try:
        return json.loads(info.read_text())["detector_prompt"]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise DataError(f"{info}: unreadable ({err}); delete it or pass detector_prompt") from err


def make_checkpoint_detector(
    path: str,
    *,
    device: str = "auto",
    dtype: str = "auto",
    batch_size: int = 8,
    max_tokens: int = 512,
    temperature: float = 0.0,
    evaluator: bool = False,
    agent_config: str | None = None,
    disable: list[str] | tuple[str, ...] | str = (),
    window: int | None = None,
    stride: int | None = None,
    enable_thinking: bool | None = None,
    detector_prompt: str | None = None,
) -> CheckpointDetector:
    """Load the model folder ``path`` (e.g. a training run's ``final/``) as the detector
    of the heuristic workflow (``agent_config``: configs/agents/heuristic.yaml by default;
    ``disable``/``window``/``stride`` as for ``heuristic-agent``). The prompts are
    rendered in ``detector_prompt`` style; by default the style the model was trained on
    (``anomamind_detector.json`` beside a trained model), else the agent config's."""
    from anomamind.agents.backends.transformers_local import TransformersBackend
    from anomamind.envs.detectors import make_heuristic_agent

    folder = Path(path)
    if not (folder / "config.json").is_file():
        hint = " (a training run keeps its final model in OUTPUT_DIR/final)" if (folder / "final").is_dir() else ""
        raise DataError(f"checkpoint {path!r} is not a model folder: no config.json{hint}")
    agent = make_heuristic_agent(
        disable=disable, evaluator=evaluator, window=window, stride=stride, config=agent_config,
        detector_prompt=detector_prompt or trained_prompt_style(folder),
    )
    backend = TransformersBackend(
        str(folder), device=device, dtype=dtype, max_batch_size=batch_size, enable_thinking=enable_thinking
    )
    return CheckpointDetector(
        str(path), backend, agent.workflow, max_tokens=max_tokens, temperature=temperature, evaluator=evaluator
    )
