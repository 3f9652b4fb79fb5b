"""Models: load any Hugging Face causal LM, build tiny random ones, render chats.

The ground floor of selfbake: nothing here imports any other selfbake module
except ``selfbake.errors``. A run or adapter directory (LoRA layers over a base) loads like
any model directory (``adapters``).
"""

from selfbake.models.adapters import find_adapters, peft_deprecation_quiet
from selfbake.models.chat import default_system_prompt, has_chat_template, render_chat, render_messages
from selfbake.models.loading import load, load_adapter_stack, resolve_device, resolve_dtype, save
from selfbake.models.tiny import build_random, build_tokenizer

__all__ = [
    "build_random",
    "build_tokenizer",
    "default_system_prompt",
    "find_adapters",
    "has_chat_template",
    "load",
    "load_adapter_stack",
    "peft_deprecation_quiet",
    "render_chat",
    "render_messages",
    "resolve_device",
    "resolve_dtype",
    "save",
]
