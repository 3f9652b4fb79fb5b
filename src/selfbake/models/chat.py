"""Chat rendering with one rule: ``system=None`` means no system turn at all.

Prompt baking compares a model *with* a system prompt against the same model
*without* one, so "without" must really be empty. Templates differ:

- ChatML-like templates (and the bundled model's) render exactly the messages
  given: no system message in, no system turn out.
- Qwen2-style templates insert a default system prompt ("You are a helpful
  assistant.") when the first message is not a system message. By default
  ``render_messages`` removes that inserted turn (``strip_default_system=True``)
  so the student in a bake really sees no system prompt; pass False to keep the
  template's behaviour. ``default_system_prompt(tokenizer)`` reports what a
  template inserts, found by rendering with a sentinel, not by guessing.
- Tokenizers without a chat template (base models) get ``FALLBACK_TEMPLATE``,
  a plain "System: / User: / Assistant:" transcript, and a one-time warning.
"""

from __future__ import annotations

import warnings
from typing import Any

FALLBACK_TEMPLATE = (
    "{{ bos_token or '' }}"
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}System: {{ message['content'] }}\n\n"
    "{% elif message['role'] == 'user' %}User: {{ message['content'] }}\n\n"
    "{% elif message['role'] == 'tool' %}Tool result: {{ message['content'] }}\n\n"
    "{% else %}Assistant: {{ message['content'] }}\n\n{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}Assistant:{% endif %}"
)

_SENTINEL = "\u2063SELFBAKE-SENTINEL\u2063"
_PROBE_USER = "\u2063probe-user\u2063"
_warned: set[int] = set()
_parts_cache: dict[tuple, tuple] = {}


def has_chat_template(tokenizer) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def _apply(tokenizer, messages, *, add_generation_prompt: bool, tools=None) -> str:
    template = None
    if not has_chat_template(tokenizer):
        template = FALLBACK_TEMPLATE
        if id(tokenizer) not in _warned:
            _warned.add(id(tokenizer))
            warnings.warn(
                "tokenizer has no chat template; using selfbake's plain 'User:/Assistant:' format",
                stacklevel=3,
            )
    return tokenizer.apply_chat_template(
        messages,
        tools=tools,
        chat_template=template,
        tokenize=False,
        add_generation_prompt=add_generation_prompt,
    )


def _default_system_parts(tokenizer) -> tuple:
    """(inserted default system prompt or None, how to strip it or None), cached per template."""
    key = (getattr(tokenizer, "chat_template", None), getattr(tokenizer, "bos_token", None))
    if key in _parts_cache:
        return _parts_cache[key]
    user = [{"role": "user", "content": _PROBE_USER}]
    plain = _apply(tokenizer, user, add_generation_prompt=False)
    with_sentinel = _apply(
        tokenizer, [{"role": "system", "content": _SENTINEL}] + user, add_generation_prompt=False
    )
    result: tuple = (None, None)
    if _SENTINEL in with_sentinel:
        head, tail = with_sentinel.split(_SENTINEL, 1)
        if plain.startswith(head) and plain.endswith(tail) and len(plain) > len(head) + len(tail):
            default = plain[len(head) : len(plain) - len(tail)]
            # The user turn without any system block is the sentinel render minus
            # its system-only prefix; a leading BOS is kept.
            system_only = _apply(
                tokenizer, [{"role": "system", "content": _SENTINEL}], add_generation_prompt=False
            )
            strip = None
            if with_sentinel.startswith(system_only):
                bos = key[1]
                strip = (bos if bos and system_only.startswith(bos) else "", len(system_only))
            result = (default, strip)
    _parts_cache[key] = result
    return result


def default_system_prompt(tokenizer) -> str | None:
    """The system prompt the template inserts when given none, or None."""
    default, _ = _default_system_parts(tokenizer)
    return default


def render_messages(
    tokenizer,
    messages: list[dict[str, Any]],
    *,
    add_generation_prompt: bool = True,
    tools: list[dict] | None = None,
    strip_default_system: bool = True,
) -> str:
    """Render a conversation to the exact text the model sees."""
    if not messages:
        raise ValueError("cannot render an empty conversation")
    starts_with_system = messages[0].get("role") == "system"
    if starts_with_system or not strip_default_system or tools:
        return _apply(tokenizer, messages, add_generation_prompt=add_generation_prompt, tools=tools)
    default, strip = _default_system_parts(tokenizer)
    if not default:
        return _apply(tokenizer, messages, add_generation_prompt=add_generation_prompt)
    if strip is None:
        raise ValueError(
            "this chat template inserts a default system prompt that selfbake cannot remove; "
            "pass strip_default_system=False or an explicit system prompt"
        )
    lead, system_only_len = strip
    rendered = _apply(
        tokenizer,
        [{"role": "system", "content": _SENTINEL}] + list(messages),
        add_generation_prompt=add_generation_prompt,
    )
    return lead + rendered[system_only_len:]


def render_chat(
    tokenizer,
    user: str,
    system: str | None = None,
    *,
    history: list[dict[str, Any]] | None = None,
    add_generation_prompt: bool = True,
    strip_default_system: bool = True,
) -> str:
    """One user turn (after optional history), under ``system`` or under no system turn at all."""
    messages: list[dict[str, Any]] = []
    if system is not None:
        messages.append({"role": "system", "content": system})
    messages.extend(history or [])
    messages.append({"role": "user", "content": user})
    return render_messages(
        tokenizer,
        messages,
        add_generation_prompt=add_generation_prompt,
        strip_default_system=strip_default_system,
    )
