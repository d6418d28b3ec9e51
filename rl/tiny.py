"""A tiny Qwen3 and a tokenizer built in code: the offline stand-in for a real detector.

Nothing here downloads anything. The tokenizer is a byte-level BPE (every text encodes,
no unknown tokens; digits split one by one, as Qwen does) trained with the ``tokenizers``
library on a small corpus of detector-style text, wrapped as a ``PreTrainedTokenizerFast``
with a ChatML chat template, ``<|endoftext|>`` padding, ``<|im_end|>`` end of turn and
``<think>``/``</think>`` as single tokens. The model is a ``Qwen3ForCausalLM`` with random
weights and tiny sizes, so smoke tests, CPU training and benchmarks run in seconds.
torch/transformers/tokenizers are imported inside the functions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

from anomamind.paths import PROMPT_DIR
from anomamind.types import ANOMALY_TYPES

#: Special tokens, in id order after the byte alphabet's merges are learned.
SPECIAL_TOKENS: tuple[str, ...] = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>")

#: ChatML, as Qwen uses it; ``add_generation_prompt`` opens an assistant turn.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "{{ '<|im_end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def default_corpus() -> list[str]:
    """Detector-style text (prompt phrases, numbers, JSON answers) to learn merges from."""
    words = (
        "Series Window indices points Values from index dataset domain Localisation "
        "Candidate intervals Plan Thresholds Tool results one JSON line per call none "
        "not available Answer with then a array of inside the evaluator reviewed your "
        "answer Revise same format think block interval type explanation confidence "
        "mean std median max min zscore spike dip level shift trend seasonal variance "
        "normal anomalous anomaly no anomalies window looks the values stay within range "
        "tool args output error statistics residual score threshold peak system user assistant"
    )
    corpus = [words, " ".join(ANOMALY_TYPES)]
    prompt_file = PROMPT_DIR / "detector.md"
    if prompt_file.is_file():  # the detector's system prompt: most of every prompt
        corpus += [prompt_file.read_text()] * 20
    for feature in ("spike", "jump", "level", "seasonal", "global"):
        corpus += [
            f'{{"args":{{"feature":"{feature}","low":3.6,"threshold":6}},"output":{{"direction":"up",'
            f'"feature":"{feature}","max_at":1508,"max_z":1.507,"runs":[]}},"tool":"feature_runs"}}'
        ] * 10
    corpus += [
        'Series-level statistics: {"mode":"whole-series","statistics":"whole series"}\n'
        "Localisation: no salient region; the window looks regular\nCandidate intervals: []\n"
        "Plan: Check spike, jump, level, seasonal, global deviations with thresholds from "
        "knowledge memory (Unknown data: no dataset-specific knowledge; typical types: "
        'Thresholds: {"candidate_relief":0.8,"confidence_2":1.5,"confidence_3":2.5,'
        '"global":6,"hysteresis":0.6,"jump":8,"level":6,"merge_gap":3,"outside_strength":1}\n'
        "Tool results (one JSON line per call):\nNo feature exceeds its threshold in this "
        "window; it is normal. region(s) exceed the planned thresholds: SYNTHETIC Synthetic"
    ] * 10
    for k in range(200):
        start = 100 * k
        corpus.append(
            f"Window: indices {start}..{start + 99} (100 points)\n"
            f"Values from index {start}: [{k * 0.37:.3f},{-k * 1.1:.2f},{k % 7},{k * 13}]\n"
            f'<think>values near {start + k % 100} deviate</think>\n'
            f'[{{"interval": [{start + k % 90}, {start + k % 90 + 3}], "type": '
            f'"{ANOMALY_TYPES[k % len(ANOMALY_TYPES)]}", "explanation": "z-score {k % 9}.{k % 10}", '
            f'"confidence": {1 + k % 3}}}]'
        )
    return corpus


def build_tokenizer(
    vocab_size: int = 1024,
    corpus: Iterable[str] | None = None,
    out_dir: str | Path | None = None,
    model_max_length: int = 4096,
) -> Any:
    """A byte-level BPE ``PreTrainedTokenizerFast`` with a ChatML chat template.

    ``corpus`` defaults to :func:`default_corpus`; ``vocab_size`` includes the 256 byte
    symbols and the special tokens. Saved to ``out_dir`` when given.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(list(corpus if corpus is not None else default_corpus()), trainer)
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        bos_token=None,
        additional_special_tokens=["<|im_start|>"],
        model_max_length=model_max_length,
        padding_side="left",
    )
    wrapped.chat_template = CHAT_TEMPLATE
    if out_dir is not None:
        wrapped.save_pretrained(str(out_dir))
    return wrapped


#: Published Qwen3 sizes (config.json of the Hub models), for random-weight models of
#: realistic size (throughput benchmarks) built without downloading anything.
QWEN3_SIZES: dict[str, dict[str, int]] = {
    "qwen3-0.6b": dict(hidden_size=1024, intermediate_size=3072, num_hidden_layers=28,
                       num_attention_heads=16, num_key_value_heads=8, head_dim=128),
    "qwen3-1.7b": dict(hidden_size=2048, intermediate_size=6144, num_hidden_layers=28,
                       num_attention_heads=16, num_key_value_heads=8, head_dim=128),
    "qwen3-4b": dict(hidden_size=2560, intermediate_size=9728, num_hidden_layers=36,
                     num_attention_heads=32, num_key_value_heads=8, head_dim=128),
    "qwen3-8b": dict(hidden_size=4096, intermediate_size=12288, num_hidden_layers=36,
                     num_attention_heads=32, num_key_value_heads=8, head_dim=128),
}
#: Qwen3's vocabulary size (embedding rows), which dominates the small models' parameters.
QWEN3_VOCAB_SIZE = 151936


def build_qwen3_of_size(
    size: str, tokenizer: Any | None = None, dtype: Any = None, device: str = "cpu", seed: int = 0
) -> tuple[Any, Any]:
    """A random-weight ``Qwen3ForCausalLM`` with the dimensions of a published size
    (:data:`QWEN3_SIZES`) and Qwen3's vocabulary size; the tokenizer is the tiny one (ids
    beyond it decode to nothing), which is all a throughput measurement needs."""
    import torch
    from transformers import GenerationConfig, Qwen3Config, Qwen3ForCausalLM

    if size not in QWEN3_SIZES:
        raise ValueError(f"unknown Qwen3 size {size!r}; known: {sorted(QWEN3_SIZES)}")
    tokenizer = tokenizer or build_tokenizer()
    config = Qwen3Config(
        vocab_size=QWEN3_VOCAB_SIZE,
        max_position_embeddings=40960,
        tie_word_embeddings=size in ("qwen3-0.6b", "qwen3-1.7b", "qwen3-4b"),
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
        **QWEN3_SIZES[size],
    )
    torch.manual_seed(seed)
    with torch.device(device):  # initialise where it will run: fast on a GPU
        model = Qwen3ForCausalLM(config)
    if dtype is not None:
        model = model.to(dtype)
    model.generation_config = GenerationConfig(
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id
    )
    return model, tokenizer


def build_tiny_qwen3(
    out_dir: str | Path | None = None,
    tokenizer: Any | None = None,
    hidden_size: int = 64,
    num_hidden_layers: int = 2,
    num_attention_heads: int = 4,
    num_key_value_heads: int = 2,
    intermediate_size: int = 128,
    max_position_embeddings: int = 4096,
    seed: int = 0,
) -> tuple[Any, Any]:
    """A randomly initialised ``Qwen3ForCausalLM`` of tiny size and its tokenizer.

    Returns ``(model, tokenizer)``; with ``out_dir`` both are saved there, so the folder
    loads with ``AutoModelForCausalLM.from_pretrained(out_dir)`` like any checkpoint.
    """
    import torch
    from transformers import GenerationConfig, Qwen3Config, Qwen3ForCausalLM

    tokenizer = tokenizer or build_tokenizer()
    config = Qwen3Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=num_hidden_layers,
        num_attention_heads=num_attention_heads,
        num_key_value_heads=num_key_value_heads,
        head_dim=hidden_size // num_attention_heads,
        max_position_embeddings=max_position_embeddings,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )
    torch.manual_seed(seed)
    model = Qwen3ForCausalLM(config)
    model.generation_config = GenerationConfig(
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id
    )
    if out_dir is not None:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        model.save_pretrained(str(out_dir))
        tokenizer.save_pretrained(str(out_dir))
    return model, tokenizer
