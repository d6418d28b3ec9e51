"""GRPO training of the detector with TRL (and the SFT warm start, rl/sft.py).

A train config (configs/train/*.yaml) has these sections:

- ``model``: ``name_or_path`` (a Hub id, a local folder, or ``tiny`` for rl/tiny's random
  Qwen3), ``gguf_file`` (load a GGUF file from that folder), ``dtype`` (``auto`` = bf16 on
  GPU, fp32 on CPU), ``lora`` (PEFT LoraConfig fields; absent = full fine-tuning);
- ``data``: ``path`` of an ``anomamind prepare`` dataset and its split names;
- ``rewards``: rl/rewards.RewardConfig (enabled terms, weights);
- ``grpo``: any TRL ``GRPOConfig`` field (``sft`` for SFTConfig in ``mode: sft``);
- ``validation``: rl/validation.ValidationSection (held-out point-F1 during training).

:func:`train_from_config` is the one entry (the CLI, scripts/train_grpo.py under
``accelerate launch`` and the sweep runner call it). Training writes TRL checkpoints under
``output_dir`` (resumable with ``grpo.resume_from_checkpoint``), the log history
(``log_history.json``: loss, every reward term, validation) and the final model, LoRA
merged, under ``output_dir/final`` - a plain transformers folder that
``--detector checkpoint:OUTPUT_DIR/final`` loads.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from anomamind.config import ConfigError, apply_overrides, from_dict, read_yaml, to_dict
from anomamind.run_log import log_to_file
from anomamind.rl.rewards import RewardConfig, build_reward_functions
from anomamind.rl.validation import ValidationSection

log = logging.getLogger(__name__)

TRAIN_MODES = ("grpo", "sft")


@dataclass
class ModelSection:
    """The policy to train. ``tiny`` holds rl/tiny.build_tiny_qwen3 sizes for ``tiny``."""

    name_or_path: str = ""
    gguf_file: str | None = None
    dtype: str = "auto"
    lora: dict[str, Any] | None = None
    tiny: dict[str, Any] = field(default_factory=dict)
    trust_remote_code: bool = False
    attn_implementation: str | None = None
    #: Override the tokenizer's end-of-turn / padding tokens (some GGUF files carry wrong
    #: ones, e.g. SmolLM2's names <|im_start|> as EOS; generation must stop at <|im_end|>).
    eos_token: str | None = None
    pad_token: str | None = None


@dataclass
class DataSection:
    """The prepared dataset; ``max_prompt_tokens`` drops longer prompts (counted with the
    policy's chat template); ``max_train_windows`` keeps the first K training rows;
    ``detector_prompt`` (compact | full) is the prompt style the data must have been
    prepared with (None: whichever it has; the style is recorded next to the trained model
    either way, see :func:`save_final`)."""

    path: str = ""
    train_split: str = "train"
    validation_split: str = "validation"
    max_prompt_tokens: int | None = None
    max_train_windows: int | None = None
    seed: int = 0
    detector_prompt: str | None = None


@dataclass
class TrainConfig:
    """A whole train config file (see the module docstring)."""

    mode: str = "grpo"
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    rewards: RewardConfig = field(default_factory=RewardConfig)
    validation: ValidationSection = field(default_factory=ValidationSection)
    grpo: dict[str, Any] = field(default_factory=dict)
    sft: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.mode not in TRAIN_MODES:
            raise ConfigError(f"mode must be one of {TRAIN_MODES}, got {self.mode!r}")


def load_train_config(path: str | Path, overrides: list[str] | None = None) -> TrainConfig:
    """Read a train config with ``a.b=value`` overrides (``grpo.learning_rate=1e-5``)."""
    data = read_yaml(path)
    apply_overrides(data, overrides)
    if isinstance(data.get("rewards"), dict):
        try:
            data["rewards"] = RewardConfig(**data["rewards"])
        except (TypeError, ValueError) as err:
            raise ConfigError(f"{path}: rewards: {err}") from err
    return from_dict(TrainConfig, data, str(path))


# ----------------------------------------------------------------------------- command-line fields


def trainer_args_from_cli(argv: list[str], mode: str = "grpo") -> dict[str, Any]:
    """``--field value`` pairs of TRL's GRPOConfig (or SFTConfig) parsed with transformers'
    HfArgumentParser; returns only the fields given, typed. Unknown flags are an error."""
    from transformers import HfArgumentParser

    if mode == "sft":
        from trl import SFTConfig as ConfigClass
    else:
        from trl import GRPOConfig as ConfigClass
    parser = HfArgumentParser(ConfigClass)
    for action in parser._actions:
        action.default = argparse.SUPPRESS
        action.required = False
    namespace, unknown = parser.parse_known_args(argv)
    if unknown:
        raise ConfigError(f"unknown {ConfigClass.__name__} option(s): {' '.join(unknown)}")
    return vars(namespace)


# ----------------------------------------------------------------------------- building blocks


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def set_device_defaults(options: dict[str, Any], dtype: str) -> None:
    """bf16 on a GPU (unless the model dtype says otherwise), plain fp32 on CPU; explicit
    trainer options win. Shared by the GRPO and SFT configs."""
    if _cuda_available():
        if dtype in ("auto", "bf16", "bfloat16"):
            options.setdefault("bf16", True)
    else:
        options.setdefault("use_cpu", True)
        options.setdefault("bf16", False)


def resolve_dtype(name: str) -> Any:
    import torch

    if name == "auto":
        return torch.bfloat16 if _cuda_available() else torch.float32
    table = {"bf16": torch.bfloat16, "bfloat16": torch.bfloat16, "fp16": torch.float16,
             "float16": torch.float16, "fp32": torch.float32, "float32": torch.float32}
    if name not in table:
        raise ConfigError(f"model.dtype {name!r} is not one of auto, {', '.join(table)}")
    return table[name]


def load_policy(section: ModelSection) -> tuple[Any, Any]:
    """The model and tokenizer to train. GGUF files are dequantised by transformers on
    load; the quantisation markers it leaves on the model are cleared so the Trainer and
    PEFT treat it as the plain float model it now is."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not section.name_or_path:
        raise ConfigError("model.name_or_path is empty: give a Hub id, a local folder or 'tiny'")
    if section.name_or_path == "tiny":
        from anomamind.rl.tiny import build_tiny_qwen3

        model, tokenizer = build_tiny_qwen3(**section.tiny)
        return model.to(resolve_dtype(section.dtype)), tokenizer
    kwargs: dict[str, Any] = {"trust_remote_code": section.trust_remote_code}
    if section.gguf_file:
        kwargs["gguf_file"] = section.gguf_file
    tokenizer = AutoTokenizer.from_pretrained(section.name_or_path, **kwargs)
    if section.attn_implementation:
        kwargs["attn_implementation"] = section.attn_implementation
    model = AutoModelForCausalLM.from_pretrained(section.name_or_path, dtype=resolve_dtype(section.dtype), **kwargs)
    if section.gguf_file:
        clear_quantization_flags(model)
    for role, token in (("eos_token", section.eos_token), ("pad_token", section.pad_token)):
        if token is not None:
            if token not in tokenizer.get_vocab():
                raise ConfigError(f"model.{role} {token!r} is not in the tokenizer's vocabulary")
            setattr(tokenizer, role, token)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.config.eos_token_id = tokenizer.eos_token_id
    model.config.pad_token_id = tokenizer.pad_token_id
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.eos_token_id = tokenizer.eos_token_id
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def clear_quantization_flags(model: Any) -> None:
    """Forget that the weights came from a quantised file (they are dequantised floats)."""
    for obj in (model, getattr(model, "config", None)):
        if obj is None:
            continue
        for attr in ("is_quantized", "hf_quantizer", "quantization_method", "quantization_config", "is_loaded_in_4bit", "is_loaded_in_8bit"):
            if hasattr(obj, attr):
                try:
                    delattr(obj, attr)
                except AttributeError:
                    setattr(obj, attr, None if attr != "is_quantized" else False)


def peft_config(section: ModelSection) -> Any:
    """PEFT LoraConfig from ``model.lora`` (default target: all linear layers), or None."""
    if not section.lora:
        return None
    from peft import LoraConfig

    options = {"task_type": "CAUSAL_LM", "target_modules": "all-linear", **section.lora}
    try:
        return LoraConfig(**options)
    except TypeError as err:
        raise ConfigError(f"model.lora: {err}") from err


def prepared_prompt_style(path: str | Path) -> str | None:
    """The detector prompt style a prepared dataset was built with (its summary.json);
    None for data prepared before styles existed (those are ``full``) or without a summary."""
    summary = Path(path) / "summary.json"
    if not summary.is_file():
        return None
    try:
        return json.loads(summary.read_text()).get("detector_prompt")
    except (json.JSONDecodeError, AttributeError) as err:
        raise ConfigError(f"{summary}: not a prepare summary ({err})") from err


def load_splits(section: DataSection) -> tuple[Any, Any]:
    """Train and validation splits of the prepared dataset (validation may be empty)."""
    from datasets import load_from_disk

    path = Path(section.path)
    if not section.path or not (path / "dataset_dict.json").is_file():
        raise ConfigError(
            f"data.path {section.path!r} is not a prepared dataset (no dataset_dict.json); "
            "run `anomamind prepare --out DIR` first"
        )
    style = prepared_prompt_style(path)
    if section.detector_prompt is not None and section.detector_prompt != (style or "full"):
        raise ConfigError(
            f"data.detector_prompt is {section.detector_prompt!r} but {path} was prepared with "
            f"{style or 'full'!r} prompts: prepare it again with detector_prompt={section.detector_prompt} "
            "in the agent config, or change data.detector_prompt"
        )
    splits = load_from_disk(str(path))
    if section.train_split not in splits:
        raise ConfigError(f"{path}: no split {section.train_split!r}; splits: {sorted(splits)}")
    train = splits[section.train_split]
    missing = {"prompt", "window_start", "window_end", "labels"} - set(train.column_names)
    if missing:
        raise ConfigError(f"{path}: split {section.train_split!r} lacks column(s) {sorted(missing)}")
    if section.max_train_windows:
        train = train.select(range(min(section.max_train_windows, len(train))))
    validation = splits[section.validation_split] if section.validation_split in splits else None
    return train, validation


def prompt_tokens(tokenizer: Any, messages: list[dict[str, Any]]) -> int:
    """Tokens of ``messages`` as the policy reads them: chat template, generation prompt."""
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def filter_long_prompts(dataset: Any, tokenizer: Any, max_tokens: int | None) -> Any:
    """Drop rows whose chat-templated prompt is longer than ``max_tokens`` tokens."""
    if not max_tokens or dataset is None or len(dataset) == 0:
        return dataset

    def short_enough(row: dict[str, Any]) -> bool:
        return prompt_tokens(tokenizer, row["prompt"]) <= max_tokens

    kept = dataset.filter(short_enough)
    if len(kept) < len(dataset):
        log.warning("dropped %d of %d prompts longer than %d tokens", len(dataset) - len(kept), len(dataset), max_tokens)
    return kept


def coerce_fields(config_class: type, options: dict[str, Any]) -> dict[str, Any]:
    """Convert string values of numeric fields (YAML reads ``1e-5`` as a string) to the
    field's type, with an error naming the field when that fails."""
    import dataclasses

    types = {f.name: f.type for f in dataclasses.fields(config_class)}
    out = dict(options)
    for name, value in options.items():
        declared = str(types.get(name, ""))
        if not isinstance(value, str):
            continue
        for kind, convert in (("float", float), ("int", int)):
            if declared.startswith(kind) or declared == f"<class '{kind}'>":
                try:
                    out[name] = convert(value)
                except ValueError as err:
                    raise ConfigError(f"{config_class.__name__}.{name}: {value!r} is not a {kind}") from err
                break
    return out


def grpo_args(cfg: TrainConfig, output_dir: str) -> Any:
    """TRL GRPOConfig from ``cfg.grpo`` plus the reward weights and device defaults."""
    from trl import GRPOConfig

    options = dict(cfg.grpo)
    _, weights = build_reward_functions(cfg.rewards)
    if "reward_weights" in options:
        raise ConfigError("set reward weights in rewards.weights, not grpo.reward_weights")
    options["reward_weights"] = weights
    options["output_dir"] = output_dir
    options.setdefault("report_to", "none")
    options.setdefault("logging_steps", 1)
    if options.get("num_generations", 8) < 2:
        raise ConfigError("grpo.num_generations must be >= 2 (group-relative advantages need a group)")
    if options.get("use_vllm") and importlib.util.find_spec("vllm") is None:
        raise ConfigError(
            "grpo.use_vllm is true but vLLM is not installed: `pip install anomamind[vllm]` "
            "on a GPU node, or set grpo.use_vllm=false (transformers generation)"
        )
    set_device_defaults(options, cfg.model.dtype)
    try:
        return GRPOConfig(**coerce_fields(GRPOConfig, options))
    except TypeError as err:
        raise ConfigError(f"grpo: {err}") from err


def _resume_path(value: Any, output_dir: str) -> str | None:
    """``resume_from_checkpoint``: a folder, or true for the latest one in output_dir."""
    if value in (None, False, "", "false", "False"):
        return None
    if value in (True, "true", "True", "last", "latest"):
        from transformers.trainer_utils import get_last_checkpoint

        last = get_last_checkpoint(output_dir) if Path(output_dir).is_dir() else None
        if last is None:
            log.warning("resume requested but no checkpoint in %s; starting fresh", output_dir)
        return last
    if not Path(str(value)).is_dir():
        raise ConfigError(f"resume_from_checkpoint: no such folder {value}")
    return str(value)


#: Written next to a trained model: what ``checkpoint:`` needs to prompt it as trained.
DETECTOR_INFO = "anomamind_detector.json"


def save_final(trainer: Any, tokenizer: Any, output_dir: str, detector_prompt: str | None = None) -> str:
    """Save the trained policy (LoRA merged into the base weights) to ``output_dir/final``,
    with the prompt style of its training data in ``final/anomamind_detector.json``."""
    final = Path(output_dir) / "final"
    model = trainer.accelerator.unwrap_model(trainer.model)
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    if trainer.accelerator.is_main_process:
        final.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(str(final))
        tokenizer.save_pretrained(str(final))
        (final / DETECTOR_INFO).write_text(json.dumps({"detector_prompt": detector_prompt or "full"}))
    return str(final)


def _validation_rows(validation: Any, section: ValidationSection, seed: int) -> list[dict[str, Any]]:
    if validation is None or len(validation) == 0 or not section.enabled:
        return []
    if len(validation) > section.max_windows:
        validation = validation.shuffle(seed=seed).select(range(section.max_windows))
    return validation.to_list()


def _write_history(trainer: Any, output_dir: str) -> None:
    if trainer.accelerator.is_main_process:
        Path(output_dir, "log_history.json").write_text(json.dumps(trainer.state.log_history, indent=1))


def _summary(trainer: Any, output_dir: str, final: str, result: Any, callback: Any) -> dict[str, Any]:
    history = trainer.state.log_history
    summary = {
        "checkpoint": final,
        "output_dir": output_dir,
        "global_step": int(trainer.state.global_step),
        "train_loss": getattr(result, "training_loss", None),
        "log_history": str(Path(output_dir) / "log_history.json"),
        "reward_terms": sorted({k.split("/")[1] for h in history for k in h if k.startswith("rewards/")}),
    }
    if callback is not None and callback.history:
        summary["validation_first"] = {k: v for k, v in callback.history[0].items() if k != "sample_answer"}
        summary["validation_last"] = {k: v for k, v in callback.history[-1].items() if k != "sample_answer"}
    return summary


# ----------------------------------------------------------------------------- entry


def train_grpo(cfg: TrainConfig, output_dir: str) -> dict[str, Any]:
    """Build TRL's GRPOTrainer from ``cfg`` and train; returns the run summary."""
    from trl import GRPOTrainer

    from anomamind.rl.train_progress import use_run_progress
    from anomamind.rl.validation import make_validation_callback

    args = grpo_args(cfg, output_dir)
    model, tokenizer = load_policy(cfg.model)
    train, validation = load_splits(cfg.data)
    train = filter_long_prompts(train, tokenizer, cfg.data.max_prompt_tokens)
    validation = filter_long_prompts(validation, tokenizer, cfg.data.max_prompt_tokens)
    funcs, _ = build_reward_functions(cfg.rewards)
    rows = _validation_rows(validation, cfg.validation, cfg.data.seed)
    callback = None
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=funcs,
        args=args,
        train_dataset=train,
        processing_class=tokenizer,
        peft_config=peft_config(cfg.model),
    )
    if rows:
        callback = make_validation_callback(
            rows, cfg.validation, tokenizer, output_dir, cfg.rewards, args.chat_template_kwargs
        )
        trainer.callback_handler.callbacks.insert(0, callback)  # before the loggers see `logs`
    use_run_progress(trainer, trainer_log_path(output_dir))
    result = trainer.train(resume_from_checkpoint=_resume_path(args.resume_from_checkpoint, output_dir))
    _write_history(trainer, output_dir)
    final = save_final(trainer, tokenizer, output_dir, prepared_prompt_style(cfg.data.path))
    return _summary(trainer, output_dir, final, result, callback)


def train_from_config(
    config_path: str | Path,
    overrides: list[str] | None = None,
    output_dir: str | None = None,
    trainer_args: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train from a config file (see the module docstring) and return the run summary
    (``checkpoint``: the final model folder, ``train_loss``, validation before/after).

    ``overrides`` are ``a.b=value`` strings; ``trainer_args`` are typed GRPOConfig (or
    SFTConfig) fields from the command line, applied last; ``output_dir`` wins over both.
    """
    cfg = load_train_config(config_path, overrides)
    section = cfg.sft if cfg.mode == "sft" else cfg.grpo
    section.update(trainer_args or {})
    out = output_dir or section.get("output_dir")
    if not out:
        raise ConfigError(f"{config_path}: no output directory (give --out or {cfg.mode}.output_dir)")
    section.pop("output_dir", None)
    Path(out).mkdir(parents=True, exist_ok=True)
    (Path(out) / "train_config.json").write_text(json.dumps(to_dict(cfg), indent=1, default=str))
    with log_to_file(run_log_path(str(out))) as handler:
        log.info("training (%s) from %s, overrides %s, into %s", cfg.mode, config_path, overrides or [], out)
        if cfg.mode == "sft":
            from anomamind.rl.sft import train_sft

            summary = train_sft(cfg, str(out))
        else:
            summary = train_grpo(cfg, str(out))
        log.info("finished: %s", json.dumps(summary, default=str))
    summary.update(logs=str(Path(out) / "logs"), log_warnings=handler.warnings)
    (Path(out) / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    return summary


def run_log_path(output_dir: str) -> Path:
    """``OUTPUT_DIR/logs/train.log`` (``train.rank<N>.log`` for the other processes of a
    multi-process run): every log record and Python warning of the run."""
    rank = int(os.environ.get("RANK", "0") or 0)
    return Path(output_dir) / "logs" / ("train.log" if rank == 0 else f"train.rank{rank}.log")


def trainer_log_path(output_dir: str) -> Path:
    """``OUTPUT_DIR/logs/trainer_log.jsonl``: the trainer's log dict of every logging step."""
    return Path(output_dir) / "logs" / "trainer_log.jsonl"
