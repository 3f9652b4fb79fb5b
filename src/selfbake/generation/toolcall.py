"""The tool-call loop: generate, run the tool the model called, feed the result back, continue.

Two call formats:

- ``tag`` (compact, for small models such as the bundled one): the model writes
  ``<call>calculator: 12*34</call>``; the result comes back as a ``tool`` turn.
- ``hermes`` (the chat template's own format, Qwen2/Hermes style): the model
  writes ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>``; the call
  is stored as the assistant message's ``tool_calls`` and the tools are declared
  through the template's ``tools=`` argument.

``auto`` picks ``hermes`` when the tokenizer's template mentions tool calls and
``tag`` otherwise. A malformed call, an unknown tool or a failing tool becomes
an ``error: ...`` result the model sees; the loop never raises for model output.
After ``max_calls`` calls, a further call ends the answer with
finish_reason ``tool_limit``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from selfbake.generation.backend import Backend
from selfbake.generation.params import SamplingParams


class ToolLike(Protocol):
    name: str
    description: str
    parameter: str

    def __call__(self, argument: str) -> str: ...

    def schema(self) -> dict: ...


@dataclass
class ParsedCall:
    name: str
    argument: str
    error: str | None = None
    prefix: str = ""  # assistant text before the call
    arguments: dict[str, Any] | None = None  # as the model wrote them (hermes)


@dataclass
class ToolLoopResult:
    text: str  # the final assistant segment
    finish_reason: str
    messages: list[dict[str, Any]]  # assistant and tool turns appended after the prompt
    calls: list[dict[str, Any]] = field(default_factory=list)
    new_tokens: int = 0  # generated across all rounds

    @property
    def transcript(self) -> str:
        parts = []
        for m in self.messages:
            if m["role"] == "tool":
                parts.append(f"[{m.get('name', 'tool')} -> {m['content']}]")
            else:
                calls = "".join(
                    f"<tool_call>{c['function']['name']}({json.dumps(c['function']['arguments'])})</tool_call>"
                    for c in m.get("tool_calls", [])
                )
                parts.append((m.get("content") or "") + calls)
        return "".join(parts)


class TagFormat:
    name = "tag"
    open, close = "<call>", "</call>"
    _pattern = re.compile(r"^\s*([A-Za-z_][\w-]*)\s*:\s*(.*)$", re.S)

    def template_tools(self, tools: list[ToolLike]) -> None:
        return None  # declared in the system prompt, not by the template

    def parse(self, text: str) -> ParsedCall | None:
        if self.open not in text:
            return None
        prefix, body = text.rsplit(self.open, 1)
        match = self._pattern.match(body)
        if not match:
            return ParsedCall(
                "",
                body,
                f"malformed call '{body.strip()[:60]}': expected <call>tool: argument</call>",
                prefix,
            )
        return ParsedCall(match.group(1), match.group(2).strip(), None, prefix)

    def assistant_message(self, text: str, call: ParsedCall) -> dict:
        return {"role": "assistant", "content": text + self.close}

    def tool_message(self, call: ParsedCall, result: str) -> dict:
        return {"role": "tool", "name": call.name or "error", "content": result}


class HermesFormat:
    name = "hermes"
    open, close = "<tool_call>", "</tool_call>"

    def template_tools(self, tools: list[ToolLike]) -> list[dict]:
        return [t.schema() for t in tools]

    def parse(self, text: str) -> ParsedCall | None:
        if self.open not in text:
            return None
        prefix, body = text.rsplit(self.open, 1)
        try:
            data = json.loads(body)
            name, arguments = data["name"], data.get("arguments", {})
            if isinstance(arguments, str):
                arguments = json.loads(arguments)
            argument = next(iter(arguments.values())) if arguments else ""
        except (ValueError, KeyError, TypeError, AttributeError, StopIteration):
            return ParsedCall(
                "",
                body,
                f"malformed tool call '{body.strip()[:60]}': expected JSON with name and arguments",
                prefix,
            )
        return ParsedCall(str(name), str(argument), None, prefix.rstrip(), arguments)

    def assistant_message(self, text: str, call: ParsedCall) -> dict:
        if call.error:
            return {"role": "assistant", "content": text + self.close}
        return {
            "role": "assistant",
            "content": call.prefix,
            "tool_calls": [
                {"type": "function", "function": {"name": call.name, "arguments": call.arguments}}
            ],
        }

    def tool_message(self, call: ParsedCall, result: str) -> dict:
        return {"role": "tool", "name": call.name or "error", "content": result}


FORMATS = {"tag": TagFormat, "hermes": HermesFormat}


def pick_format(tokenizer, name: str = "auto"):
    if name == "auto":
        template = getattr(tokenizer, "chat_template", None) or ""
        name = "hermes" if "tool_call" in template else "tag"
    if name not in FORMATS:
        raise ValueError(f"unknown tool-call format '{name}' (choose auto, tag or hermes)")
    return FORMATS[name]()


def run_tool_loop(
    backend: Backend,
    conversations: list[list[dict]],
    tools: list[ToolLike],
    params: SamplingParams,
    *,
    call_format: str = "auto",
    max_calls: int = 4,
    on_done: Callable[[int], None] | None = None,
) -> list[ToolLoopResult]:
    """Answer each conversation ``params.n`` times, running tools the model calls.

    ``on_done(n)`` is told after each round how many answers finished in it (for progress bars)."""
    fmt = pick_format(backend.tokenizer, call_format)
    by_name = {t.name: t for t in tools}
    prompts = [list(conv) for conv in conversations for _ in range(params.n)]
    states = [ToolLoopResult(text="", finish_reason="length", messages=[]) for _ in prompts]
    active = list(range(len(prompts)))
    step_params = params.model_copy(update={"n": 1, "stop": [*params.stop, fmt.close]})
    template_tools = fmt.template_tools(tools)
    round_ = 0
    while active:
        if params.seed is not None:
            step_params = step_params.model_copy(update={"seed": params.seed + round_})
        samples = backend.chat(
            [prompts[i] + states[i].messages for i in active], step_params, tools=template_tools
        )
        still_active = []
        for i, sample in zip(active, samples, strict=True):
            state = states[i]
            state.new_tokens += len(sample.token_ids)
            call = fmt.parse(sample.text) if sample.stop == fmt.close else None
            if call is None:
                state.messages.append({"role": "assistant", "content": sample.text})
                state.text, state.finish_reason = sample.text, sample.finish_reason
                continue
            state.messages.append(fmt.assistant_message(sample.text, call))
            if len(state.calls) >= max_calls:
                state.text, state.finish_reason = sample.text, "tool_limit"
                continue
            if call.error:
                result = f"error: {call.error}"
            elif call.name not in by_name:
                result = f"error: unknown tool '{call.name}' (available: {', '.join(by_name) or 'none'})"
            else:
                result = by_name[call.name](call.argument)
            state.calls.append({"name": call.name, "argument": call.argument, "result": result})
            state.messages.append(fmt.tool_message(call, result))
            still_active.append(i)
        if on_done and len(active) > len(still_active):
            on_done(len(active) - len(still_active))
        active = still_active
        round_ += 1
    return states
