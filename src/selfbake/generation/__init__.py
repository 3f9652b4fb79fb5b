"""Generation: one sampling API over backends, plus the tool-call loop.

``TransformersBackend`` is implemented; vLLM and OpenAI-compatible endpoints
plug in by subclassing ``Backend``.
"""

from selfbake.generation.backend import Backend
from selfbake.generation.hf import TransformersBackend, sequence_logprobs
from selfbake.generation.params import Sample, SamplingParams
from selfbake.generation.toolcall import ToolLoopResult, pick_format, run_tool_loop

__all__ = [
    "Backend",
    "Sample",
    "SamplingParams",
    "ToolLoopResult",
    "TransformersBackend",
    "pick_format",
    "run_tool_loop",
    "sequence_logprobs",
]
