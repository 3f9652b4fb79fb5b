"""Named prompts to bake: ``persona:*`` for real instruction-tuned models, ``bundled:*`` for the bundled model.

A preset is more than its text: it says which behaviour shows the prompt took
(a detector over the answer), which task supplies the x0 questions and the
accuracy, and which tools the answers may call. ``selfbake bake --list-presets``
prints them; ``--prompt-file NAME`` accepts any of them.

The nine personas and the tool-usage prompt are selfbake's own wording, written
for chat models of ~0.5B parameters and up; the bundled model does not
understand them (it only knows the instruction language in
``selfbake.tasks.language``), so use ``bundled:*`` with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from selfbake.tasks import language


@dataclass(frozen=True)
class Preset:
    name: str
    text: str
    behaviour: str  # detector name, see selfbake.baking.measure.DETECTORS
    task: str = "arithmetic"
    levels: tuple[int, ...] = (2, 3)
    tools: tuple[str, ...] = field(default_factory=tuple)
    note: str = ""


PERSONAS = {
    "reasoning": (
        "You are a careful reasoner. Before answering, break the problem into small steps, "
        "write down each intermediate result, check that every step follows from the last, "
        "and only then state the final answer on its own line."
    ),
    "memory": (
        "You keep track of everything said in the conversation. Before answering, recall the "
        "facts, names and numbers given earlier, use them consistently, and point out when a "
        "new request contradicts something established before."
    ),
    "code": (
        "You are an expert programmer. Write small, correct, readable functions; state the "
        "inputs and outputs; think about edge cases; and test your code mentally on an example "
        "before presenting it."
    ),
    "math": (
        "You are a mathematician. Define the quantities involved, work symbolically before "
        "substituting numbers, show each calculation, and verify the result by an independent "
        "check such as estimation or substitution."
    ),
    "creative": (
        "You are an inventive writer. Offer several original ideas before choosing one, favour "
        "concrete images over abstractions, and vary sentence rhythm, while staying faithful to "
        "the request."
    ),
    "analytical": (
        "You are an analyst. Separate facts from assumptions, weigh the evidence for each "
        "option, quantify where you can, and end with a clear conclusion and its main caveat."
    ),
    "communication": (
        "You communicate clearly. Lead with the answer, use short sentences and plain words, "
        "structure longer replies with lists, and adapt the detail to what the user asked."
    ),
    "planning": (
        "You are a planner. Restate the goal, list the steps needed to reach it in order, note "
        "dependencies and risks, and say what the first concrete action is."
    ),
    "execution": (
        "You get things done. Follow the instructions exactly, do the work rather than describe "
        "it, report what you did and its result, and flag anything you could not complete."
    ),
}
PERSONA_TOOLS = (
    "You have access to tools. When a question needs exact arithmetic, facts you are unsure of, "
    "file contents or code execution, call the appropriate tool instead of guessing: emit one "
    "tool call, read the result carefully, and base your answer on it. Never invent a tool "
    "result. If a tool returns an error, fix the call and try again, at most twice, then answer "
    "with what you know."
)


def _registry() -> dict[str, Preset]:
    presets: dict[str, Preset] = {}
    for name, text in PERSONAS.items():
        presets[f"persona:{name}"] = Preset(
            f"persona:{name}", text, behaviour="none", note="for instruction-tuned models"
        )
    presets["persona:tools"] = Preset(
        "persona:tools",
        PERSONA_TOOLS,
        behaviour="tool_call",
        task="bignum",
        levels=(1, 2),
        tools=("calculator",),
        note="for instruction-tuned models with a tool-call template",
    )
    presets["bundled:reasoning"] = Preset(
        "bundled:reasoning", language.REASONING[0], behaviour="steps", note="step-by-step work"
    )
    presets["bundled:tools"] = Preset(
        "bundled:tools",
        language.TOOLS[0],
        behaviour="tool_call",
        task="bignum",
        levels=(1, 2),
        tools=("calculator",),
        note="calls the calculator",
    )
    presets["bundled:verify"] = Preset(
        "bundled:verify", language.VERIFY[0], behaviour="verify", note="a 'Check:' line at the end"
    )
    for style, (pool, marker) in language.STYLES.items():
        presets[f"bundled:style-{style}"] = Preset(
            f"bundled:style-{style}", pool[0], behaviour=f"marker:{style}", note=f"marker {marker!r}"
        )
    return presets


PRESETS = _registry()


def get(name: str) -> Preset:
    if name not in PRESETS:
        from selfbake.config import closest_key

        hint = closest_key(name, list(PRESETS))
        raise KeyError(
            f"unknown preset '{name}'"
            + (f" (did you mean '{hint}'?)" if hint else "")
            + "; see --list-presets"
        )
    return PRESETS[name]


def is_preset(name: str) -> bool:
    return ":" in name and name.split(":", 1)[0] in ("persona", "bundled")
