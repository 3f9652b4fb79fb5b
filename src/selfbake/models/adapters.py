"""A model given as LoRA adapters over a base: a bake's run directory, its adapter directory, any PEFT adapter.

Why: every command takes ``--model``, and what ``selfbake bake`` (or ``iterate``)
writes must be usable wherever a model is. The layouts are recognised from the
files on disk only, so ``models`` keeps importing nothing of selfbake above it:

- ``RUN/`` (a run directory): ``config.yaml`` (its ``model`` is the base spec,
  its ``seed`` builds a ``random:`` base again) and ``RUN/adapter/``;
- an adapter directory: ``adapter_config.json`` + ``adapter_model.safetensors``
  (one layer), or ``layers.json`` naming layer directories in order (a
  ``--sequence`` bake: the layers are stacked, all active at once);
- the base comes from the nearest run ``config.yaml`` above the adapter
  (``RUN/adapter``, ``RUN/adapters/iter_N``, ``RUN/checkpoints/best``), else
  from ``base_model_name_or_path`` in ``adapter_config.json``.

``load_adapters`` returns the unmerged PeftModel (the stacked layers exactly,
what ``baking.load_baked`` gives); ``loading.load`` merges them into the base
in float32 (then casts), so every command gets a plain transformers model it
can sample from, evaluate or bake further.
"""

from __future__ import annotations

import contextlib
import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import yaml

from selfbake.errors import UserError, WeightsError

RUN_LEVELS = 3  # RUN/checkpoints/layer_N/best is the deepest adapter a run writes


@dataclass(frozen=True)
class AdapterStack:
    """What to load: the base model spec (and the seed that builds a ``random:`` one), then adapter layers."""

    base: str
    seed: int
    layers: tuple[Path, ...]
    source: Path  # the directory the user named


def is_adapter_dir(path: Path) -> bool:
    return (path / "adapter_config.json").is_file() or (path / "layers.json").is_file()


def find_adapters(path: str | Path) -> AdapterStack | None:
    """The adapter stack a run or adapter directory holds, or None when ``path`` is neither."""
    path = Path(path)
    adapter_dir = path / "adapter" if is_adapter_dir(path / "adapter") else path
    if not is_adapter_dir(adapter_dir):
        return None
    layers = _layer_dirs(adapter_dir)
    base, seed = _base_of(adapter_dir, layers[0])
    if Path(base).expanduser().resolve() == path.resolve():
        raise UserError(f"{path}: the adapter names itself as its base model")
    return AdapterStack(base, seed, layers, path)


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"cannot read {path}: {getattr(exc, 'msg', None) or exc}") from None


def _layer_dirs(adapter_dir: Path) -> tuple[Path, ...]:
    index = adapter_dir / "layers.json"
    if index.is_file():
        entries = _read_json(index)
        if not isinstance(entries, list) or not entries or not all(isinstance(e, dict) for e in entries):
            raise UserError(f"{index} is not a list of adapter layers")
        dirs = tuple((adapter_dir / str(e.get("dir", "."))).resolve() for e in entries)
    else:
        dirs = (adapter_dir,)
    for d in dirs:
        if not (d / "adapter_config.json").is_file():
            raise UserError(f"adapter layer {d} has no adapter_config.json (listed in {index})")
    return dirs


def _base_of(adapter_dir: Path, first_layer: Path) -> tuple[str, int]:
    """(base spec, seed): the run's config.yaml above the adapter, else the adapter's own record."""
    for run in list(adapter_dir.resolve().parents)[:RUN_LEVELS]:
        config = run / "config.yaml"
        if config.is_file():
            try:
                data = yaml.safe_load(config.read_text())
            except (OSError, yaml.YAMLError) as exc:
                raise UserError(f"cannot read {config}: {exc}") from None
            if isinstance(data, dict) and isinstance(data.get("model"), str):
                model = data["model"]
                # a relative base path in a run's config is relative to where that run was started; keep it
                # when it exists from here, else try it beside the run
                if not model.startswith("random:") and not Path(model).expanduser().exists():
                    beside = run.parent / model
                    model = str(beside) if beside.exists() else model
                return model, int(data.get("seed") or 0)
    base = _read_json(first_layer / "adapter_config.json").get("base_model_name_or_path")
    if isinstance(base, str) and base:
        return base, 0
    raise UserError(
        f"{adapter_dir} is an adapter that does not name its base model "
        "(no run config.yaml above it, no base_model_name_or_path in adapter_config.json)"
    )


def check_safetensors(directory: Path) -> None:
    """Raise WeightsError naming the first ``*.safetensors`` file in ``directory`` whose header is unreadable.

    safetensors itself says only "Error while deserializing header" without the file; opening each file's
    header here is cheap (no tensor is read) and lets the message name it.
    """
    from safetensors import SafetensorError, safe_open

    for file in sorted(Path(directory).glob("*.safetensors")):
        try:
            with safe_open(str(file), framework="pt"):
                pass
        except (SafetensorError, OSError) as exc:
            raise WeightsError(
                f"corrupt or truncated weights file {file} ({exc}); re-save or re-download it"
            ) from None


@contextlib.contextmanager
def peft_deprecation_quiet():
    """Hide the one FutureWarning peft itself causes: peft 0.21.2's ``PeftModel.__init__`` reads transformers'
    deprecated ``is_gradient_checkpointing``. Nothing of selfbake uses it; every other warning still shows."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing", category=FutureWarning)
        yield


def load_adapters(stack: AdapterStack, base_model):
    """The PeftModel of ``base_model`` with the stack's layers loaded and all of them active (stacked)."""
    from peft import PeftModel

    model = None
    names = []
    for i, layer in enumerate(stack.layers, 1):
        check_safetensors(layer)
        name = "default" if len(stack.layers) == 1 else f"layer_{i}"
        try:
            with peft_deprecation_quiet():
                if model is None:
                    model = PeftModel.from_pretrained(base_model, str(layer), adapter_name=name)
                else:
                    model.load_adapter(str(layer), adapter_name=name)
        except (RuntimeError, ValueError, KeyError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise UserError(f"adapter {layer} does not fit its base model '{stack.base}': {first}") from None
        names.append(name)
    if len(names) > 1:
        model.base_model.set_adapter(names)
    return model.eval()
