"""Greedy multi-turn episodes of a policy in the training environment, outside TRL.

What the held-out validation of ``rollout: environment`` runs (and what a learning
experiment evaluates an environment-trained policy with): each prepared row's episode is
played turn by turn through a chat backend that sees the environment's tool schemas; the
hermes ``<tool_call>`` blocks it writes (agents/backends/messages.parse_hermes_tool_calls)
run on the row's environment exactly as TRL's rollout loop runs them, the results go back
as tool messages, and a turn without tool calls ends the episode. The final answer is
scored as in training (rl/environment.finish_rollout).
"""

from __future__ import annotations

from typing import Any, Sequence

from anomamind.rl.environment import DetectorToolEnv, RolloutContext, call_environment_tool, finish_rollout


def play_episodes(
    backend: Any,
    context: RolloutContext,
    rows: Sequence[dict[str, Any]],
    *,
    max_new_tokens: int = 256,
    trajectories: Any = None,
) -> list[DetectorToolEnv]:
    """Play the episodes of ``rows`` (prepared rows) greedily with ``backend`` (a chat
    backend of agents/backends), all rows' turns batched; returns the closed environments
    (``env.episode.trajectory`` holds each episode). ``trajectories``: where the episodes
    are written (None: nowhere); they never count in the run's training statistics."""
    from anomamind.agents.backends.messages import assistant_message, tool_message

    envs = [context.detached_environment(trajectories) for _ in rows]
    conversations, prompt_lengths = [], []
    for env, row in zip(envs, rows):
        instructions = env.reset(**row)
        prompt = [dict(m) for m in row["prompt"]]
        prompt[-1]["content"] = prompt[-1]["content"] + instructions
        conversations.append(prompt)
        prompt_lengths.append(len(prompt))
    schemas = context.tool_schemas()
    active = list(range(len(rows)))
    for _ in range(context.section.max_turns):
        if not active:
            break
        responses = backend.chat_many(
            [conversations[i] for i in active], tools=schemas, temperature=0.0, max_tokens=max_new_tokens
        )
        calling = []
        for i, response in zip(active, responses):
            conversations[i].append(assistant_message(response.text, response.tool_calls))
            for call in response.tool_calls:
                result = call_environment_tool(envs[i], call.name, call.arguments)
                conversations[i].append(tool_message(call.id, call.name, result))
            if response.tool_calls:
                calling.append(i)
        active = calling
    for env, conversation, n in zip(envs, conversations, prompt_lengths):
        finish_rollout(env, conversation[n:])
    return envs


def environment_answers(
    model: Any,
    tokenizer: Any,
    context: RolloutContext,
    rows: Sequence[dict[str, Any]],
    *,
    max_new_tokens: int = 256,
    batch_size: int = 8,
    chat_template_kwargs: dict[str, Any] | None = None,
) -> list[str]:
    """The final answers of ``model``'s greedy episodes on ``rows`` (the model is left in
    the mode it was in)."""
    from anomamind.agents.backends.transformers_local import TransformersBackend

    was_training = model.training
    try:
        backend = TransformersBackend(
            model,
            tokenizer=tokenizer,
            device=str(next(model.parameters()).device),
            max_batch_size=batch_size,
            enable_thinking=(chat_template_kwargs or {}).get("enable_thinking"),
        )
        envs = play_episodes(backend, context, rows, max_new_tokens=max_new_tokens)
    finally:
        model.train(was_training)
    return [env.episode.trajectory.detection.raw_text for env in envs]
