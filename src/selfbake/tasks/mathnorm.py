"""Answer normalisation for MATH, in the spirit of Hendrycks et al. (2021) / lm-evaluation-harness.

Two answers are equivalent when their normalised strings match: LaTeX noise
(\\left, \\!, \\dfrac, units, degrees, dollars, spaces) is removed, shorthand
fractions (\\frac12, a/b) are written out, and "x = 3" becomes "3".
"""

from __future__ import annotations

import re

from selfbake.tasks.extract import last_boxed


def remove_boxed(text: str | None) -> str | None:
    if text is None:
        return None
    boxed = last_boxed(text)
    if boxed is not None:
        return boxed
    match = re.search(r"\\boxed (\S+)", text)
    return match.group(1) if match else None


def _fix_fracs(s: str) -> str:
    # \frac12 -> \frac{1}{2}, \frac1{2} -> \frac{1}{2}
    s = re.sub(r"\\frac(\d)(\d)", r"\\frac{\1}{\2}", s)
    s = re.sub(r"\\frac(\d)\{", r"\\frac{\1}{", s)
    s = re.sub(r"\\frac\{([^{}]*)\}(\d)", r"\\frac{\1}{\2}", s)
    return s


def _fix_sqrt(s: str) -> str:
    return re.sub(r"\\sqrt(\w)", r"\\sqrt{\1}", s)


def _slash_to_frac(s: str) -> str:
    match = re.fullmatch(r"(-?\d+)/(\d+)", s)
    return f"\\frac{{{match.group(1)}}}{{{match.group(2)}}}" if match else s


def normalize_math(answer: str) -> str:
    s = answer.replace("\n", "").replace("\\!", "")
    s = s.replace("\\\\", "\\").replace("tfrac", "frac").replace("dfrac", "frac")
    s = s.replace("\\left", "").replace("\\right", "")
    s = s.replace("^{\\circ}", "").replace("^\\circ", "")
    s = s.replace("\\$", "").replace("$", "")
    s = re.sub(r"\\text\{\s*[a-zA-Z ]*\}$", "", s.strip())
    s = s.replace("\\%", "").replace("%", "")
    s = s.replace(" .", " 0.").replace("{.", "{0.")
    if s.startswith("."):
        s = "0" + s
    if len(s.split("=")) == 2 and len(s.split("=")[0].strip()) <= 2:
        s = s.split("=")[1]
    s = _fix_sqrt(s).replace(" ", "")
    s = _fix_fracs(s)
    if s == "0.5":
        s = "\\frac{1}{2}"
    s = _slash_to_frac(s)
    s = s.rstrip(".")
    return s


def is_equiv(a: str | None, b: str | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return normalize_math(a) == normalize_math(b)
