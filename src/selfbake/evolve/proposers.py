"""Where candidate prompts come from: the model itself (``self``), a rewrite of the incumbent
(``mutate``), or a fixed file (``list:FILE``); invalid proposals are dropped and counted.

Why: the loop's premise is that the model writes the prompts it is then
measured and baked with. The bundled model was trained (``forge``'s curriculum,
``language.SELF_DESCRIBE``) to answer a describe-yourself request with
instruction sentences of its own language, so it is asked those requests; a
chat model gets the issue's request text. Sampling is seeded, so a rerun with
the same seed proposes the same candidates.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from pathlib import Path

from selfbake.errors import UserError
from selfbake.generation import SamplingParams, TransformersBackend
from selfbake.models import render_chat
from selfbake.tasks import language

CHAT_REQUESTS = {
    "tool": "Generate {k} different system prompts that would make you use your tools (calculator, code "
    "runner, lookups) well when solving problems. Write one prompt per line.",
    "benchmark": "Generate {k} different prompts that describe your own thinking process and identity. "
    "These should capture how you approach problems, reason, and make decisions. Write one prompt per line.",
}
REWRITE_REQUEST = "Rewrite this instruction so that it works better, keeping its meaning: {prompt}"


@dataclass
class Proposal:
    text: str
    proposer: str
    parents: list[str] = field(default_factory=list)
    dropped: str | None = None  # why it was not scored


def normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text.strip()).lower()


def validate(proposals: list[Proposal], seen: set[str], max_chars: int) -> list[Proposal]:
    """Mark empty, over-long and duplicate proposals (of each other or of earlier candidates) as dropped."""
    for p in proposals:
        p.text = p.text.strip()
        key = normalise(p.text)
        if not key:
            p.dropped = "empty"
        elif len(p.text) > max_chars:
            p.dropped = f"longer than {max_chars} characters"
        elif key in seen:
            p.dropped = "duplicate of an earlier candidate"
        else:
            seen.add(key)
    return proposals


def _sample(
    model, tokenizer, requests: list[str], seed: int, temperature: float, max_new_tokens: int
) -> list[str]:
    backend = TransformersBackend(model, tokenizer, batch_size=max(1, len(requests)))
    params = SamplingParams(temperature=temperature, max_new_tokens=max_new_tokens, seed=seed)
    return [s.text for s in backend.generate([render_chat(tokenizer, r) for r in requests], params)]


def _lines(text: str) -> list[str]:
    """Prompts from a chat model's numbered or bulleted list."""
    out = []
    for line in text.splitlines():
        line = re.sub(r"^\s*(?:\d+[.)]|[-*•])\s*", "", line).strip().strip('"')
        if line:
            out.append(line)
    return out


def propose_self(
    model, tokenizer, *, k: int, kind: str, style: str, seed: int, temperature: float, max_new_tokens: int
) -> list[Proposal]:
    """k proposals sampled from the current model (``style``: self_describe for the bundled model, else chat)."""
    if style == "self_describe":
        asks = [language.SELF_DESCRIBE[(seed + i) % len(language.SELF_DESCRIBE)] for i in range(k)]
        texts = _sample(model, tokenizer, asks, seed, temperature, max_new_tokens)
        return [Proposal(t, "self") for t in texts]
    text = _sample(model, tokenizer, [CHAT_REQUESTS[kind].format(k=k)], seed, temperature, max_new_tokens)[0]
    found = _lines(text)[:k]
    return [Proposal(t, "self") for t in found] + [Proposal("", "self") for _ in range(k - len(found))]


def propose_mutations(
    model,
    tokenizer,
    *,
    k: int,
    incumbent: str | None,
    earlier: list[str],
    seed: int,
    temperature: float,
    max_new_tokens: int,
) -> list[Proposal]:
    """Half rewrites of the incumbent by the model, half sentence-level combinations with earlier winners.

    Combination needs no model skill, so it also works for a model (like the bundled one) that cannot
    paraphrase on request."""
    if incumbent is None:
        return []
    rng = random.Random(seed)
    n_rewrite = (k + 1) // 2
    rewrites = _sample(
        model,
        tokenizer,
        [REWRITE_REQUEST.format(prompt=incumbent)] * n_rewrite,
        seed,
        temperature,
        max_new_tokens,
    )
    out = [Proposal(t, "mutate:rewrite", [incumbent]) for t in rewrites]
    pool = [s for p in [incumbent, *earlier] for s in re.split(r"(?<=[.!?])\s+", p) if s.strip()]
    for _ in range(k - n_rewrite):
        other = rng.choice(earlier) if earlier else incumbent
        picked = rng.sample(pool, min(len(pool), rng.randint(1, 2)))
        out.append(Proposal(" ".join(picked), "mutate:combine", [incumbent, other]))
    return out


def read_list(path: str) -> list[str]:
    """``list:FILE``: one candidate prompt per non-empty line (lines starting with # are comments)."""
    file = Path(path)
    if not file.is_file():
        raise UserError(f"--proposer list:{path}: no such file")
    lines = [ln.strip() for ln in file.read_text().splitlines()]
    prompts = [ln for ln in lines if ln and not ln.startswith("#")]
    if not prompts:
        raise UserError(f"--proposer list:{path}: the file holds no prompts (one per line)")
    return prompts


def propose_list(prompts: list[str], *, k: int, cycle: int) -> list[Proposal]:
    """The file's prompts in turn: cycle c (1-based) takes the next k, wrapping round (repeats are then
    dropped as duplicates, so a list of K prompts gives one cycle of candidates)."""
    start = ((cycle - 1) * k) % len(prompts)
    picked = [prompts[(start + i) % len(prompts)] for i in range(min(k, len(prompts)))]
    return [Proposal(t, "list") for t in picked]
