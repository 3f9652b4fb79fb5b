"""Tiny random-weight models with locally built tokenizers, for tests and benchmarks.

``random:llama-tiny`` and ``random:qwen2-tiny`` must behave like real Hugging
Face chat models (special tokens, chat template, generation config) while
needing no download. The tokenizer is byte-level (256 byte symbols plus chat
specials), built with ``tokenizers`` and wrapped as PreTrainedTokenizerFast.
The two archs carry two template styles on purpose: llama-tiny's template adds
nothing the caller did not pass; qwen2-tiny's, like Qwen2's, inserts a default
system prompt when none is given and renders tool calls in the Hermes format.
"""

from __future__ import annotations

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import (
    GenerationConfig,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen2ForCausalLM,
)

QWEN_DEFAULT_SYSTEM = "You are a helpful assistant."

CHATML_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# Qwen2-style: a default system turn when the first message is not a system
# message, and Hermes-format tool declarations, tool calls and tool results.
QWEN2_STYLE_TEMPLATE = (
    "{% if tools %}"
    "<|im_start|>system\n"
    "{% if messages[0]['role'] == 'system' %}{{ messages[0]['content'] }}"
    "{% else %}" + QWEN_DEFAULT_SYSTEM + "{% endif %}"
    "\n\n# Tools\n\nYou may call one or more functions. Function signatures:\n<tools>"
    "{% for tool in tools %}\n{{ tool | tojson }}{% endfor %}"
    "\n</tools>\n\nFor each call, return a JSON object inside <tool_call></tool_call> tags:\n"
    '<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call><|im_end|>\n'
    "{% else %}"
    "{% if messages[0]['role'] == 'system' %}"
    "<|im_start|>system\n{{ messages[0]['content'] }}<|im_end|>\n"
    "{% else %}<|im_start|>system\n" + QWEN_DEFAULT_SYSTEM + "<|im_end|>\n{% endif %}"
    "{% endif %}"
    "{% for message in messages %}"
    "{% if message['role'] == 'system' and loop.first %}"
    "{% elif message['role'] == 'assistant' and message.get('tool_calls') %}"
    "<|im_start|>assistant\n{{ message['content'] or '' }}"
    "{% for call in message['tool_calls'] %}"
    '\n<tool_call>\n{"name": "{{ call.function.name }}", "arguments": {{ call.function.arguments | tojson }}}\n</tool_call>'
    "{% endfor %}<|im_end|>\n"
    "{% elif message['role'] == 'tool' %}"
    "<|im_start|>user\n<tool_response>\n{{ message['content'] }}\n</tool_response><|im_end|>\n"
    "{% else %}"
    "<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

SPECIALS = ["<|pad|>", "<s>", "<|im_start|>", "<|im_end|>"]

SIZES = {
    # name: hidden, layers, heads, kv_heads, intermediate
    "tiny": (64, 2, 4, 2, 128),
    "5m": (256, 6, 8, 4, 688),
}


def build_tokenizer(arch: str = "llama") -> PreTrainedTokenizerFast:
    """A byte-level tokenizer: every string round-trips, no training needed."""
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {tok: i for i, tok in enumerate(SPECIALS + alphabet)}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(SPECIALS)
    if arch == "qwen2":
        return PreTrainedTokenizerFast(
            tokenizer_object=tok,
            eos_token="<|im_end|>",
            pad_token="<|pad|>",
            chat_template=QWEN2_STYLE_TEMPLATE,
            padding_side="left",
        )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="<|im_end|>",
        pad_token="<|pad|>",
        chat_template=CHATML_TEMPLATE,
        padding_side="left",
    )


def init_model(
    tokenizer,
    shape: tuple[int, int, int, int, int],
    *,
    arch: str = "llama",
    seed: int = 0,
    max_positions: int = 4096,
    tie_embeddings: bool = False,
):
    """A freshly initialised Llama/Qwen2 of ``shape`` (hidden, layers, heads, kv heads, intermediate)."""
    hidden, layers, heads, kv_heads, intermediate = shape
    common = dict(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        intermediate_size=intermediate,
        max_position_embeddings=max_positions,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=tie_embeddings,
    )
    config = LlamaConfig(**common) if arch == "llama" else Qwen2Config(**common)
    torch.manual_seed(seed)
    model = (LlamaForCausalLM if arch == "llama" else Qwen2ForCausalLM)(config)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return model


def build_random(arch: str = "llama", size: str = "tiny", seed: int = 0):
    """A random-weight causal LM and its tokenizer, identical for the same seed."""
    if arch not in ("llama", "qwen2"):
        raise ValueError(f"unknown tiny arch '{arch}' (choose llama or qwen2)")
    if size not in SIZES:
        raise ValueError(f"unknown tiny size '{size}' (choose {', '.join(SIZES)})")
    tokenizer = build_tokenizer(arch)
    model = init_model(tokenizer, SIZES[size], arch=arch, seed=seed)
    model.eval()
    return model, tokenizer
