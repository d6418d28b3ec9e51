"""Backends from configuration, and the vLLM backend's missing-dependency path."""

from __future__ import annotations

import importlib.util

import pytest
from fake_chat_server import FakeChatServer

from anomamind.agents.backends.base import BackendUnavailableError
from anomamind.agents.backends.factory import BackendConfig, make_backend, make_backends
from anomamind.agents.backends.openai_compat import OpenAICompatBackend
from anomamind.config import ConfigError

HAS_VLLM = importlib.util.find_spec("vllm") is not None


def test_openai_backend_from_config_talks_to_the_endpoint():
    with FakeChatServer(["hello"]) as server:
        backend = make_backend({"kind": "openai", "model": "m", "base_url": server.base_url, "max_concurrency": 2})
        assert isinstance(backend, OpenAICompatBackend) and backend.max_concurrency == 2
        assert backend.chat([{"role": "user", "content": "hi"}]).text == "hello"
    assert server.requests[0]["model"] == "m"


def test_identical_configs_share_one_backend():
    backends = make_backends(
        {
            "general": {"kind": "openai", "model": "a"},
            "evaluator": {"kind": "openai", "model": "a"},
            "vision": {"kind": "openai", "model": "b"},
        }
    )
    assert backends["general"] is backends["evaluator"]
    assert backends["vision"] is not backends["general"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"kind": "grpc", "model": "m"}, "kind 'grpc' is not one of"),
        ({"kind": "openai"}, "needs a 'model'"),
        ({"kind": "openai", "model": "m", "base_ulr": "x"}, r"backends.general: unknown key\(s\) \['base_ulr'\]"),
    ],
)
def test_bad_backend_configs_are_named(data, message):
    with pytest.raises(ConfigError, match=message):
        make_backends({"general": data})


@pytest.mark.skipif(HAS_VLLM, reason="vllm is installed: the missing-dependency path cannot be exercised")
def test_vllm_missing_is_a_clear_error():
    with pytest.raises(BackendUnavailableError, match=r"needs vllm.*anomamind\[vllm\]"):
        make_backend(BackendConfig(kind="vllm", model="Qwen/Qwen3-0.6B"))


@pytest.mark.vllm
@pytest.mark.gpu
@pytest.mark.skipif(not HAS_VLLM, reason="needs vllm and a CUDA GPU")
def test_vllm_engine_chat(tmp_path):  # pragma: no cover - GPU nodes only
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    from anomamind.rl.tiny import build_tiny_qwen3

    build_tiny_qwen3(out_dir=tmp_path / "tiny")
    backend = make_backend(BackendConfig(kind="vllm", model=str(tmp_path / "tiny"), gpu_memory_utilization=0.2))
    responses = backend.chat_many([[{"role": "user", "content": f"q{k}"}] for k in range(3)], max_tokens=8)
    assert len(responses) == 3
    assert all(1 <= r.usage["completion_tokens"] <= 8 and r.usage["prompt_tokens"] > 0 for r in responses)
