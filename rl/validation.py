"""Held-out validation of the detector during training: generate, parse, score.

The policy answers the validation split's detector prompts greedily (batched, left-padded,
through the tokenizer's chat template); the answers are scored with the same parser and
reward terms as training, and pooled point precision/recall/F1 over the windows (no
point adjustment, unparseable answers predict nothing). :class:`ValidationCallback` runs
this before training, every ``every_steps`` steps and at the end, adds the numbers to the
trainer's log (``validation/point_f1`` ...) and appends them to
``OUTPUT_DIR/validation.jsonl``. torch is imported inside the functions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from anomamind.agents.parsing import parse_detection
from anomamind.rl.rewards import RewardConfig, build_reward_functions, interval_mask


@dataclass
class ValidationSection:
    """``validation:`` in a train config. ``every_steps`` 0 = only before and after."""

    enabled: bool = True
    every_steps: int = 50
    at_start: bool = True
    max_windows: int = 32
    batch_size: int = 8
    max_new_tokens: int = 256


def generate_answers(
    model: Any,
    tokenizer: Any,
    conversations: Sequence[list[dict[str, Any]]],
    *,
    max_new_tokens: int = 256,
    batch_size: int = 8,
    chat_template_kwargs: dict[str, Any] | None = None,
    progress: str | None = None,
) -> list[str]:
    """Greedy answers of ``model`` to chat ``conversations`` (model left in its mode);
    ``progress`` names a progress bar over the batches (none by default)."""
    import torch
    from tqdm.auto import tqdm

    was_training = model.training
    model.eval()
    padding_side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    device = next(model.parameters()).device
    answers: list[str] = []
    try:
        firsts = range(0, len(conversations), batch_size)
        for first in tqdm(firsts, desc=progress, unit="batch", disable=progress is None):
            texts = [
                tokenizer.apply_chat_template(
                    c, tokenize=False, add_generation_prompt=True, **(chat_template_kwargs or {})
                )
                for c in conversations[first : first + batch_size]
            ]
            batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
            with torch.no_grad():
                out = model.generate(
                    **batch,
                    max_new_tokens=max_new_tokens,
                    do_sample=False,
                    pad_token_id=tokenizer.pad_token_id,
                    eos_token_id=tokenizer.eos_token_id,
                )
            new_tokens = out[:, batch["input_ids"].shape[1] :]
            answers += tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
    finally:
        tokenizer.padding_side = padding_side
        model.train(was_training)
    return answers


def score_answers(rows: Sequence[dict[str, Any]], answers: Sequence[str], rewards: RewardConfig | None = None) -> dict[str, float]:
    """Pooled point precision/recall/F1, parse-error rate and the mean of every reward term."""
    tp = fp = fn = parse_errors = 0
    for row, text in zip(rows, answers):
        ws, we = int(row["window_start"]), int(row["window_end"])
        detection = parse_detection(text, ws, we)
        parse_errors += int(not detection.ok)
        pred = interval_mask(detection.intervals, ws, we)
        true = np.asarray(row["labels"], dtype=bool)
        tp += int((pred & true).sum())
        fp += int((pred & ~true).sum())
        fn += int((~pred & true).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    metrics = {
        "validation/point_f1": f1,
        "validation/precision": precision,
        "validation/recall": recall,
        "validation/parse_error_rate": parse_errors / max(len(answers), 1),
        "validation/windows": float(len(answers)),
    }
    funcs, _ = build_reward_functions(rewards or RewardConfig(enabled=["two_sided", "false_positive", "rule_matching", "format_reward"]))
    columns = {k: [r.get(k) for r in rows] for k in ("window_start", "window_end", "labels", "evidence")}
    for func in funcs:
        values = [v for v in func([r["prompt"] for r in rows], list(answers), **columns) if v is not None]
        metrics[f"validation/{func.__name__}"] = float(np.mean(values)) if values else float("nan")
    return metrics


#: ``answer(model, rows) -> answers``: how the policy answers the validation rows when it is
#: not one greedy turn per prompt (multi-turn environment episodes, rl/environment_play.py).
AnswerFunction = Callable[[Any, Sequence[dict[str, Any]]], list[str]]


def validate(model: Any, tokenizer: Any, rows: Sequence[dict[str, Any]], section: ValidationSection,
             rewards: RewardConfig | None = None, chat_template_kwargs: dict[str, Any] | None = None,
             answer: AnswerFunction | None = None) -> tuple[dict[str, float], list[str]]:
    """Answers and metrics of ``model`` on ``rows`` (prepared dataset rows)."""
    if answer is not None:
        answers = answer(model, rows)
    else:
        answers = generate_answers(
            model, tokenizer, [r["prompt"] for r in rows],
            max_new_tokens=section.max_new_tokens, batch_size=section.batch_size,
            chat_template_kwargs=chat_template_kwargs,
        )
    return score_answers(rows, answers, rewards), answers


def _trainer_callback_base() -> type:
    from transformers import TrainerCallback

    return TrainerCallback


def make_validation_callback(rows: Sequence[dict[str, Any]], section: ValidationSection, tokenizer: Any,
                             output_dir: str | Path, rewards: RewardConfig | None = None,
                             chat_template_kwargs: dict[str, Any] | None = None,
                             answer: AnswerFunction | None = None) -> Any:
    """A ``TrainerCallback`` validating on ``rows`` (see the module docstring); ``answer``
    replaces the single greedy turn per prompt (see :func:`validate`).

    Every process runs the (identical) generation, so sharded setups (ZeRO-3, FSDP) stay
    in step; only the main process writes ``validation.jsonl``.
    """

    class ValidationCallback(_trainer_callback_base()):
        def __init__(self) -> None:
            self.pending: dict[str, float] | None = None
            self.history: list[dict[str, Any]] = []
            self.path = Path(output_dir) / "validation.jsonl"

        def _run(self, model: Any, state: Any) -> dict[str, float]:
            metrics, answers = validate(model, tokenizer, rows, section, rewards, chat_template_kwargs, answer)
            record = {"step": int(state.global_step), **metrics, "sample_answer": answers[0][:400] if answers else ""}
            self.history.append(record)
            if state.is_world_process_zero:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with self.path.open("a") as fh:
                    fh.write(json.dumps(record) + "\n")
            return metrics

        def on_train_begin(self, args, state, control, model=None, **kwargs):
            if section.at_start and state.global_step == 0:
                state.log_history.append({"step": 0, **self._run(model, state)})

        def on_step_end(self, args, state, control, model=None, **kwargs):
            if section.every_steps and state.global_step % section.every_steps == 0 and state.global_step < state.max_steps:
                self.pending = self._run(model, state)
                control.should_log = True

        def on_log(self, args, state, control, logs=None, **kwargs):
            if self.pending is not None and logs is not None:
                logs.update(self.pending)
                if state.log_history:
                    state.log_history[-1].update(self.pending)
                self.pending = None

        def on_train_end(self, args, state, control, model=None, **kwargs):
            state.log_history.append({"step": int(state.global_step), **self._run(model, state)})

    return ValidationCallback()
