"""The gymnasium env: reset/step, rewards, refinement, caching, seeding, registration."""

from __future__ import annotations

import gymnasium
import numpy as np
import pytest

from anomamind.envs.env import ENV_ID, WorkflowEnv, make_workflow_env
from anomamind.types import DataError, Series


def _series(name: str = "toy", labels: bool = True, n: int = 500) -> Series:
    rng = np.random.default_rng(len(name))
    x = np.sin(2 * np.pi * np.arange(n) / 25) + rng.normal(0, 0.05, n)
    x[230] += 3.0
    y = np.zeros(n, dtype=int)
    y[230] = 1
    return Series(x, y if labels else None, name=name, dataset="TOY")


GOOD = '<think>spike at 230</think>\n[{"interval": [230, 230], "type": "point-global", "explanation": "spike", "confidence": 3}]'
WHOLE = '<think>everything</think>\n[{"interval": [200, 299], "type": "other", "explanation": "?", "confidence": 1}]'


def test_reset_returns_detector_messages_and_step_scores_the_answer():
    env = make_workflow_env([_series()])
    obs, info = env.reset(options={"series": "toy", "window": 2})
    assert env.observation_space.contains(obs)
    assert obs[0]["role"] == "system" and "Window 200-299;" in obs[-1]["content"]
    assert info["window"] == [200, 300] and info["has_labels"] and not info["cached"]
    obs2, reward, terminated, truncated, step_info = env.step(GOOD)
    assert terminated and not truncated and obs2 == []
    assert step_info["rewards"]["two_sided"] == 1.0 and step_info["rewards"]["format_reward"] == 1.0
    good_reward = reward
    env.reset(options={"series": "toy", "window": 2})
    _, bad_reward, *_ = env.step("no idea")
    assert bad_reward < good_reward
    with pytest.raises(RuntimeError, match="reset"):
        env.step(GOOD)


def test_refinement_round_then_termination():
    env = make_workflow_env([_series()], max_refinements=1)
    env.reset(options={"series": "toy", "window": 2})
    obs, reward, terminated, _, info = env.step(WHOLE)
    assert not terminated and info["evaluator"]["needs_refinement"]
    assert obs[-2] == {"role": "assistant", "content": WHOLE}
    assert "evaluator" in obs[-1]["content"]
    _, _, terminated, _, info = env.step(WHOLE)  # bound reached: terminates regardless
    assert terminated
    roles = [s.role for s in info["trajectory"].steps]
    assert roles.count("detector") == 2 and info["trajectory"].info["refinements"] == 1


def test_no_evaluator_terminates_at_once():
    env = make_workflow_env([_series()], evaluate=False)
    env.reset(options={"series": "toy", "window": 2})
    assert env.step(WHOLE)[2]


def test_seeded_episodes_are_reproducible():
    pool = [_series("a"), _series("bb"), _series("ccc")]
    env = make_workflow_env(pool)
    first = [env.reset(seed=7)[1]["task_id"]] + [env.reset()[1]["task_id"] for _ in range(5)]
    again = [env.reset(seed=7)[1]["task_id"]] + [env.reset()[1]["task_id"] for _ in range(5)]
    assert first == again
    other = [env.reset(seed=8)[1]["task_id"]] + [env.reset()[1]["task_id"] for _ in range(5)]
    assert other != first
    assert env.reset(seed=7)[0] == env.reset(seed=7)[0]


def test_upstream_cache_serves_identical_prompts_and_keys_on_the_configuration(tmp_path):
    env = make_workflow_env([_series()], cache_dir=tmp_path)
    obs, info = env.reset(options={"series": "toy", "window": 2})
    assert not info["cached"]
    fresh = make_workflow_env([_series()], cache_dir=tmp_path)
    obs_cached, info_cached = fresh.reset(options={"series": "toy", "window": 2})
    assert info_cached["cached"] and obs_cached == obs and fresh.cache.hits == 1
    # a different role configuration must not be served from the same entry
    ablated = make_workflow_env([_series()], cache_dir=tmp_path, agent_options={"disable": ["localization"]})
    assert not ablated.reset(options={"series": "toy", "window": 2})[1]["cached"]
    # changed values: a different key
    changed = _series()
    changed.values[0] += 1.0
    assert not make_workflow_env([changed], cache_dir=tmp_path).reset(options={"series": "toy", "window": 2})[1]["cached"]
    # a corrupt entry is a miss, then rewritten
    path = env.cache.path(env.pool[2])
    path.write_text("{not json")
    again = make_workflow_env([_series()], cache_dir=tmp_path)
    assert not again.reset(options={"series": "toy", "window": 2})[1]["cached"]
    assert make_workflow_env([_series()], cache_dir=tmp_path).reset(options={"series": "toy", "window": 2})[1]["cached"]


def test_unlabelled_series_give_zero_reward_and_no_terms():
    env = make_workflow_env([_series(labels=False)])
    env.reset(seed=0)
    _, reward, _, _, info = env.step(GOOD)
    assert reward == 0.0 and info["rewards"] == {}


def test_registered_with_gymnasium_and_trajectories_written(tmp_path):
    path = tmp_path / "episodes.jsonl"
    env = gymnasium.make(ENV_ID, series=[_series()], trajectories=path, anomalous_only=True)
    obs, info = env.reset(seed=1)
    assert info["window"] == [200, 300]  # the only anomalous window
    env.step(GOOD)
    assert len(path.read_text().splitlines()) == 1


def test_bad_pool_and_options_give_clear_errors():
    with pytest.raises(DataError, match="at least one series"):
        make_workflow_env([])
    env = make_workflow_env([_series()])
    with pytest.raises(KeyError, match="no series named"):
        env.reset(options={"series": "nope"})
    assert isinstance(env, WorkflowEnv)
