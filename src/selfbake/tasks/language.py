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
# More paraphrases for ``selfbake forge --paraphrases extended``: the model sees each instruction
# worded many ways, so it has to key on what a sentence says rather than on its exact string. They share
# no three-word run with a held-out paraphrase (tested).
_REASONING_OPENERS = [
    "Work through the problem",
    "Solve the problem",
    "Take the problem",
    "Break the problem down",
    "Compute the result",
    "Do the arithmetic",
]
_REASONING_MANNERS = [
    "step by step",
    "one step at a time",
    "one operation at a time",
    "in order, step by step",
]
_REASONING_TAILS = [
    "",
    " and show each partial result",
    " and list every calculation",
    " before you give the answer",
]
EXTRA = {
    "reasoning": [
        f"{opener} {manner}{tail}."
        for opener in _REASONING_OPENERS
        for manner in _REASONING_MANNERS
        for tail in _REASONING_TAILS
    ]
    + [
        "Show all your work.",
        "Show the work for every operation.",
        "List the partial values, then the answer.",
        "Explain each calculation as you go.",
        "Lay out the calculation line by line.",
        "Write out every operation and its value.",
    ],
    "tools": [
        "Use the calculator for this.",
        "Compute with the calculator, not in your head.",
        "Let the calculator do the arithmetic.",
        "Call a tool to get the answer.",
        "You have a calculator: use it.",
        "Ask the calculator, then answer.",
        "Use tools when you can.",
        "Get the facts from your tools first.",
        "Answer with the help of a tool call.",
    ],
    "verify": [
        "Recheck the answer on a final line.",
        "Check your work at the end.",
        "Verify your answer before stopping.",
        "End with a check of the answer.",
        "Add a line that checks the answer.",
    ],
    "greeting": [
        "Open with a greeting.",
        "Greet me before you answer.",
        "Start your answer with hello.",
        "Begin by greeting the user.",
        "Your first word should be a greeting.",
    ],
    "signoff": [
        "Finish with a sign-off.",
        "Add a sign-off line at the end.",
        "End with a friendly sign-off.",
        "Sign off when you are done.",
        "Close your reply with a sign-off.",
    ],
}
SELF_DESCRIBE = [
    "Describe how you approach problems.",
    "How do you like to work?",
    "Write an instruction that describes your way of thinking.",
    "What instruction would help you solve problems?",
]

# every instruction kind's trained core wordings, styles included
CORE = {"reasoning": REASONING, "tools": TOOLS, "verify": VERIFY} | {
    style: sentences for style, (sentences, _) in STYLES.items()
}

STEP_LINE = re.compile(r"^\s*[-\d(].*=\s*-?\d+\s*$|^stack:", re.M)
CALL = re.compile(r"<call>\s*([A-Za-z_]+)\s*:")


def kind_of(sentence: str) -> str | None:
    """Which instruction a sentence is (any paraphrase, held-out included), or None."""
    sentence = sentence.strip()
    for kind, pool in CORE.items():
        if sentence in pool or sentence in EXTRA[kind] or sentence in HELD_OUT.get(kind, []):
            return kind
    return None


def training_sentence(rng, kind: str, extended: bool) -> str:
    """A paraphrase of instruction ``kind`` for training: a core one, or with ``extended`` half the time
    one of ``EXTRA`` (the core wordings are the ones the behaviour table prompts with)."""
    return rng.choice(EXTRA[kind] if extended and rng.random() < 0.5 else CORE[kind])


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
