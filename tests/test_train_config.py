"""Train configs and command-line fields: parsing, validation, clear errors (no training)."""

from __future__ import annotations

import importlib.util

import pytest

pytest.importorskip("trl")

from anomamind.config import ConfigError  # noqa: E402
from anomamind.paths import CONFIG_DIR  # noqa: E402
from anomamind.rl.cli import split_extra  # noqa: E402
from anomamind.rl.train import (  # noqa: E402
    grpo_args,
    load_splits,
    load_train_config,
    prepared_prompt_style,
    train_from_config,
    trainer_args_from_cli,
)

SMOKE = CONFIG_DIR / "train" / "smoke.yaml"


def test_every_shipped_train_config_builds_its_trainer_arguments(tmp_path):
    from anomamind.rl.sft import sft_args

    for path in sorted((CONFIG_DIR / "train").glob("*.yaml")):
        cfg = load_train_config(path)
        args = sft_args(cfg, str(tmp_path)) if cfg.mode == "sft" else grpo_args(cfg, str(tmp_path))
        assert args.output_dir == str(tmp_path), path.name
        if cfg.mode == "grpo":
            assert args.num_generations >= 2
            assert len(args.reward_weights) == len(cfg.rewards.enabled)


def test_cli_fields_are_typed_and_only_given_ones_returned():
    fields = trainer_args_from_cli(["--learning_rate", "1e-5", "--bf16", "false", "--num_generations", "4"])
    assert fields == {"learning_rate": 1e-5, "bf16": False, "num_generations": 4}
    assert trainer_args_from_cli([]) == {}
    assert trainer_args_from_cli(["--max_length", "256"], mode="sft") == {"max_length": 256}
    with pytest.raises(ConfigError, match="unknown GRPOConfig option"):
        trainer_args_from_cli(["--no_such_field", "1"])


def test_split_extra_keeps_overrides_and_flags_apart():
    assert split_extra(["grpo.max_steps=3", "--learning_rate", "1e-5", "model.lora.r=8"]) == (
        ["grpo.max_steps=3", "model.lora.r=8"],
        ["--learning_rate", "1e-5"],
    )


def test_overrides_reach_the_sections():
    cfg = load_train_config(SMOKE, ["grpo.learning_rate=2e-5", "rewards.enabled=[two_sided]", "model.lora={r: 4}"])
    args = grpo_args(cfg, "/tmp/unused")
    assert args.learning_rate == pytest.approx(2e-5)  # YAML's "2e-5" string coerced
    assert args.reward_weights == [1.0]
    assert cfg.model.lora == {"r": 4}


def test_config_errors_name_the_problem(tmp_path):
    with pytest.raises(ConfigError, match="unknown reward term"):
        load_train_config(SMOKE, ["rewards.enabled=[f1]"])
    with pytest.raises(ConfigError, match="num_generations must be >= 2"):
        grpo_args(load_train_config(SMOKE, ["grpo.num_generations=1"]), str(tmp_path))
    with pytest.raises(ConfigError, match="reward_weights"):
        grpo_args(load_train_config(SMOKE, ["grpo.reward_weights=[1.0]"]), str(tmp_path))
    with pytest.raises(ConfigError, match="grpo: .*no_such"):
        grpo_args(load_train_config(SMOKE, ["grpo.no_such=1"]), str(tmp_path))
    with pytest.raises(ConfigError, match="mode must be one of"):
        load_train_config(SMOKE, ["mode=dpo"])
    with pytest.raises(ConfigError, match="not a prepared dataset"):
        load_splits(load_train_config(SMOKE, [f"data.path={tmp_path}"]).data)
    with pytest.raises(ConfigError, match="no output directory"):
        train_from_config(SMOKE)


def test_the_train_config_checks_the_prepared_prompt_style(tmp_path):
    (tmp_path / "dataset_dict.json").write_text('{"splits": ["train"]}')
    (tmp_path / "summary.json").write_text('{"detector_prompt": "compact"}')
    assert prepared_prompt_style(tmp_path) == "compact"
    with pytest.raises(ConfigError, match="data.detector_prompt is 'full' but .* was prepared with 'compact'"):
        load_splits(load_train_config(SMOKE, [f"data.path={tmp_path}", "data.detector_prompt=full"]).data)
    (tmp_path / "summary.json").write_text("{}")  # prepared before prompt styles: full
    with pytest.raises(ConfigError, match="prepared with 'full'"):
        load_splits(load_train_config(SMOKE, [f"data.path={tmp_path}", "data.detector_prompt=compact"]).data)


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vLLM is installed here")
def test_asking_for_vllm_without_it_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="vLLM is not installed"):
        grpo_args(load_train_config(SMOKE, ["grpo.use_vllm=true"]), str(tmp_path))
