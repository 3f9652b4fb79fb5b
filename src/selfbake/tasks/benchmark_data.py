"""Where a benchmark's records come from, and a record of that provenance for every result.

A score means something only if its data is what the benchmark's name says. So a
benchmark reads one of three sources, and every result carries which one:

- the Hub (no path given): ``datasets.load_dataset`` with the hub id, config and
  split lm-evaluation-harness uses, the local Hugging Face cache first; recorded as
  hub id, config, split, revision (the cache directory's commit hash) and the
  ``datasets`` fingerprint. Offline and uncached is a one-line ``UserError`` that
  says how to pass a local file.
- a local file or directory (``NAME:PATH``): the public formats as released
  (.jsonl, .json, .csv, .parquet, any of the text ones gzipped, or a directory of
  them: shards, or MATH's one-JSON-file-per-problem tree); recorded as the path and
  a sha256 over its files.
- a fixture (``NAME:fixture``): the tiny synthetic files shipped for tests, never
  chosen implicitly and flagged as ``kind: fixture`` wherever a score is shown.

Reading files is done here rather than through ``datasets``' ``json``/``parquet``
builders because those need one schema across files and cannot read a
per-problem JSON object or the header-less MMLU CSVs.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import hashlib
import io
import json
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from selfbake.errors import UserError

FIXTURES = "selfbake.tasks.fixtures"
FIXTURE_SPEC = "fixture"
TEXT_FORMATS = (".jsonl", ".json", ".csv")
SPLIT_WORDS = {
    "train": ("train",),
    "dev": ("dev",),
    "validation": ("validation", "val", "valid"),
    "test": ("test",),
    "default": ("default",),
}
GUIDE = "docs/concepts/benchmark-data.md"


@dataclass(frozen=True)
class HubSpec:
    """How lm-evaluation-harness names a benchmark's data on the Hub."""

    id: str
    configs: tuple[str | None, ...]
    split: str
    fewshot_split: str | None = None


@dataclass
class DataSource:
    """Provenance of a benchmark's records; ``as_dict`` goes into summary.json."""

    kind: str  # "hub", "file" or "fixture"
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **self.details}

    def label(self) -> str:
        """A short tag for printed tables."""
        if self.kind == "fixture":
            return "(fixture)"
        if self.kind == "hub":
            revision = self.details.get("revision") or self.details.get("fingerprint") or "?"
            return f"{self.details['id']}@{str(revision)[:10]}"
        return f"{Path(self.details['path']).name} sha256:{self.details['sha256'][:12]}"


def _suffix(path: Path) -> tuple[str, bool]:
    name = path.name.lower()
    gzipped = name.endswith(".gz")
    return Path(name.removesuffix(".gz")).suffix, gzipped


def is_data_file(path: Path) -> bool:
    suffix, gzipped = _suffix(path)
    return (
        path.is_file()
        and not path.name.startswith(".")
        and (suffix in TEXT_FORMATS or (suffix == ".parquet" and not gzipped))
    )


def data_files(path: Path) -> list[Path]:
    """The data files of a path: itself, or every data file under a directory, in path order."""
    if not path.exists():
        raise UserError(f"benchmark file not found: {path}")
    if path.is_file():
        return [path]
    files = sorted(p for p in path.rglob("*") if is_data_file(p))
    if not files:
        raise UserError(
            f"{path}: no .jsonl, .json, .csv or .parquet files (optionally .gz) in this directory"
        )
    return files


def read_file(path: Path) -> list[dict[str, Any]]:
    """Rows of one data file. A JSON object that is not a wrapper is one record (MATH's per-problem files)."""
    suffix, gzipped = _suffix(path)
    if suffix == ".parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise UserError("reading .parquet needs pyarrow: pip install pyarrow") from None
        return pq.read_table(path).to_pylist()
    if suffix not in TEXT_FORMATS:
        raise UserError(
            f"{path}: unknown data format (expected .jsonl, .json, .csv or .parquet, optionally .gz)"
        )
    try:
        raw = gzip.open(path).read() if gzipped else path.read_bytes()
        text = raw.decode("utf-8-sig")
    except (OSError, EOFError) as exc:
        raise UserError(f"{path}: cannot read ({exc})") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 text (a compressed file needs its .gz suffix)") from None
    if suffix == ".csv":
        return [{"columns": row, "file": path.name} for row in csv.reader(io.StringIO(text)) if row]
    try:
        if suffix == ".json":
            data = json.loads(text)
            if isinstance(data, dict):
                wrapped = data.get("examples", data.get("data"))
                return wrapped if isinstance(wrapped, list) else [data]
            return data
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno})") from None


def read_records(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a file or of every data file under a directory."""
    return [row for file in data_files(Path(path)) for row in read_file(file)]


def sha256_of(files: list[Path], root: Path) -> str:
    """A file's own sha256 (as ``sha256sum`` prints it); for a folder, one over its files' names and hashes."""
    if files == [root]:
        return hashlib.sha256(root.read_bytes()).hexdigest()
    digest = hashlib.sha256()
    for file in files:
        if root.is_dir():
            digest.update(str(file.relative_to(root)).encode() + b"\0")
        digest.update(hashlib.sha256(file.read_bytes()).digest())
    return digest.hexdigest()


def _split_tokens(path: Path, root: Path) -> set[str]:
    relative = path.relative_to(root) if root.is_dir() else Path(path.name)
    return {t for t in re.split(r"[^a-z]+", str(relative).lower()) if t}


def split_files(root: Path, split: str) -> list[Path] | None:
    """The files of ``split`` in a directory whose file names carry split names; None if none carries any."""
    files = data_files(root)
    words = {w for aliases in SPLIT_WORDS.values() for w in aliases}
    if not root.is_dir() or not any(_split_tokens(f, root) & words for f in files):
        return None
    return [f for f in files if _split_tokens(f, root) & set(SPLIT_WORDS.get(split, (split,)))]


def sibling_split(path: Path, split: str, other: str) -> list[Path] | None:
    """The ``other`` split's files beside a file of ``split``: data/test/x_test.csv -> data/dev/x_dev.csv,
    or the ``other``-named files in its folder (all/test-00001-of-00002.parquet -> all/dev-00000-of-00001.parquet).
    """
    aliases = "|".join(SPLIT_WORDS.get(split, (split,)))
    pattern = re.compile(rf"(?<![a-z])({aliases})(?![a-z])", re.IGNORECASE)
    for replacement in SPLIT_WORDS.get(other, (other,)):
        parts = list(path.parts)
        for i in range(max(0, len(parts) - 2), len(parts)):  # only the file and its folder
            parts[i] = pattern.sub(replacement, parts[i])
        candidate = Path(*parts)
        if candidate != path and candidate.exists():
            return data_files(candidate)
    wanted = set(SPLIT_WORDS.get(other, (other,)))
    beside = [
        f for f in sorted(path.parent.iterdir()) if is_data_file(f) and _split_tokens(f, f.parent) & wanted
    ]
    return beside or None


def load_files(
    files: list[Path], root: Path, split: str | None = None
) -> tuple[list[dict[str, Any]], DataSource]:
    """Records of ``files`` (under ``root``, a file or folder), with their path and sha256 as the source."""
    records = [row for file in files for row in read_file(file)]
    details = {"path": str(root.resolve()), "files": len(files), "sha256": sha256_of(files, root)}
    if split is not None:
        details["split"] = split
    return records, DataSource("file", details)


def load_path(path: str | Path, split: str) -> tuple[list[dict[str, Any]], DataSource]:
    """Records of ``split`` from a local file or directory (a directory of split-named files gives that split)."""
    root = Path(path).expanduser()
    chosen = split_files(root, split)
    if chosen is not None and not chosen:
        raise UserError(f"{root}: its files name splits, but none is the '{split}' split")
    return load_files(chosen or data_files(root), root, split if chosen else None)


def load_beside(path: str | Path, split: str, other: str) -> tuple[list[dict[str, Any]], DataSource] | None:
    """Records of the ``other`` split that lies beside (or inside) the local ``split`` data, if any."""
    root = Path(path).expanduser()
    if root.is_dir() and split_files(root, other):
        return load_path(root, other)
    files = sibling_split(root, split, other)
    if not files:
        return None
    base = files[0] if len(files) == 1 else files[0].parent
    return load_files(files, base, other)


def load_fixture(name: str) -> tuple[list[dict[str, Any]], DataSource]:
    source = resources.files(FIXTURES).joinpath(name)
    with resources.as_file(source) as file:
        records = read_records(file)
        digest = hashlib.sha256(file.read_bytes()).hexdigest()
    note = "synthetic format fixture shipped for tests, not the benchmark"
    return records, DataSource("fixture", {"name": name, "sha256": digest, "note": note})


@contextlib.contextmanager
def _hub_offline():
    """Make ``datasets`` read only its cache for the duration (its offline switch is read at import)."""
    import datasets
    import huggingface_hub

    saved = datasets.config.HF_HUB_OFFLINE, huggingface_hub.constants.HF_HUB_OFFLINE
    verbosity = datasets.logging.get_verbosity()
    datasets.config.HF_HUB_OFFLINE = huggingface_hub.constants.HF_HUB_OFFLINE = True
    datasets.logging.set_verbosity_error()
    try:
        yield
    finally:
        datasets.config.HF_HUB_OFFLINE, huggingface_hub.constants.HF_HUB_OFFLINE = saved
        datasets.logging.set_verbosity(verbosity)


def _load_one(hub_id: str, config: str | None, split: str):
    """One split from the local cache, else (unless offline) from the Hub; None when neither has it."""
    import datasets

    with contextlib.suppress(Exception), _hub_offline():
        return datasets.load_dataset(hub_id, config, split=split)
    if datasets.config.HF_HUB_OFFLINE:
        return None
    try:
        return datasets.load_dataset(hub_id, config, split=split)
    except Exception:  # ConnectionError, DatasetNotFoundError, gated repos ...: all mean "not here"
        return None


def load_hub(name: str, hub: HubSpec, split: str) -> tuple[list[dict[str, Any]], DataSource]:
    """Records of ``split`` of a Hub data set (every config in ``hub.configs``, in order)."""
    records: list[dict[str, Any]] = []
    revisions, fingerprints = [], []
    for config in hub.configs:
        dataset = _load_one(hub.id, config, split)
        if dataset is None:
            what = hub.id + (f" ({config})" if config else "")
            raise UserError(
                f"{name}: {what} split '{split}' is not in the local Hugging Face cache and the Hub cannot be "
                f"reached; pass a local copy in its public format as --task {name}:PATH (see {GUIDE})"
            )
        records += dataset.to_list()
        cache = dataset.cache_files[0]["filename"] if dataset.cache_files else ""
        revisions.append(Path(cache).parent.name if cache else None)
        fingerprints.append(dataset._fingerprint)
    details = {
        "id": hub.id,
        "config": hub.configs[0] if len(hub.configs) == 1 else list(hub.configs),
        "split": split,
        "revision": revisions[0] if len(set(revisions)) == 1 else revisions,
        "fingerprint": fingerprints[0] if len(fingerprints) == 1 else fingerprints,
    }
    return records, DataSource("hub", details)
