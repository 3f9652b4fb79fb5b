"""``search``: BM25 (Okapi, k1=1.5, b=0.75) over a local corpus directory.

Each paragraph of each .txt/.md file is a document. The index is cached under
the corpus's file list with each file's (mtime_ns, size), so an edited, added
or removed file rebuilds it even when the directory's own mtime did not change
(editing a file in place leaves it alone). Results name their file so a model
can read it. Errors come back as ``error: ...``; the function never raises.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from functools import lru_cache
from pathlib import Path

TOKEN = re.compile(r"[a-z0-9]+")


def tokenize(text: str) -> list[str]:
    return TOKEN.findall(text.lower())


class BM25:
    def __init__(self, docs: list[str], k1: float = 1.5, b: float = 0.75):
        self.docs = docs
        self.k1, self.b = k1, b
        self.tfs = [Counter(tokenize(d)) for d in docs]
        self.lengths = [sum(tf.values()) for tf in self.tfs]
        self.avg = sum(self.lengths) / max(len(docs), 1)
        df = Counter(term for tf in self.tfs for term in tf)
        n = len(docs)
        self.idf = {t: math.log(1 + (n - f + 0.5) / (f + 0.5)) for t, f in df.items()}

    def scores(self, query: str) -> list[float]:
        terms = tokenize(query)
        out = []
        for tf, length in zip(self.tfs, self.lengths, strict=True):
            score = 0.0
            for term in terms:
                if term in tf:
                    f = tf[term]
                    score += (
                        self.idf[term]
                        * f
                        * (self.k1 + 1)
                        / (f + self.k1 * (1 - self.b + self.b * length / self.avg))
                    )
            out.append(score)
        return out


def _corpus_files(corpus: Path) -> tuple[tuple[str, int, int], ...]:
    """(relative path, mtime_ns, size) of every .txt/.md file: the cache key of the index."""
    out = []
    for path in sorted(corpus.rglob("*")):
        if path.suffix in (".txt", ".md") and path.is_file():
            stat = path.stat()
            out.append((str(path.relative_to(corpus)), stat.st_mtime_ns, stat.st_size))
    return tuple(out)


@lru_cache(maxsize=8)
def _index(corpus: str, files: tuple[tuple[str, int, int], ...]) -> tuple[BM25, list[str]]:
    docs, names = [], []
    for name, _, _ in files:
        for para in re.split(r"\n\s*\n", (Path(corpus) / name).read_text(errors="replace")):
            if para.strip():
                docs.append(para.strip())
                names.append(name)
    return BM25(docs), names


def search(query: str, *, corpus: str, k: int = 3, max_chars: int = 300) -> str:
    """The k best paragraphs for the query as '[file] text' lines, 'no results', or 'error: ...'."""
    try:
        return _search(str(query), corpus, k, max_chars)
    except (OSError, ValueError) as exc:
        return f"error: cannot search the corpus: {type(exc).__name__}"


def _search(query: str, corpus: str, k: int, max_chars: int) -> str:
    if not corpus or "\x00" in corpus or not Path(corpus).is_dir():
        return "error: no search corpus is configured"
    if not tokenize(query):
        return "error: empty query"
    root = Path(corpus).resolve()
    index, names = _index(str(root), _corpus_files(root))
    scored = sorted(enumerate(index.scores(query)), key=lambda x: -x[1])
    hits = [(i, s) for i, s in scored[:k] if s > 0]
    if not hits:
        return "no results"
    return "\n".join(f"[{names[i]}] {index.docs[i][:max_chars]}" for i, _ in hits)
