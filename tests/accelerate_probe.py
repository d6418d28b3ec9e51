"""Run scripts/train_grpo.py under ``accelerate launch`` with the scripted policy and record,
per process, what the multi-process test checks (tests/test_train_multiprocess.py).

Usage: ``accelerate launch --multi_gpu --num_processes 2 tests/accelerate_probe.py PROBE_DIR
<scripts/train_grpo.py arguments>`` (on a machine without GPUs: two CPU processes, gloo). Each process writes ``PROBE_DIR/rankR.json``: its rank
and world size, the steps it took, a digest of its gradients before each optimizer step
and of its parameters after it (and before training), and the windows it was given.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from scripted_policy import WINDOW_RE, scripted_policy_callback  # noqa: E402


def digest(tensors) -> str:
    """sha256 over (name, bytes) of named tensors, in order."""
    h = hashlib.sha256()
    for name, tensor in tensors:
        h.update(name.encode())
        h.update(tensor.detach().float().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


def probe_callback(probe_dir: Path, scripted) -> object:
    from transformers import TrainerCallback

    class ProbeCallback(TrainerCallback):
        def __init__(self) -> None:
            self.record = {"steps": [], "grads": {}, "params": {}}

        def on_train_begin(self, args, state, control, model=None, **kwargs):
            self.record.update(rank=args.process_index, world=args.world_size, start_step=state.global_step)
            self.record["params_before"] = digest(model.named_parameters())

        def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
            grads = [(n, p.grad) for n, p in model.named_parameters() if p.grad is not None]
            self.record["grads"][state.global_step + 1] = digest(grads)

        def on_step_end(self, args, state, control, model=None, **kwargs):
            self.record["steps"].append(state.global_step)
            self.record["params"][state.global_step] = digest(model.named_parameters())

        def on_train_end(self, args, state, control, **kwargs):
            self.record["windows"] = sorted({m for c in scripted.generate.contexts for m in WINDOW_RE.findall(c)[-1:]})
            probe_dir.mkdir(parents=True, exist_ok=True)
            (probe_dir / f"rank{args.process_index}.json").write_text(json.dumps(self.record, indent=1))

    return ProbeCallback()


def main() -> int:
    probe_dir, argv = Path(sys.argv[1]), sys.argv[2:]
    mode = "environment" if "rollout=environment" in argv else "single_turn"
    spec = importlib.util.spec_from_file_location("train_grpo", HERE.parent / "scripts" / "train_grpo.py")
    entry = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(entry)
    scripted = scripted_policy_callback(mode, seed=0)
    return entry.main(argv, callbacks=[scripted, probe_callback(probe_dir, scripted)])


if __name__ == "__main__":
    sys.exit(main())
