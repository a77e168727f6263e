"""A tiny, randomly initialised Llama-style model and its tokenizer, built offline (and a
tiny BERT encoder with the same tokenizer, for the embeddings backend).

The tokenizer is a byte-level BPE trained on a few sentences (any text encodes), with
``<s>``/``</s>``/``<pad>`` and a small chat template; the model has 2 layers of width 32.
Both are saved with ``save_pretrained`` so a backend loads them like any downloaded model.

:func:`build_for_vllm` saves the same tokenizer with a config only (no weights): vLLM loads it
with ``--load-format dummy`` (random weights). Its heads are 64 wide, as vLLM's CPU attention
wants.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

SENTENCES = [
    "Kuwa lets you chat with many language models at once.",
    "Executors pull jobs from a queue and stream tokens back.",
    "The quick brown fox jumps over the lazy dog.",
    "Hello there! How are you today? 你好, 世界 🌍",
]
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
CONTEXT = 4096
EMBEDDING_DIM = 32


def build(folder: Path) -> Path:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = save_tokenizer(folder)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=CONTEXT,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    model = LlamaForCausalLM(config)
    model.save_pretrained(folder)
    return folder


def build_embedder(folder: Path, pooling: str | None = None) -> Path:
    """A tiny random BERT encoder (2 layers of width 32) with the same tokenizer: a model for
    the embeddings backend. With ``pooling`` (``cls``, ``mean``, ...) the folder is laid out
    as sentence-transformers saves one (``modules.json``, ``1_Pooling/config.json``)."""
    import json

    import torch
    from transformers import BertConfig, BertModel

    tokenizer = save_tokenizer(folder)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=EMBEDDING_DIM,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=512,
        pad_token_id=tokenizer.pad_token_id,
    )
    BertModel(config).save_pretrained(folder)
    if pooling is not None:
        modules = [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {
                "idx": 1,
                "name": "1",
                "path": "1_Pooling",
                "type": "sentence_transformers.models.Pooling",
            },
        ]
        (folder / "modules.json").write_text(json.dumps(modules))
        (folder / "1_Pooling").mkdir()
        flags = {"cls": "cls_token", "mean": "mean_tokens", "max": "max_tokens"}
        config_json = {f"pooling_mode_{v}": k == pooling for k, v in flags.items()}
        config_json["pooling_mode_lasttoken"] = pooling == "lasttoken"
        (folder / "1_Pooling" / "config.json").write_text(json.dumps(config_json))
    return folder


def build_for_vllm(folder: Path) -> Path:
    """The tokenizer and a bf16 Llama config (width 256, 2 layers, heads of 64), no weights."""
    from transformers import LlamaConfig

    tokenizer = save_tokenizer(folder)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=256,
        intermediate_size=512,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=CONTEXT,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        dtype="bfloat16",
    )
    config.save_pretrained(folder)
    return folder


def save_tokenizer(folder: Path) -> Any:
    """Train the byte-level BPE tokenizer, give it the chat template, save it in ``folder``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=320,
        special_tokens=["<pad>", "<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(SENTENCES, trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, bos_token="<s>", eos_token="</s>", pad_token="<pad>"
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(folder)
    return tokenizer
