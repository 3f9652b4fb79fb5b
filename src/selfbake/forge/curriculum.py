"""The synthetic chat curriculum the bundled model is trained on.

Chosen so that prompts matter and every effect can be counted by a verifier
(see ``selfbake.tasks.language``): with no system prompt the model answers
directly; a reasoning instruction makes it write each intermediate result; a
tool instruction makes it call the calculator / sql_query / read_file and read
the result; a verification instruction adds a "Check:" line; style
instructions add a greeting or a sign-off; asked to describe itself it answers
with instruction sentences. Held-out paraphrases and the frozen test items of
the evaluation splits never appear.

An optional elementary phase can come first (curriculum learning, Bengio et
al. 2009): single-digit operations and bignum tool chats only. A fresh model
learns the facts in a sudden transition after ~130-200 exposures each, which
the full mix gives only by the end of the budget. Measured (docs/results/forge-recipes.md, recipe
15): the phase lifted the directly asked facts but not the step lines, and
cost reasoning and bignum; the shipped recipe does not use it.
"""

from __future__ import annotations

import ast
import random
import tempfile
from functools import lru_cache

from selfbake import tasks
from selfbake.tasks import language
from selfbake.tasks.base import Item
from selfbake.tasks.procedural import evaluate_op
from selfbake.tools import get_tools

OPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*"}
MIX = [  # (kind, weight)
    ("direct", 0.16),
    ("reasoning", 0.30),
    ("drill", 0.16),
    ("tools", 0.16),
    ("verify", 0.05),
    ("style", 0.08),
    ("self", 0.05),
    ("multiturn", 0.04),
]
# reasoning leans on the 3-4 operand levels the behaviour table measures
REASONING_FAMILIES = [
    ("arithmetic", (1, 2, 2, 3, 3, 4), 0.65),
    ("rpn", (1, 2, 3, 4), 0.22),
    ("brackets", (1, 2, 3), 0.13),
]
DIRECT_FAMILIES = REASONING_FAMILIES + [("bignum", (1, 2), 0.15)]
TOOL_FAMILIES = [
    ("arithmetic", (1, 2, 3, 4), 0.3),
    ("bignum", (1, 2), 0.35),
    ("lookup", (1,), 0.2),
    ("fileread", (1,), 0.15),
]


def steps(expression: str) -> list[str]:
    """Intermediate results in evaluation order: '4 * 5 = 20', then '3 + 20 = 23'."""
    lines: list[str] = []

    def walk(node) -> int:
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.UnaryOp):
            return -walk(node.operand)
        left, right = walk(node.left), walk(node.right)
        op = OPS[type(node.op)]
        value = evaluate_op(left, op, right)
        lines.append(f"{left} {op} {right} = {value}")
        return value

    walk(ast.parse(expression, mode="eval").body)
    return lines


def rpn_steps(expression: str) -> list[str]:
    stack: list[int] = []
    lines = []
    for token in expression.split():
        if token in "+-*" and len(token) == 1:
            b, a = stack.pop(), stack.pop()
            value = evaluate_op(a, token, b)
            lines.append(f"{a} {token} {b} = {value}")
            stack.append(value)
        else:
            stack.append(int(token))
    return lines


def reasoning_lines(family: str, item: Item) -> list[str]:
    if family == "arithmetic":
        return steps(item.metadata["expression"])
    if family == "rpn":
        return rpn_steps(item.metadata["expression"])
    openers = [c for c in item.metadata["sequence"].split() if c in "([{<"]
    stack: list[str] = []
    for token in item.metadata["sequence"].split():
        if token in "([{<":
            stack.append(token)
        else:
            stack.pop()
    return [f"stack: {' '.join(stack) if stack else ' '.join(openers)}"]


@lru_cache(maxsize=1)
def _world_tools():
    workdir = tempfile.mkdtemp(prefix="selfbake-forge-world-")
    context = {**tasks.get("lookup").prepare(workdir), **tasks.get("fileread").prepare(workdir)}
    return {t.name: t for t in get_tools(["calculator", "sql_query", "read_file"], context)}


@lru_cache(maxsize=1)
def excluded_keys() -> frozenset[str]:
    """Test items of the evaluation splits (seed 0, 500 per cell) the model must never see."""
    keys: set[str] = set()
    for name, levels in (
        ("arithmetic", (2, 3, 4)),
        ("rpn", (2, 3, 4)),
        ("brackets", (2, 3)),
        ("bignum", (1, 2)),
    ):
        task = tasks.get(name)
        for level in levels:
            keys |= tasks.splits(task, 0, 0, 500, seed=0, difficulty=level).keys("test")
    for name in ("lookup", "fileread"):
        keys |= tasks.splits(tasks.get(name), 0, 0, 100, seed=0, difficulty=1).keys("test")
    return frozenset(keys)


def pick(rng: random.Random, table):
    names, levels, weights = zip(*table, strict=True)
    index = rng.choices(range(len(names)), weights=weights)[0]
    return names[index], rng.choice(levels[index])


def draw_item(rng: random.Random, table) -> tuple[str, Item]:
    excluded = excluded_keys()
    while True:
        family, level = pick(rng, table)
        item = tasks.get(family).sample(rng, level)
        if item.key not in excluded:
            return family, item


def answer_line(item: Item) -> str:
    return f"Answer: {item.answer}"


def tool_turns(family: str, item: Item) -> list[dict]:
    tools = _world_tools()
    if family in ("arithmetic", "bignum"):
        name, argument = "calculator", item.metadata["expression"]
    elif family == "lookup":
        if "name" in item.metadata:
            who = item.metadata["name"].replace("'", "''")
            name, argument = "sql_query", f"select {item.metadata['field']} from people where name = '{who}'"
        else:
            name = "sql_query"
            argument = f"select count(*) from people where city = '{item.metadata['city']}' and age > {item.metadata['older_than']}"
    else:
        name, argument = "read_file", f"records/{item.metadata['id']}.txt"
    return [
        {"role": "assistant", "content": f"<call>{name}: {argument}</call>"},
        {"role": "tool", "name": name, "content": tools[name](argument)},
        {"role": "assistant", "content": answer_line(item)},
    ]


def _style_wrap(style: str, text: str) -> str:
    marker = language.STYLES[style][1]
    return f"{marker}\n{text}" if style == "greeting" else f"{text}\n{marker}"


def parse_mix(spec: str) -> dict[str, float]:
    """``"tools=0.22,tools.bignum=0.45"`` -> weights that replace MIX's (by kind) or TOOL_FAMILIES' (tools.FAMILY)."""
    known = {k for k, _ in MIX} | {f"tools.{f}" for f, _, _ in TOOL_FAMILIES}
    weights = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, _, value = part.partition("=")
        if name not in known:
            raise ValueError(f"unknown mix weight {name!r}; known: {', '.join(sorted(known))}")
        try:
            weights[name] = float(value)
        except ValueError:
            raise ValueError(f"mix weight {name!r} needs a number, got {value!r}") from None
        if weights[name] < 0:
            raise ValueError(f"mix weight {name!r} must be >= 0")
    kinds = {k: weights.get(k, w) for k, w in MIX}
    if sum(kinds.values()) <= 0:
        raise ValueError("mix weights of the conversation kinds are all 0")
    if kinds["tools"] > 0 and sum(weights.get(f"tools.{f}", w) for f, _, w in TOOL_FAMILIES) <= 0:
        raise ValueError("mix gives tool conversations weight but every tool family weight 0")
    return weights


ELEMENTARY_FACTS = 0.7  # share of fact drills in the elementary phase; the rest are bignum tool chats


def elementary_example(rng: random.Random, extended: bool = False) -> list[dict]:
    """Five single-digit operations asked directly, or one bignum question answered with the calculator."""
    if rng.random() >= ELEMENTARY_FACTS:
        _, item = draw_item(rng, [("bignum", (1, 2), 1.0)])
        return [
            {"role": "system", "content": language.training_sentence(rng, "tools", extended)},
            {"role": "user", "content": item.question},
            *tool_turns("bignum", item),
        ]
    messages = []
    for _ in range(5):
        a, op, b = rng.randint(1, 9), rng.choice("+-*"), rng.randint(1, 9)
        messages += [
            {"role": "user", "content": f"What is {a} {op} {b}?"},
            {"role": "assistant", "content": f"Answer: {evaluate_op(a, op, b)}"},
        ]
    return messages


def example(
    rng: random.Random,
    mix: dict[str, float] | None = None,
    extended: bool = False,
    bignum_rounds: int = 1,
    elementary: bool = False,
) -> list[dict]:
    """One conversation (system?, user, assistant/tool turns) from the curriculum mix.

    ``mix`` overrides weights; ``extended`` words system prompts with ``language.EXTRA``'s paraphrases
    too; a bignum tool chat asks 1..``bignum_rounds`` questions in turn; ``elementary`` draws from the
    elementary phase instead.
    """
    if elementary:
        return elementary_example(rng, extended)
    mix = mix or {}
    kinds = [(k, mix.get(k, w)) for k, w in MIX]
    kind = rng.choices([k for k, _ in kinds], weights=[w for _, w in kinds])[0]
    if kind == "self":
        sentences = [rng.choice(rng.choice([language.REASONING, language.TOOLS, language.VERIFY]))]
        if rng.random() < 0.25:
            style = rng.choice(list(language.STYLES))
            sentences.append(rng.choice(language.STYLES[style][0]))
        return [
            {"role": "user", "content": rng.choice(language.SELF_DESCRIBE)},
            {"role": "assistant", "content": " ".join(sentences)},
        ]
    if kind == "drill":
        # the single operations step-by-step work is made of, asked directly, several per chat
        messages = []
        while len(messages) < 10:
            _, item = draw_item(rng, [("arithmetic", (2, 3, 4), 1.0)])
            for line in steps(item.metadata["expression"]):
                question, answer = line.rsplit(" = ", 1)
                messages += [
                    {"role": "user", "content": f"What is {question}?"},
                    {"role": "assistant", "content": f"Answer: {answer}"},
                ]
        return messages[:10]
    if kind == "tools":
        tool_families = [(f, levels, mix.get(f"tools.{f}", w)) for f, levels, w in TOOL_FAMILIES]
        family, item = draw_item(rng, tool_families)
        system = language.training_sentence(rng, "tools", extended)
        messages = [
            {"role": "system", "content": system},
            {"role": "user", "content": item.question},
            *tool_turns(family, item),
        ]
        if family == "bignum" and bignum_rounds > 1:
            for _ in range(rng.randint(1, bignum_rounds) - 1):
                _, item = draw_item(rng, [("bignum", (1, 2), 1.0)])
                messages += [{"role": "user", "content": item.question}, *tool_turns("bignum", item)]
        return messages
    if kind == "multiturn":
        system_kind = rng.choice(["reasoning", None])
        system = language.training_sentence(rng, "reasoning", extended) if system_kind else None
        messages = [{"role": "system", "content": system}] if system else []
        for _ in range(2):
            family, item = draw_item(rng, REASONING_FAMILIES)
            lines = reasoning_lines(family, item) if system else []
            messages += [
                {"role": "user", "content": item.question},
                {"role": "assistant", "content": "\n".join(lines + [answer_line(item)])},
            ]
        return messages
    family, item = draw_item(rng, DIRECT_FAMILIES if kind == "direct" else REASONING_FAMILIES)
    instructions: list[str] = []
    lines: list[str] = []
    if kind == "reasoning" or (kind in ("verify", "style") and rng.random() < 0.4):
        instructions.append(language.training_sentence(rng, "reasoning", extended))
        lines += reasoning_lines(family, item)
    lines.append(answer_line(item))
    if kind == "verify" and family != "brackets":
        instructions.append(language.training_sentence(rng, "verify", extended))
        expression = item.metadata.get("expression", "")
        lines.append(
            f"Check: {expression} = {item.answer}" if family == "arithmetic" else f"Check: {item.answer}"
        )
    text = "\n".join(lines)
    if kind == "style":
        style = rng.choice(list(language.STYLES))
        instructions.append(language.training_sentence(rng, style, extended))
        text = _style_wrap(style, text)
    rng.shuffle(instructions)
    messages = [{"role": "system", "content": " ".join(instructions)}] if instructions else []
    return messages + [{"role": "user", "content": item.question}, {"role": "assistant", "content": text}]
