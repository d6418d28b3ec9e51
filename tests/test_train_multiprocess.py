"""Multi-process training with ``accelerate launch`` (two CPU processes, gloo) and the
committed accelerate configs.

Two launches of scripts/train_grpo.py (through tests/accelerate_probe.py, which adds the
scripted policy of tests/scripted_policy.py and records per-process digests): single-turn
GRPO for steps 1-2 (checkpoint-2), then environment rollouts resumed from that checkpoint
for steps 3-4 (checkpoint-4). In both, each process trains on different windows, their
gradients agree before every optimizer step (DDP all-reduced them) and their parameters
agree after it, and the parameters move. Each launch costs about 20 s of wall time on 2
cores, most of it two interpreters importing torch/transformers/trl.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("trl")
pytest.importorskip("accelerate")
pytest.importorskip("datasets")

from anomamind.paths import CONFIG_DIR, REPO_ROOT  # noqa: E402
from anomamind.rl.prepare import PrepareConfig, prepare_dataset  # noqa: E402

HERE = Path(__file__).resolve().parent


def _launch(probe: Path, run: Path, *overrides: str) -> list[dict]:
    """accelerate launch of two CPU processes; returns each process's probe record."""
    command = [
        sys.executable, "-m", "accelerate.commands.launch",
        "--multi_gpu", "--num_processes", "2", "--num_machines", "1",  # no GPU here: torchrun + gloo on CPU
        "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "0",
        str(HERE / "accelerate_probe.py"), str(probe),
        "--config", str(CONFIG_DIR / "train" / "smoke.yaml"), "--out", str(run),
    ]
    settings = [
        "warm_start.config=null",  # the scripted policy needs no SFT warm start
        "grpo.save_steps=2", "grpo.lr_scheduler_type=constant", "grpo.max_completion_length=256",
        "validation.enabled=false", *overrides,
    ]
    command += [arg for item in settings for arg in ("--set", item)]
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]
    return [json.loads((probe / f"rank{r}.json").read_text()) for r in (0, 1)]


def _check_in_step(ranks: list[dict], steps: list[int], start_params: str | None = None) -> None:
    a, b = ranks
    assert (a["rank"], b["rank"], a["world"], b["world"]) == (0, 1, 2, 2)
    assert a["steps"] == b["steps"] == steps
    assert a["params_before"] == b["params_before"]
    if start_params is not None:
        assert a["params_before"] == start_params  # resumed from the checkpoint's weights
    assert a["grads"] == b["grads"] and len(a["grads"]) == len(steps)  # synchronised gradients
    assert a["params"] == b["params"]  # the same update on both ranks
    seen = [a["params_before"]] + [a["params"][str(s)] for s in steps]
    assert len(set(seen)) == len(seen)  # every step moved the parameters
    assert a["windows"] and b["windows"] and a["windows"] != b["windows"]  # each rank had its own data


@pytest.mark.timeout(900)
def test_two_process_launch_single_turn_then_environment_resumed(tmp_path):
    prepared = tmp_path / "prepared"
    prepare_dataset(PrepareConfig(data="synthetic:3", out=str(prepared), window=16, max_windows_per_series=2, progress=False))
    run = tmp_path / "run"
    first = _launch(tmp_path / "probe1", run, f"data.path={prepared}", "grpo.max_steps=2")
    _check_in_step(first, [1, 2])
    assert sorted(p.name for p in run.glob("checkpoint-*")) == ["checkpoint-2"]
    checkpoint = run / "checkpoint-2"
    assert (checkpoint / "model.safetensors").is_file() and (checkpoint / "optimizer.pt").is_file()
    assert sorted(p.name for p in checkpoint.glob("rng_state_*.pth")) == ["rng_state_0.pth", "rng_state_1.pth"]

    second = _launch(
        tmp_path / "probe2", run, f"data.path={prepared}", "grpo.max_steps=4",
        "rollout=environment", "grpo.resume_from_checkpoint=true",
    )
    _check_in_step(second, [3, 4], start_params=first[0]["params"]["2"])
    assert (run / "checkpoint-4").is_dir()
    history = json.loads((run / "log_history.json").read_text())
    assert [h["step"] for h in history if "loss" in h] == [1, 2, 3, 4]
    assert all("environment/submitted" in h for h in history if h.get("step") in (3, 4) and "loss" in h)
    for rank in (0, 1):  # each process wrote its own episodes
        lines = (run / f"trajectories.rank{rank}.jsonl").read_text().splitlines()
        assert len(lines) == 2 * 4  # 2 steps x 4 rollouts per process (its prompt x 4 generations)
    assert not (run / "trajectories.jsonl").exists()


def test_committed_accelerate_configs_parse_with_accelerates_loader():
    from accelerate.commands.config.config_args import load_config_from_file
    from accelerate.utils import DistributedType

    expected = {
        "single_gpu.yaml": (DistributedType.NO, 1),
        "multi_gpu_ddp.yaml": (DistributedType.MULTI_GPU, 8),
        "deepspeed_zero2.yaml": (DistributedType.DEEPSPEED, 8),
        "deepspeed_zero3.yaml": (DistributedType.DEEPSPEED, 8),
        "fsdp2.yaml": (DistributedType.FSDP, 8),
    }
    folder = CONFIG_DIR / "accelerate"
    assert sorted(p.name for p in folder.glob("*.yaml")) == sorted(expected)
    for name, (kind, processes) in expected.items():
        config = load_config_from_file(str(folder / name))  # unknown keys are an error there
        assert (config.distributed_type, config.num_processes, config.mixed_precision) == (kind, processes, "bf16"), name
    fsdp = load_config_from_file(str(folder / "fsdp2.yaml")).fsdp_config
    assert fsdp["fsdp_version"] == 2
    from accelerate.utils.dataclasses import get_module_class_from_name

    from anomamind.rl.tiny import build_tiny_qwen3

    model, _ = build_tiny_qwen3(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1)
    # the wrapping unit, found the way accelerate finds it in a Qwen3 model
    assert get_module_class_from_name(model, fsdp["fsdp_transformer_layer_cls_to_wrap"]) is not None
