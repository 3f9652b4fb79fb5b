"""What a caller asks of a generation backend, and what it gets back.

The same two types serve every backend (transformers now; vLLM and an
OpenAI-compatible endpoint later), so loops never depend on which one runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field

FinishReason = Literal["stop", "length", "eos", "tool_limit"]


class SamplingParams(BaseModel):
    """Sampling settings. temperature 0 means greedy decoding (what evaluation uses)."""

    model_config = ConfigDict(extra="forbid")

    max_new_tokens: int = Field(128, gt=0, description="tokens to generate at most, per sample")
    temperature: float = Field(1.0, ge=0.0, description="0 = greedy; >0 = sampling temperature")
    top_p: float = Field(1.0, gt=0.0, le=1.0, description="nucleus sampling mass")
    top_k: int = Field(0, ge=0, description="keep the k most likely tokens; 0 = off")
    repetition_penalty: float = Field(1.0, gt=0.0, description="CTRL-style penalty; 1 = off")
    stop: list[str] = Field(default_factory=list, description="stop strings, cut from the text")
    stop_token_ids: list[int] = Field(default_factory=list, description="extra token ids that end a sample")
    n: int = Field(1, gt=0, description="samples per prompt")
    seed: int | None = Field(0, description="torch seed set before sampling; None = leave RNG as is")
    logprobs: bool = Field(False, description="return the sampled tokens' log-probs (raw distribution)")
    return_logits: bool = Field(False, description="return raw, unprocessed logits [T, vocab] per sample")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


@dataclass
class Sample:
    """One completion. ``token_ids`` include an ending eos/stop token; ``text`` excludes it."""

    prompt_index: int
    text: str
    token_ids: list[int]
    finish_reason: FinishReason
    stop: str | None = None
    prompt_tokens: int = 0
    logprobs: list[float] | None = None
    logits: torch.Tensor | None = field(default=None, repr=False)

    def to_record(self) -> dict:
        record = {
            "prompt_index": self.prompt_index,
            "text": self.text,
            "finish_reason": self.finish_reason,
            "stop": self.stop,
            "prompt_tokens": self.prompt_tokens,
            "new_tokens": len(self.token_ids),
            "token_ids": self.token_ids,
        }
        if self.logprobs is not None:
            record["logprobs"] = self.logprobs
        return record
