"""SFT warm start: teach the policy the answer format on the heuristic agent's answers.

A small model rarely writes ``<think>...</think>`` plus a valid JSON array on its own, and
GRPO learns nothing from a group whose answers all fail to parse (zero advantage). A short
supervised pass (TRL's SFTTrainer) on the prepared dataset's ``heuristic_answer`` column -
prompt = the detector messages, completion = the heuristic detector's answer, loss on the
completion only - gives GRPO a policy that already answers in format. Run with a train
config whose ``mode`` is ``sft`` (configs/train/sft_*.yaml); then point the GRPO config's
``model.name_or_path`` at ``OUTPUT_DIR/final``.
"""

from __future__ import annotations

from typing import Any

from anomamind.config import ConfigError


def sft_dataset(dataset: Any) -> Any:
    """Prompt-completion conversational rows from prepared rows with a heuristic answer."""
    if "heuristic_answer" not in dataset.column_names:
        raise ConfigError("the prepared dataset has no 'heuristic_answer' column (needed for SFT)")
    dataset = dataset.filter(lambda row: bool(row["heuristic_answer"]))
    return dataset.map(
        lambda row: {"completion": [{"role": "assistant", "content": row["heuristic_answer"]}]},
        remove_columns=[c for c in dataset.column_names if c not in ("prompt",)],
    )


def sft_args(cfg: Any, output_dir: str) -> Any:
    """TRL SFTConfig from ``cfg.sft`` with device defaults."""
    from trl import SFTConfig

    from anomamind.rl.train import coerce_fields, set_device_defaults

    options = dict(cfg.sft)
    options["output_dir"] = output_dir
    options.setdefault("report_to", "none")
    options.setdefault("logging_steps", 1)
    options.setdefault("completion_only_loss", True)
    # TRL truncates from the end by default, which would cut the completion (the only
    # part with a loss) off long detector prompts; long prompts are dropped instead
    # (data.max_prompt_tokens)
    options.setdefault("max_length", None)
    set_device_defaults(options, cfg.model.dtype)
    try:
        return SFTConfig(**coerce_fields(SFTConfig, options))
    except TypeError as err:
        raise ConfigError(f"sft: {err}") from err


def train_sft(cfg: Any, output_dir: str) -> dict[str, Any]:
    """Supervised warm start; the held-out validation runs before and after as in GRPO."""
    from trl import SFTTrainer

    from anomamind.rl.train import (
        _resume_path, _summary, _validation_rows, _write_history, filter_long_prompts,
        load_policy, load_splits, peft_config, prepared_prompt_style, save_final, trainer_log_path,
    )
    from anomamind.rl.train_progress import use_run_progress
    from anomamind.rl.validation import make_validation_callback

    args = sft_args(cfg, output_dir)
    model, tokenizer = load_policy(cfg.model)
    train, validation = load_splits(cfg.data)
    train = sft_dataset(filter_long_prompts(train, tokenizer, cfg.data.max_prompt_tokens))
    validation = filter_long_prompts(validation, tokenizer, cfg.data.max_prompt_tokens)
    rows = _validation_rows(validation, cfg.validation, cfg.data.seed)
    trainer = SFTTrainer(
        model=model, args=args, train_dataset=train, processing_class=tokenizer,
        peft_config=peft_config(cfg.model),
    )
    callback = None
    if rows:
        callback = make_validation_callback(rows, cfg.validation, tokenizer, output_dir, cfg.rewards)
        trainer.callback_handler.callbacks.insert(0, callback)
    use_run_progress(trainer, trainer_log_path(output_dir))
    result = trainer.train(resume_from_checkpoint=_resume_path(args.resume_from_checkpoint, output_dir))
    _write_history(trainer, output_dir)
    final = save_final(trainer, tokenizer, output_dir, prepared_prompt_style(cfg.data.path))
    return _summary(trainer, output_dir, final, result, callback)
