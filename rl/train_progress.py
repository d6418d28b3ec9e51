"""A training run on the terminal: a progress bar with a short postfix instead of the
trainer's 40-key dict per step; every log dict goes, whole, to a JSON-lines file.

:func:`use_run_progress` swaps transformers' progress/printer callback for
:func:`make_progress_callback`'s; :func:`summary_line` is the one line printed at the end.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

#: Log keys shown in the progress bar's postfix, with their short names.
POSTFIX_KEYS: tuple[tuple[str, str], ...] = (
    ("loss", "loss"),
    ("reward", "reward"),
    ("validation/point_f1", "val F1"),
    ("validation/parse_error_rate", "val parse err"),
)
_REPLACED_CALLBACKS = {"ProgressCallback", "PrinterCallback", "NotebookProgressCallback"}


def postfix(logs: dict[str, Any]) -> str:
    """The few numbers worth watching from one log dict, e.g. ``loss 0.0123, reward 0.41``."""
    parts = []
    for key, label in POSTFIX_KEYS:
        value = logs.get(key)
        if isinstance(value, (int, float)):
            parts.append(f"{label} {value:.3g}")
    return ", ".join(parts)


def make_progress_callback(log_path: str | Path, show_bar: bool = True) -> Any:
    """A ``TrainerCallback``: a tqdm bar over the steps (main process only), the postfix
    of the latest log, and each log dict appended to ``log_path`` as a JSON line."""
    from tqdm.auto import tqdm
    from transformers import TrainerCallback

    path = Path(log_path)

    class RunProgress(TrainerCallback):
        def __init__(self) -> None:
            self.bar = None
            self.latest: dict[str, Any] = {}  # the last value of each postfix key

        def on_train_begin(self, args, state, control, **kwargs):
            if state.is_world_process_zero:
                path.parent.mkdir(parents=True, exist_ok=True)
                self.bar = tqdm(total=state.max_steps, initial=state.global_step, desc="train", unit="step",
                                dynamic_ncols=True, disable=not show_bar)

        def on_step_end(self, args, state, control, **kwargs):
            if self.bar is not None:
                self.bar.update(state.global_step - self.bar.n)

        def on_log(self, args, state, control, logs=None, **kwargs):
            if not state.is_world_process_zero or not logs:
                return
            with path.open("a") as handle:
                handle.write(json.dumps({"step": int(state.global_step), **logs}, default=str) + "\n")
            self.latest.update({key: logs[key] for key, _ in POSTFIX_KEYS if key in logs})
            if self.bar is not None and self.latest:
                self.bar.set_postfix_str(postfix(self.latest), refresh=True)

        def on_train_end(self, args, state, control, **kwargs):
            if self.bar is not None:
                self.bar.close()
                self.bar = None

    return RunProgress()


def use_run_progress(trainer: Any, log_path: str | Path) -> None:
    """Replace the trainer's progress/printer callback with :func:`make_progress_callback`'s."""
    for callback in list(trainer.callback_handler.callbacks):
        if type(callback).__name__ in _REPLACED_CALLBACKS:
            trainer.remove_callback(callback)
    trainer.add_callback(make_progress_callback(log_path, show_bar=not trainer.args.disable_tqdm))


def summary_line(summary: dict[str, Any]) -> str:
    """One line for the end of a run: steps, loss, validation before -> after, where things are."""
    parts = [f"trained to step {summary.get('global_step')}"]
    if isinstance(summary.get("train_loss"), (int, float)):
        parts[0] += f" (mean loss {summary['train_loss']:.4g})"
    first, last = summary.get("validation_first") or {}, summary.get("validation_last") or {}
    for key, label in (("validation/point_f1", "validation point-F1"), ("validation/parse_error_rate", "parse errors")):
        if isinstance(first.get(key), (int, float)) and isinstance(last.get(key), (int, float)):
            parts.append(f"{label} {first[key]:.3f} -> {last[key]:.3f}")
    parts.append(f"model: {summary.get('checkpoint')}")
    if summary.get("logs"):
        warned = summary.get("log_warnings") or 0
        parts.append(f"logs: {summary['logs']}" + (f" ({warned} warning(s) there)" if warned else ""))
    return "; ".join(parts)
