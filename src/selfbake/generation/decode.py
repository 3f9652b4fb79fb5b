"""A sampling loop whose batch shrinks as rows finish.

transformers' ``generate`` runs every row of a batch until the longest one
ends: finished rows keep being computed and then padded. A bake's teacher
samples on the bundled model are 30-88 tokens long in one 64-row batch, so
half of generate's row-steps went to rows that had already ended, and a
decoding step costs about 2.8 ms + 0.15 ms per row there (2-core CPU).

``decode`` is generate's sampling loop for decoder-only models with the
caches of ``kvcache`` / ``shared_prefix``: the same logits processors in the
same order, the same fp32 scores and, when sampling, one ``torch.multinomial``
draw over the *whole* original batch each step (finished rows get a one-hot
row), so the random stream and therefore every row's tokens are those
``generate`` gives for the same seed (tested). It compacts the KV cache,
mask, positions and token history to the live rows once a quarter of them
have finished (a cache copy each time, so not on every finish).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass

import torch
from transformers import (
    LogitsProcessorList,
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from selfbake.generation.kvcache import cache_keyword
from selfbake.generation.params import SamplingParams


@dataclass
class Decoded:
    ids: list[int]  # generated tokens, up to and including the one that ended the row
    stopped_at: int = -1  # tokens generated when a stop string first appeared, or -1
    logits: torch.Tensor | None = None  # raw fp32 logits [len(ids), vocab] when kept


def logits_processors(params: SamplingParams) -> LogitsProcessorList:
    """The processors ``generate`` builds from these settings, in its order."""
    processors = LogitsProcessorList()
    if params.repetition_penalty != 1.0:
        processors.append(RepetitionPenaltyLogitsProcessor(params.repetition_penalty))
    if not params.greedy:
        if params.temperature != 1.0:
            processors.append(TemperatureLogitsWarper(params.temperature))
        if params.top_k:
            processors.append(TopKLogitsWarper(params.top_k))
        if params.top_p < 1.0:
            processors.append(TopPLogitsWarper(params.top_p))
    return processors


def keeps_last_logits(model) -> bool:
    """Whether the model (under a peft wrapper, its base) takes ``logits_to_keep``, as generate checks."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "logits_to_keep" in inspect.signature(base.forward).parameters


@torch.no_grad()
def decode(
    model,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    cache,
    params: SamplingParams,
    *,
    end_ids: set[int],
    stop_hit: Callable[[list[int]], bool] | None = None,
    compact_fraction: float = 0.25,
) -> list[Decoded]:
    """Sample from ``model`` after ``input_ids`` (whose first ``cache.get_seq_length()`` tokens are cached).

    A row ends on a token in ``end_ids``, when ``stop_hit(its generated ids)`` is true, or at
    ``params.max_new_tokens``.
    """
    batch, device = input_ids.shape[0], input_ids.device
    processors = logits_processors(params)
    # the repetition penalty reads the whole sequence so far, as in generate; nothing else does
    history = input_ids if params.repetition_penalty != 1.0 else None
    positions = (attention_mask.long().cumsum(-1) - 1).masked_fill(attention_mask == 0, 0)
    mask = None if bool(attention_mask.all()) else attention_mask  # generate drops an all-ones mask
    cached = cache.get_seq_length()
    rows = torch.arange(batch, device=device)  # original row of each live row
    outputs: list[list[int]] = [[] for _ in range(batch)]
    kept: list[list[torch.Tensor]] = [[] for _ in range(batch)]
    stopped_at = [-1] * batch
    done = [False] * batch
    live_since_compaction = batch
    step_ids = input_ids[:, cached:]
    step_positions = positions[:, cached:]
    end = torch.tensor(sorted(end_ids), device=device, dtype=torch.long)
    last_only = {"logits_to_keep": 1} if keeps_last_logits(model) else {}
    cache_arg = cache_keyword(model)
    for step in range(params.max_new_tokens):
        out = model(
            input_ids=step_ids,
            attention_mask=mask,
            position_ids=step_positions,
            use_cache=True,
            **{cache_arg: cache},
            **last_only,
        )
        logits = out.logits[:, -1].to(copy=True, dtype=torch.float32)
        scores = processors(history, logits)
        if params.greedy:
            tokens = scores.argmax(-1)
        else:
            probs = torch.softmax(scores, dim=-1)
            if len(rows) < batch:  # the draw covers the whole batch, so live rows get generate's tokens
                full = torch.zeros(batch, probs.shape[-1], device=device, dtype=probs.dtype)
                full[:, 0] = 1.0
                full[rows] = probs
                probs = full
            tokens = torch.multinomial(probs, num_samples=1).squeeze(1)
            if len(rows) < batch:
                tokens = tokens[rows]
        finished = torch.isin(tokens, end) if len(end) else torch.zeros_like(tokens, dtype=torch.bool)
        token_list, finished_list = tokens.tolist(), finished.tolist()
        for k, row in enumerate(rows.tolist()):
            if done[row]:  # ended, waiting for the next compaction: its token is ignored
                continue
            outputs[row].append(token_list[k])
            if params.return_logits:
                kept[row].append(logits[k].cpu())
            if finished_list[k]:
                done[row] = True
            elif stop_hit is not None and stop_hit(outputs[row]):
                stopped_at[row], done[row] = len(outputs[row]), True
            if step + 1 == params.max_new_tokens:
                done[row] = True
        live = [k for k, row in enumerate(rows.tolist()) if not done[row]]
        if not live:
            break
        if history is not None:
            history = torch.cat([history, tokens[:, None]], dim=1)
        step_positions = step_positions[:, -1:] + 1
        if mask is not None:
            mask = torch.cat([mask, mask.new_ones((mask.shape[0], 1))], dim=1)
        step_ids = tokens[:, None]
        if len(live) <= (1 - compact_fraction) * live_since_compaction:
            index = torch.tensor(live, device=device)
            cache.batch_select_indices(index)
            rows, step_ids, step_positions = rows[index], step_ids[index], step_positions[index]
            if history is not None:
                history = history[index]
            if mask is not None:
                mask = mask[index]
            live_since_compaction = len(live)
    results = []
    for row in range(batch):
        logits = torch.stack(kept[row]) if params.return_logits and kept[row] else None
        results.append(Decoded(outputs[row], stopped_at[row], logits))
    return results
