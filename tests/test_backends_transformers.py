"""The local transformers backend with a tiny Qwen3 (text, hermes tool calls) and a tiny
Qwen2-VL (image input), both built from configs with random weights: no hub access."""

from __future__ import annotations

import io

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from anomamind.agents.backends.base import BackendError  # noqa: E402
from anomamind.agents.backends.messages import image_part, text_part  # noqa: E402
from anomamind.agents.backends.transformers_local import TransformersBackend  # noqa: E402
from anomamind.rl.tiny import CHAT_TEMPLATE as TINY_CHATML  # noqa: E402
from anomamind.rl.tiny import build_tiny_qwen3, build_tokenizer  # noqa: E402

#: A ChatML template that renders tool schemas, assistant tool calls and tool results the
#: way Qwen's hermes-style templates do (the rl/tiny template has no tool support).
HERMES_TEMPLATE = (
    "{% if tools %}<|im_start|>system\n# Tools\n<tools>\n"
    "{% for tool in tools %}{{ tool | tojson }}\n{% endfor %}</tools><|im_end|>\n{% endif %}"
    "{% for message in messages %}"
    "{% if message.role == 'assistant' and message.tool_calls %}<|im_start|>assistant\n{{ message.content }}"
    "{% for call in message.tool_calls %}<tool_call>"
    '{"name": "{{ call.function.name }}", "arguments": {{ call.function.arguments | tojson }}}'
    "</tool_call>{% endfor %}<|im_end|>\n"
    "{% elif message.role == 'tool' %}<|im_start|>user\n<tool_response>{{ message.content }}</tool_response><|im_end|>\n"
    "{% else %}<|im_start|>{{ message.role }}\n{{ message.content }}<|im_end|>\n{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "zscore",
            "description": "robust z-scores of the window",
            "parameters": {"type": "object", "properties": {"threshold": {"type": "number"}}},
        },
    }
]
TOOL_ANSWER = 'Checking.<tool_call>{"name": "zscore", "arguments": {"threshold": 3}}</tool_call>'


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Tiny models run faster on one thread, and do not fight other processes for cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny_qwen3():
    tokenizer = build_tokenizer()
    tokenizer.chat_template = HERMES_TEMPLATE
    model, tokenizer = build_tiny_qwen3(tokenizer=tokenizer, seed=0)
    return model, tokenizer


def _teach(model, tokenizer, prompt: str, answer: str, max_steps: int = 300) -> int:
    """Overfit the tiny model on one prompt -> answer until greedy decoding reproduces it."""
    ids = tokenizer(prompt + answer + tokenizer.eos_token, return_tensors="pt", add_special_tokens=False).input_ids
    start = len(tokenizer(prompt, add_special_tokens=False).input_ids)
    labels = ids.clone()
    labels[:, :start] = -100
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-2)
    model.train()
    for step in range(max_steps):
        out = model(input_ids=ids, labels=labels)
        predicted = out.logits[0, start - 1 : -1].argmax(-1)
        if torch.equal(predicted, ids[0, start:]):
            break
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
    model.eval()
    return step


def test_tools_reach_the_template_and_hermes_calls_are_parsed(tiny_qwen3):
    model, tokenizer = tiny_qwen3
    backend = TransformersBackend(model, tokenizer=tokenizer, device="cpu")
    messages = [{"role": "system", "content": "You run tools."}, {"role": "user", "content": "check the window"}]
    prompt = backend.render_prompt(messages, TOOLS)
    assert '"name": "zscore"' in prompt and prompt.endswith("<|im_start|>assistant\n")
    _teach(model, tokenizer, prompt, TOOL_ANSWER)

    response = backend.chat(messages, tools=TOOLS, max_tokens=60)

    assert response.text == "Checking."
    assert [(c.name, c.arguments) for c in response.tool_calls] == [("zscore", {"threshold": 3})]
    assert response.finish_reason == "tool_calls"
    assert response.usage["prompt_tokens"] == len(tokenizer(prompt, add_special_tokens=False).input_ids)
    # the answer's tokens plus the end-of-turn token
    assert response.usage["completion_tokens"] == len(tokenizer(TOOL_ANSWER, add_special_tokens=False).input_ids) + 1

    # the tool exchange renders back into the next prompt (arguments as JSON, result as a tool turn)
    follow_up = messages + [
        {
            "role": "assistant",
            "content": "Checking.",
            "tool_calls": [{"id": "c0", "type": "function", "function": {"name": "zscore", "arguments": '{"threshold": 3}'}}],
        },
        {"role": "tool", "tool_call_id": "c0", "name": "zscore", "content": '{"max_z": 7.5}'},
    ]
    rendered = backend.render_prompt(follow_up, TOOLS)
    assert '<tool_call>{"name": "zscore", "arguments": {"threshold": 3}}</tool_call>' in rendered
    assert '<tool_response>{"max_z": 7.5}</tool_response>' in rendered


def test_batched_generation_matches_single_and_counts_tokens(tiny_qwen3):
    model, tokenizer = tiny_qwen3
    backend = TransformersBackend(model, tokenizer=tokenizer, device="cpu", max_batch_size=2)
    conversations = [[{"role": "user", "content": f"window {k} values 1 2 {k}" + " pad" * k}] for k in range(3)]
    batched = backend.chat_many(conversations, max_tokens=8)
    singles = [backend.chat(c, max_tokens=8) for c in conversations]
    assert [r.text for r in batched] == [r.text for r in singles]
    assert [r.usage["prompt_tokens"] for r in batched] == [
        len(tokenizer(backend.render_prompt(c), add_special_tokens=False).input_ids) for c in conversations
    ]
    assert all(1 <= r.usage["completion_tokens"] <= 8 for r in batched)
    assert backend.usage.as_dict()["requests"] == 6


def test_sampling_is_seeded_and_returns_n_samples(tiny_qwen3):
    model, tokenizer = tiny_qwen3
    backend = TransformersBackend(model, tokenizer=tokenizer, device="cpu")
    messages = [{"role": "user", "content": "describe"}]
    first = backend.chat(messages, temperature=1.5, max_tokens=12, n=3, seed=11)
    again = backend.chat(messages, temperature=1.5, max_tokens=12, n=3, seed=11)
    assert len(first.samples) == 3 and first.samples == again.samples
    assert first.text == first.samples[0] or first.tool_calls
    greedy = backend.chat(messages, max_tokens=12, n=2)
    assert len(greedy.samples) == 2 and greedy.samples[0] == greedy.samples[1]


def test_a_template_without_tool_support_is_warned_about(tiny_qwen3, caplog):
    model, tokenizer = tiny_qwen3
    backend = TransformersBackend(model, tokenizer=tokenizer, device="cpu")
    tokenizer.chat_template = TINY_CHATML  # rl/tiny's template renders no tools
    try:
        with caplog.at_level("WARNING"):
            backend.render_prompt([{"role": "user", "content": "x"}], TOOLS)
    finally:
        tokenizer.chat_template = HERMES_TEMPLATE
    assert "ignores tool schemas" in caplog.text and "tool_mode: text" in caplog.text


def test_text_model_refuses_images_with_a_clear_error(tiny_qwen3):
    model, tokenizer = tiny_qwen3
    backend = TransformersBackend(model, tokenizer=tokenizer, device="cpu")
    messages = [{"role": "user", "content": [text_part("look"), image_part(_png(255))]}]
    with pytest.raises(BackendError, match="text-only model.*vision-language"):
        backend.chat(messages)


def test_loads_a_saved_checkpoint_folder_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    build_tiny_qwen3(out_dir=tmp_path / "tiny", seed=1)
    backend = TransformersBackend(str(tmp_path / "tiny"), device="cpu", dtype="float32")
    assert backend.model == str(tmp_path / "tiny") and not backend.is_vision
    response = backend.chat([{"role": "user", "content": "hello"}], max_tokens=5)
    assert 1 <= response.usage["completion_tokens"] <= 5 and response.usage["prompt_tokens"] > 0


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_checkpoint_on_gpu_in_bfloat16(tmp_path):  # pragma: no cover - GPU nodes only
    build_tiny_qwen3(out_dir=tmp_path / "tiny", seed=1)
    backend = TransformersBackend(str(tmp_path / "tiny"), device="auto", dtype="auto")
    assert backend.device == "cuda" and next(backend._model.parameters()).dtype == torch.bfloat16
    responses = backend.chat_many([[{"role": "user", "content": f"q{k}"}] for k in range(4)], max_tokens=6)
    assert len(responses) == 4 and all(1 <= r.usage["completion_tokens"] <= 6 for r in responses)


def test_missing_model_path_names_it(tmp_path):
    with pytest.raises(BackendError, match="cannot load model.*does-not-exist"):
        TransformersBackend(str(tmp_path / "does-not-exist"), device="cpu")


# -- a tiny Qwen2-VL ---------------------------------------------------------------------

VISION_TOKENS = ["<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]
VL_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message.role }}\n"
    "{% if message.content is string %}{{ message.content }}{% else %}{% for part in message.content %}"
    "{% if part.type == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif part.type == 'text' %}{{ part.text }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _png(gray: int, size: tuple[int, int] = (112, 56)) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", size, (gray, gray, gray)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def tiny_qwen2_vl():
    from transformers import GenerationConfig, Qwen2VLConfig, Qwen2VLForConditionalGeneration, Qwen2VLProcessor
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil
    from transformers.processing_utils import ProcessorMixin

    class ImageOnlyQwen2VLProcessor(Qwen2VLProcessor):
        """Qwen2VLProcessor without its video half (which needs torchvision, absent here)."""

        def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
            self.image_token, self.video_token = "<|image_pad|>", "<|video_pad|>"
            self.image_token_id = tokenizer.convert_tokens_to_ids(self.image_token)
            self.video_token_id = tokenizer.convert_tokens_to_ids(self.video_token)
            ProcessorMixin.__init__(self, image_processor, tokenizer, chat_template=chat_template)

    tokenizer = build_tokenizer()
    tokenizer.add_tokens(VISION_TOKENS, special_tokens=True)
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in VISION_TOKENS}
    image_processor = Qwen2VLImageProcessorPil(
        min_pixels=56 * 56, max_pixels=112 * 112, patch_size=14, merge_size=2, temporal_patch_size=2
    )
    processor = ImageOnlyQwen2VLProcessor(image_processor=image_processor, tokenizer=tokenizer, chat_template=VL_TEMPLATE)
    config = Qwen2VLConfig(
        text_config=dict(
            vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
            rope_parameters={"rope_type": "default", "mrope_section": [2, 2, 4], "rope_theta": 10000.0},
            pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id, bos_token_id=None,
        ),
        vision_config=dict(
            depth=1, embed_dim=32, hidden_size=64, num_heads=2, mlp_ratio=2, patch_size=14,
            spatial_merge_size=2, temporal_patch_size=2, in_channels=3,
        ),
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
    )
    torch.manual_seed(0)
    model = Qwen2VLForConditionalGeneration(config)
    model.generation_config = GenerationConfig(pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
    return model, processor


def test_vision_language_model_sees_the_image(tiny_qwen2_vl):
    model, processor = tiny_qwen2_vl
    backend = TransformersBackend(model, processor=processor, device="cpu")
    assert backend.is_vision
    with_image = [{"role": "user", "content": [text_part("where is the anomaly?"), image_part(_png(255))]}]
    text_only = [{"role": "user", "content": [text_part("where is the anomaly?")]}]

    responses = backend.chat_many([with_image, text_only], max_tokens=6)

    # 112x56 px -> an 8x4 grid of 14-px patches, merged 2x2 -> 8 image tokens in the prompt
    image_tokens = (112 // 14) * (56 // 14) // 4
    text_tokens = responses[1].usage["prompt_tokens"]
    markers = 2  # <|vision_start|> and <|vision_end|>
    assert responses[0].usage["prompt_tokens"] == text_tokens + markers + image_tokens
    assert all(1 <= r.usage["completion_tokens"] <= 6 for r in responses)
    assert "<|vision_start|><|image_pad|><|vision_end|>" in backend.render_prompt(with_image)


def test_bad_image_data_is_a_clear_error(tiny_qwen2_vl):
    model, processor = tiny_qwen2_vl
    backend = TransformersBackend(model, processor=processor, device="cpu")
    bad = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://example.com/x.png"}}]}]
    with pytest.raises(ValueError, match="only base64 data: URLs"):
        backend.chat(bad)
