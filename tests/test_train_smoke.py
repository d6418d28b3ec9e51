"""End to end on CPU, exactly the documented smoke recipe: prepare synthetic windows ->
configs/train/smoke.yaml (its SFT warm start, then GRPO) -> resume from a checkpoint -> the
checkpoint answers as a benchmark detector. A tiny random Qwen3 and a tokenizer built in
code (rl/tiny.py); nothing is downloaded.

The SFT warm start comes first because a random policy never writes a parseable answer:
every GRPO group would score 0 on every term, the group-relative advantages would all be
zero, and no parameter would move (loss 0, grad_norm 0 at every step). After a few SFT
steps some sampled answers parse and some do not, which is the reward variance GRPO
learns from; the test asserts that variance and the non-zero gradients step by step.
"""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("trl")
pytest.importorskip("datasets")

from anomamind.paths import CONFIG_DIR  # noqa: E402
from anomamind.rl.prepare import PrepareConfig, prepare_dataset  # noqa: E402
from anomamind.rl.rewards import REWARD_TERMS  # noqa: E402
from anomamind.rl.train import train_from_config  # noqa: E402


def _weights(folder):
    from safetensors.torch import load_file  # torch: bf16 on GPU has no numpy dtype

    return load_file(str(folder / "model.safetensors"))


@pytest.mark.timeout(300)
def test_prepare_sft_grpo_and_checkpoint_detector(tmp_path):
    prepared = tmp_path / "prepared"
    summary = prepare_dataset(
        PrepareConfig(data="synthetic:3", out=str(prepared), window=16, max_windows_per_series=2, progress=False)
    )
    assert summary["splits"]["train"]["windows"] > 0 and not summary["failures"]

    grpo = train_from_config(CONFIG_DIR / "train" / "smoke.yaml", [f"data.path={prepared}"], str(tmp_path / "grpo"))
    sft_dir = tmp_path / "grpo" / "warm_start"
    assert grpo["warm_start"]["checkpoint"] == str(sft_dir / "final")
    sft_history = json.loads((sft_dir / "log_history.json").read_text())
    losses = [h["loss"] for h in sft_history if "loss" in h]
    assert losses and losses[-1] < losses[0]

    history = json.loads((tmp_path / "grpo" / "log_history.json").read_text())
    steps = [h for h in history if "loss" in h]
    assert len(steps) == 3
    # it trains: gradients, and reward variance inside the groups, on most steps
    assert sum(h["grad_norm"] > 0 for h in steps) >= 2, [h["grad_norm"] for h in steps]
    assert sum(h["frac_reward_zero_std"] < 1 for h in steps) >= 2, [h["frac_reward_zero_std"] for h in steps]
    for term in REWARD_TERMS:
        assert all(f"rewards/{term}/mean" in h for h in steps), term
    assert sorted(grpo["reward_terms"]) == sorted(REWARD_TERMS)
    # validation ran before, during (every 2 steps) and after training
    validations = [h for h in history if "validation/point_f1" in h]
    assert [h["step"] for h in validations] == [0, 2, 3]
    assert (tmp_path / "grpo" / "validation.jsonl").is_file()
    # the policy moved away from its warm start
    before, after = _weights(sft_dir / "final"), _weights(tmp_path / "grpo" / "final")
    assert before.keys() == after.keys()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    # the run resumes from its last checkpoint (checkpoint-2) and goes on to step 4
    assert (tmp_path / "grpo" / "checkpoint-2").is_dir()
    resumed = train_from_config(
        CONFIG_DIR / "train" / "smoke.yaml",
        [f"data.path={prepared}", "grpo.max_steps=4", "grpo.resume_from_checkpoint=true"],
        str(tmp_path / "grpo"),
    )
    assert resumed["warm_start"] == grpo["warm_start"]  # reused, not trained again
    assert resumed["global_step"] == 4
    # started at step 2, not 0: no validation before training this time
    assert resumed["validation_first"]["step"] == 4
    history = json.loads((tmp_path / "grpo" / "log_history.json").read_text())
    assert [h["step"] for h in history if "loss" in h] == [1, 2, 3, 4]  # 1-2 restored, 3-4 trained

    # the model is served with the prompt style it was trained on
    assert json.loads((tmp_path / "grpo" / "final" / "anomamind_detector.json").read_text()) == {"detector_prompt": "compact"}
    from anomamind.envs.synthetic import generate_dataset
    from anomamind.eval.registry import create_detector

    detector = create_detector(f"checkpoint:{grpo['checkpoint']}", window=16, max_tokens=12, batch_size=8)
    series = generate_dataset(n_series=1, seed=5, length=48)[0]
    prediction = detector.detect(series)
    assert prediction.pred.shape == (48,) and prediction.scores.shape == (48,)
    assert prediction.info["windows"] == 3
    assert 0 <= prediction.failed_windows <= 3
    assert detector.workflow.config.detector_prompt == "compact"
