"""Procedural task families with exact answers and a difficulty knob.

arithmetic (2-6 operands, + - * and parentheses), rpn (reverse Polish
notation) and brackets (the closing sequence of an unbalanced prefix, which
cannot be guessed at 50 %). Every answer is computed, never looked up, so a
verifier is exact and items are unlimited.
"""

from __future__ import annotations

import random

from selfbake.tasks.base import Item, Task
from selfbake.tasks.extract import extract_number, marked_answer, normalize_number
from selfbake.tools.calculator import calculator

OPS = ["+", "-", "*"]
PAIRS = {"(": ")", "[": "]", "{": "}", "<": ">"}


def evaluate_op(a: int, op: str, b: int) -> int:
    """``a op b`` for op in + - *."""
    return a + b if op == "+" else a - b if op == "-" else a * b


def random_expression(rng: random.Random, operands: int, max_value: int, parens: bool) -> tuple[str, int]:
    """A left-to-right or parenthesised expression and its exact value (standard precedence)."""
    if operands == 1:
        v = rng.randint(1, max_value)
        return str(v), v
    split = rng.randint(1, operands - 1)
    left, lv = random_expression(rng, split, max_value, parens)
    right, rv = random_expression(rng, operands - split, max_value, parens)
    op = rng.choice(OPS)
    if op == "*" and (abs(lv) > 50 or abs(rv) > 50):
        op = rng.choice(["+", "-"])
    if split > 1 and (parens or op == "*"):
        left = f"({left})"
    if operands - split > 1 and (parens or op in "-*"):
        right = f"({right})"
    text = f"{left} {op} {right}"
    return text, evaluate_op(lv, op, rv)


class NumericTask(Task):
    def extract(self, text: str) -> str | None:
        return extract_number(text)

    def normalize(self, answer: str) -> str:
        return normalize_number(answer) or answer.strip()


class Arithmetic(NumericTask):
    name = "arithmetic"
    description = "integer expressions of 2-6 operands with + - * and parentheses"
    difficulties = (1, 2, 3, 4, 5)

    def sample(self, rng: random.Random, difficulty: int) -> Item:
        operands = difficulty + 1
        max_value = 9 if difficulty <= 2 else 20
        text, _ = random_expression(rng, operands, max_value, parens=difficulty >= 3 and rng.random() < 0.5)
        # the text decides (standard precedence), so the reference is computed from it
        return Item(f"What is {text}?", calculator(text), {"difficulty": difficulty, "expression": text})


class RPN(NumericTask):
    name = "rpn"
    description = "evaluate reverse Polish notation with 2-6 operands"
    difficulties = (1, 2, 3, 4, 5)

    def sample(self, rng: random.Random, difficulty: int) -> Item:
        operands = difficulty + 1
        stack: list[int] = []
        tokens: list[str] = []
        pushed = 0
        while pushed < operands or len(stack) > 1:
            if pushed < operands and (len(stack) < 2 or rng.random() < 0.5):
                v = rng.randint(1, 9 if difficulty <= 2 else 20)
                stack.append(v)
                tokens.append(str(v))
                pushed += 1
            else:
                b, a = stack.pop(), stack.pop()
                op = rng.choice(OPS if abs(a) <= 50 and abs(b) <= 50 else ["+", "-"])
                stack.append(evaluate_op(a, op, b))
                tokens.append(op)
        expression = " ".join(tokens)
        question = f"Evaluate the reverse Polish notation expression: {expression}"
        return Item(question, str(stack[0]), {"difficulty": difficulty, "expression": expression})


class Brackets(Task):
    name = "brackets"
    description = "give the closing brackets that complete an unbalanced sequence"
    difficulties = (1, 2, 3, 4, 5)
    closers = set(PAIRS.values())

    def sample(self, rng: random.Random, difficulty: int) -> Item:
        length = 2 + 2 * difficulty
        kinds = list(PAIRS)[: min(4, 1 + difficulty)]
        stack: list[str] = []
        seq: list[str] = []
        for _ in range(length):
            if stack and rng.random() < 0.4:
                seq.append(PAIRS[stack.pop()])
            else:
                opener = rng.choice(kinds)
                stack.append(opener)
                seq.append(opener)
        if not stack:
            opener = rng.choice(kinds)
            stack.append(opener)
            seq.append(opener)
        answer = " ".join(PAIRS[o] for o in reversed(stack))
        question = f"Complete the sequence so that every bracket is closed, giving only the missing closing brackets: {' '.join(seq)}"
        return Item(question, answer, {"difficulty": difficulty, "sequence": " ".join(seq)})

    def extract(self, text: str) -> str | None:
        marked = marked_answer(text)
        candidates = [marked] if marked is not None else []
        candidates += reversed(text.splitlines())
        for candidate in candidates:
            tokens = candidate.replace(" ", "")
            if tokens and all(ch in self.closers for ch in tokens):
                return " ".join(tokens)
        return None

    def normalize(self, answer: str) -> str:
        return answer.replace(" ", "")
