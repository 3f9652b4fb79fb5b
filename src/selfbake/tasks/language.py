"""The bundled model's instruction language: what its system prompts say and how to see the effect.

The bundled model (``selfbake forge``) is trained so that each instruction
below switches on one measurable behaviour, and no system prompt means a
direct answer. The same module gives the detectors that measure those
behaviours in any output, so forge, eval and bake count them the same way.

Instructions come in paraphrases; ``HELD_OUT`` paraphrases never appear in
training and measure generalisation.
"""

from __future__ import annotations

import re

REASONING = [
    "Think step by step.",
    "Work it out step by step before answering.",
    "Show your intermediate results, then answer.",
    "Reason one step at a time.",
    "Write each step of the calculation.",
    "Solve it step by step.",
]
TOOLS = [
    "Use the calculator tool for arithmetic.",
    "You can call tools: use the calculator.",
    "Call the calculator instead of computing in your head.",
    "Use your tools to find the answer.",
    "Look things up with your tools before answering.",
]
VERIFY = [
    "Check your answer at the end.",
    "Verify the result on a last line.",
    "Double-check your answer.",
]
STYLES = {
    "greeting": (
        ["Begin your reply with a greeting.", "Start by saying hello.", "Greet the user first."],
        "Hello!",
    ),
    "signoff": (
        ["End your reply with a sign-off.", "Sign off at the end.", "Close with a sign-off line."],
        "Cheers.",
    ),
}
HELD_OUT = {
    "reasoning": ["Go through it in small steps, writing down each intermediate result."],
    "tools": ["Feel free to rely on the calculator tool."],
    "verify": ["Confirm the result before you finish."],
    "greeting": ["Say hello before anything else."],
}
SELF_DESCRIBE = [
    "Describe how you approach problems.",
    "How do you like to work?",
    "Write an instruction that describes your way of thinking.",
    "What instruction would help you solve problems?",
]

STEP_LINE = re.compile(r"^\s*[-\d(].*=\s*-?\d+\s*$|^stack:", re.M)
CALL = re.compile(r"<call>\s*([A-Za-z_]+)\s*:")


def kind_of(sentence: str) -> str | None:
    """Which instruction a sentence is (any paraphrase, held-out included), or None."""
    sentence = sentence.strip()
    for kind, pool in (("reasoning", REASONING), ("tools", TOOLS), ("verify", VERIFY)):
        if sentence in pool or sentence in HELD_OUT.get(kind, []):
            return kind
    for style, (pool, _) in STYLES.items():
        if sentence in pool or sentence in HELD_OUT.get(style, []):
            return style
    return None


def parse_instructions(text: str) -> list[str] | None:
    """The instruction kinds in a self-description, or None when any sentence is not in the language."""
    sentences = [s.strip() for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s.strip()]
    if not sentences:
        return None
    kinds = [kind_of(s) for s in sentences]
    return None if any(k is None for k in kinds) else kinds


def has_steps(text: str) -> bool:
    """Step-by-step work: at least one intermediate 'x op y = z' (or stack) line before the answer."""
    body = text.split("Answer:")[0]
    return bool(STEP_LINE.search(body))


def has_tool_call(text: str, tool: str | None = None) -> bool:
    names = CALL.findall(text)
    return bool(names) if tool is None else tool in names


def has_marker(style: str, text: str) -> bool:
    marker = STYLES[style][1]
    stripped = text.strip()
    return stripped.startswith(marker) if style == "greeting" else stripped.endswith(marker)


def has_verification(text: str) -> bool:
    return bool(re.search(r"^Check: .*", text, re.M))


def is_direct(text: str) -> bool:
    """A direct answer: no step lines, no tool calls, no verification, no style markers."""
    return not (
        has_steps(text)
        or has_tool_call(text)
        or has_verification(text)
        or any(has_marker(style, text) for style in STYLES)
    )
