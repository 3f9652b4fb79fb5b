"""The backend interface every sampler implements.

A backend turns rendered prompts into Samples. ``chat`` renders conversations
with the tokenizer's template (where ``system=None`` really means no system
turn) and calls ``generate``; an endpoint backend that speaks chat natively
overrides ``chat`` instead.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from selfbake.generation.params import Sample, SamplingParams
from selfbake.models.chat import render_messages


class Backend(ABC):
    tokenizer: Any

    @abstractmethod
    def generate(self, prompts: list[str], params: SamplingParams) -> list[Sample]:
        """``params.n`` samples for each rendered prompt, grouped by prompt in input order."""

    def chat(
        self,
        conversations: list[list[dict]],
        params: SamplingParams,
        *,
        tools: list[dict] | None = None,
    ) -> list[Sample]:
        prompts = [render_messages(self.tokenizer, conv, tools=tools) for conv in conversations]
        return self.generate(prompts, params)
