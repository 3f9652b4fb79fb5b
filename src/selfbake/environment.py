"""What a bug report needs to know about the machine, for ``selfbake env`` (as ``transformers env`` does).

Versions come from the installed distributions' metadata (``importlib.metadata``),
so a library that is broken or slow to import still gets its version listed;
only torch is imported, for the device facts (CUDA, GPUs, threads).
"""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata

LIBRARIES = (
    "torch",
    "transformers",
    "peft",
    "trl",
    "accelerate",
    "datasets",
    "tokenizers",
    "safetensors",
    "huggingface_hub",
    "pydantic",
    "vllm",
)
ENV_VARS = ("CUDA_VISIBLE_DEVICES", "HF_HOME", "HF_HUB_OFFLINE", "OMP_NUM_THREADS")


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


def environment() -> dict[str, str]:
    """Ordered facts: versions, platform, device, threads, CUDA and GPUs, the relevant environment variables."""
    import torch

    import selfbake
    from selfbake.models import resolve_device
    from selfbake.models.loading import bundled_path

    facts = {
        "selfbake": f"{selfbake.__version__} ({os.path.dirname(selfbake.__file__)})",
        "python": f"{platform.python_version()} ({sys.executable})",
        "platform": platform.platform(),
    }
    facts.update({name: _version(name) for name in LIBRARIES})
    facts["device (auto)"] = str(resolve_device("auto"))
    facts["cpu cores"] = str(os.cpu_count())
    facts["torch threads"] = str(torch.get_num_threads())
    cuda = torch.cuda.is_available()
    facts["cuda available"] = "yes" if cuda else "no"
    facts["cuda version (torch build)"] = torch.version.cuda or "none (CPU build)"
    if cuda:
        names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        facts["gpus"] = f"{len(names)}: " + ", ".join(names)
        facts["bf16 supported"] = "yes" if torch.cuda.is_bf16_supported() else "no"
    else:
        facts["gpus"] = "none"
    mps = getattr(torch.backends, "mps", None)
    facts["mps available"] = "yes" if mps is not None and mps.is_available() else "no"
    facts["bundled model"] = "present" if (bundled_path() / "config.json").exists() else "missing"
    for var in ENV_VARS:
        facts[f"${var}"] = os.environ.get(var, "unset")
    return facts


def format_environment(facts: dict[str, str]) -> str:
    lines = ["Copy and paste the text below into your bug report.", ""]
    lines += [f"- {key}: {value}" for key, value in facts.items()]
    return "\n".join(lines)
