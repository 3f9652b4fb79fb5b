"""Models: load any Hugging Face causal LM, build tiny random ones, render chats.

The ground floor of selfbake: nothing here imports any other selfbake module
except ``selfbake.errors``.
"""

from selfbake.models.chat import default_system_prompt, has_chat_template, render_chat, render_messages
from selfbake.models.loading import load, resolve_device, resolve_dtype, save
from selfbake.models.tiny import build_random, build_tokenizer

__all__ = [
    "build_random",
    "build_tokenizer",
    "default_system_prompt",
    "has_chat_template",
    "load",
    "render_chat",
    "render_messages",
    "resolve_device",
    "resolve_dtype",
    "save",
]
