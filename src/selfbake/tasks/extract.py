"""Answer extraction from free text, robust to step-by-step work before the answer.

Order of preference: an explicit final-answer marker ("Answer: X", "the answer
is X", "#### X", "\\boxed{X}"), last occurrence wins; otherwise the last number
in the text. Numbers are normalised exactly (commas, "+", "12.0" -> "12").

Everything here reads a model's output, so nothing here raises on any text: a
number too long or too large to read (``"1" + "0" * 400 + ".5"`` overflows a
float; a 5000-digit integer exceeds Python's int-to-string limit; an exponent
form like ``1e999999999`` would allocate a huge integer) is not a number.
"""

from __future__ import annotations

import re
from fractions import Fraction

NUMBER = r"[-+]?\$?\d[\d,]*(?:\.\d+)?|[-+]?\.\d+"
_MARKERS = [
    re.compile(r"(?:final answer|answer)\s*(?:is|:|=)\s*:?\s*(.+)", re.I),
    re.compile(r"####\s*(.+)"),
]


def last_boxed(text: str) -> str | None:
    """Content of the last \\boxed{...} (braces balanced), or None."""
    start = text.rfind("\\boxed")
    if start < 0:
        return None
    i = text.find("{", start)
    if i < 0:
        return None
    depth = 0
    for j in range(i, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[i + 1 : j]
    return None


def marked_answer(text: str) -> str | None:
    """The text after the last explicit answer marker, on its line."""
    boxed = last_boxed(text)
    if boxed is not None:
        return boxed.strip()
    best = None
    for line in text.splitlines():
        for pattern in _MARKERS:
            match = pattern.search(line)
            if match:
                best = match.group(1).strip()
    return best


_PLAIN_NUMBER = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+|\d+/0*[1-9]\d*)")
MAX_NUMBER_CHARS = 1_000  # longer digit strings are not answers (and stay clear of the int-to-str limit)


def normalize_number(text: str) -> str | None:
    """The exact canonical form of a plain decimal number: '12' for '12.0' or '+1,2', '0.5' for '.50';
    None for anything else. A decimal too large for a float keeps its exact 'p/q' form."""
    cleaned = text.strip().replace(",", "").replace("$", "").rstrip(".")
    if len(cleaned) > MAX_NUMBER_CHARS or not _PLAIN_NUMBER.fullmatch(cleaned):
        return None
    value = Fraction(cleaned)
    if value.denominator == 1:
        return str(value.numerator)
    try:
        as_float = float(value)
    except OverflowError:
        return str(value)
    return str(as_float) if as_float != 0 and abs(as_float) != float("inf") else str(value)


def last_number(text: str) -> str | None:
    matches = re.findall(NUMBER, text)
    for raw in reversed(matches):
        value = normalize_number(raw)
        if value is not None:
            return value
    return None


def extract_number(text: str) -> str | None:
    """The final numeric answer: a marked one if present, else the last number."""
    marked = marked_answer(text)
    if marked is not None:
        first = re.search(NUMBER, marked)
        if first is not None and normalize_number(first.group(0)) is not None:
            return normalize_number(first.group(0))
    return last_number(text)


def extract_code(text: str) -> str | None:
    """The last fenced code block, else everything from the first ``def``."""
    blocks = re.findall(r"```(?:python|py)?\s*\n(.*?)```", text, re.S)
    if blocks:
        return blocks[-1].strip("\n")
    index = text.find("def ")
    return text[index:].strip("\n") if index >= 0 else None
