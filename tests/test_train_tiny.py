"""The offline tiny tokenizer and Qwen3: round trips, chat template, reload from disk."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from anomamind.rl.tiny import SPECIAL_TOKENS, build_tiny_qwen3, build_tokenizer  # noqa: E402


def test_tokenizer_round_trip_and_special_tokens():
    tok = build_tokenizer(vocab_size=400)
    text = '<think>spike at 1234</think>\n[{"interval": [1234, 1236], "type": "point-global"}] é'
    ids = tok(text)["input_ids"]
    assert tok.decode(ids) == text
    for special in ("<think>", "</think>"):
        assert len(tok(special)["input_ids"]) == 1
    assert tok.convert_ids_to_tokens(tok("1234")["input_ids"]) == ["1", "2", "3", "4"]
    assert tok.pad_token == "<|endoftext|>" and tok.eos_token == "<|im_end|>"
    assert all(t in tok.get_vocab() for t in SPECIAL_TOKENS)
    assert len(tok) <= 400


def test_chat_template_opens_assistant_turn():
    tok = build_tokenizer()
    text = tok.apply_chat_template(
        [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
        tokenize=False,
        add_generation_prompt=True,
    )
    assert text == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"


def test_tiny_qwen3_saves_reloads_and_generates(tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model, tok = build_tiny_qwen3(tmp_path, hidden_size=32, num_hidden_layers=1)
    assert model.config.model_type == "qwen3"
    assert model.config.vocab_size == len(tok)
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path)
    tok2 = AutoTokenizer.from_pretrained(tmp_path)
    assert tok2.chat_template == tok.chat_template
    batch = tok2(["Window: 1", "Values"], return_tensors="pt", padding=True)
    for name, p in model.state_dict().items():
        assert torch.equal(p, reloaded.state_dict()[name]), name
    out = reloaded.generate(**batch, max_new_tokens=4, do_sample=False)
    prompt_len = batch["input_ids"].shape[1]
    assert out.shape[0] == 2 and prompt_len < out.shape[1] <= prompt_len + 4
