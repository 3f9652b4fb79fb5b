"""Load and save any Hugging Face causal LM, with clear errors for bad specs.

A spec is one of: ``random:<arch>-<size>`` (a tiny random model built here,
for tests), a local model directory, a run or adapter directory of LoRA
adapters over a base (``adapters``: e.g. what ``selfbake bake`` writes), or a
hub id (``org/name``). Local paths
are recognised before the hub is tried, so a typo in a path says "no such
directory" instead of a hub error. Device "auto" picks cuda, then mps, then cpu;
dtype "auto" picks bfloat16 on a GPU that supports it and float32 elsewhere.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from urllib.parse import urlparse

import torch

from selfbake.errors import UserError, WeightsError
from selfbake.models.adapters import AdapterStack, check_safetensors, find_adapters, load_adapters

DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "float16": torch.float16,
    "fp16": torch.float16,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
}


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    kind = device.split(":")[0]
    if kind == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device '{device}' requested but CUDA is not available on this machine")
    if kind == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise UserError(f"device '{device}' requested but MPS is not available on this machine")
    if kind not in ("cpu", "cuda", "mps"):
        raise UserError(f"unknown device '{device}' (choose auto, cpu, cuda, cuda:N or mps)")
    return torch.device(device)


def resolve_dtype(dtype: str | torch.dtype = "auto", device: torch.device | None = None) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype == "auto":
        if device is not None and device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    if dtype not in DTYPES:
        raise UserError(f"unknown dtype '{dtype}' (choose auto, {', '.join(DTYPES)})")
    return DTYPES[dtype]


def bundled_path() -> Path:
    """The directory of the model that ships inside the package (made by ``selfbake forge``)."""
    return Path(__file__).with_name("bundled")


def _looks_like_path(spec: str) -> bool:
    return spec.startswith((".", "/", "~")) or spec.count("/") > 1 or os.sep != "/" and os.sep in spec


def load(spec: str, *, dtype: str | torch.dtype = "auto", device: str = "auto", seed: int = 0):
    """Return ``(model, tokenizer)`` in eval mode on the chosen device."""
    if not spec or not spec.strip():
        raise UserError("no model given: pass --model (bundled, a directory, a hub id or random:llama-tiny)")
    dev = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, dev)
    if spec == "bundled":
        path = bundled_path()
        if not (path / "config.json").exists():
            raise UserError(
                "the bundled model is missing from this install (reinstall selfbake, or run selfbake forge)"
            )
        return _from_pretrained(str(path), spec, torch_dtype, dev)
    if spec.startswith("random:"):
        from selfbake.models.tiny import build_random

        name = spec.removeprefix("random:")
        arch, _, size = name.partition("-")
        try:
            model, tokenizer = build_random(arch, size or "tiny", seed=seed)
        except ValueError as exc:
            raise UserError(f"bad model spec '{spec}': {exc}") from None
        return model.to(device=dev, dtype=torch_dtype), tokenizer

    path = Path(spec).expanduser()
    if path.exists():
        if not path.is_dir():
            raise UserError(f"model path {spec} is a file; expected a Hugging Face model directory")
        if not (path / "config.json").exists():
            stack = find_adapters(path)
            if stack is None:
                raise UserError(
                    f"{spec} is not a model directory: no config.json, no adapter_config.json, "
                    "and no adapter/ of a bake run"
                    + (
                        " (a run directory without adapter/: pass the adapter directory in it)"
                        if (path / "config.yaml").exists()
                        else ""
                    )
                )
            return _load_merged(stack, torch_dtype, device)
        check_safetensors(path)
        source = str(path)
    elif _looks_like_path(spec):
        raise UserError(f"model directory not found: {spec}")
    else:
        source = spec
    return _from_pretrained(source, spec, torch_dtype, dev)


def load_adapter_stack(path: str | Path, *, dtype: str | torch.dtype = "float32", device: str = "auto"):
    """``(PeftModel, tokenizer)``: the base of a run or adapter directory with its adapter layers stacked, unmerged."""
    stack = find_adapters(path)
    if stack is None:
        raise UserError(f"{path} holds no adapters (no adapter_config.json, layers.json or adapter/)")
    base, tokenizer = load(stack.base, dtype=dtype, device=device, seed=stack.seed)
    return load_adapters(stack, base), tokenizer


def _load_merged(stack: AdapterStack, torch_dtype: torch.dtype, device: str):
    """The base with the adapters merged in float32 (a half-precision merge would round a small delta away)."""
    base, tokenizer = load(stack.base, dtype=torch.float32, device=device, seed=stack.seed)
    model = load_adapters(stack, base).merge_and_unload()
    return model.to(dtype=torch_dtype).eval(), tokenizer


def hub_unreachable_reason(timeout: float = 5.0) -> str | None:
    """None when the hub answers a TCP connection, else why not (no retries, a few seconds at most)."""
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes", "on"):
        return "HF_HUB_OFFLINE is set"
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    parsed = urlparse(endpoint)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        socket.create_connection((parsed.hostname, port), timeout=timeout).close()
    except OSError as exc:
        return f"{parsed.hostname} is unreachable ({exc.strerror or exc})"
    return None


def _from_pretrained(source: str, spec: str, torch_dtype: torch.dtype, dev: torch.device):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    is_local = Path(source).exists()
    local_only = True
    if not is_local:
        # A hub id: use the local cache when it has the files; only then ask the hub,
        # and fail in seconds (not after a minute of retries) when it cannot be reached.
        try:
            AutoTokenizer.from_pretrained(source, local_files_only=True)
        except (OSError, ValueError):
            reason = hub_unreachable_reason()
            if reason:
                raise UserError(
                    f"cannot load model '{spec}': not in the local Hugging Face cache and {reason}"
                ) from None
            local_only = False
    from safetensors import SafetensorError

    try:
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local_only)
        model = AutoModelForCausalLM.from_pretrained(source, dtype=torch_dtype, local_files_only=local_only)
    except SafetensorError as exc:  # a local directory's files were checked first; this is a hub download's
        raise WeightsError(f"cannot load model '{spec}': corrupt weights file ({exc})") from None
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        where = "local directory" if is_local else "hub id"
        raise UserError(f"cannot load model '{spec}' as a {where}: {first}") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model.to(dev).eval(), tokenizer


def save(model, tokenizer, out: str | Path) -> Path:
    """Save an ordinary HF directory (safetensors) that ``load`` and AutoModel read back."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return out
