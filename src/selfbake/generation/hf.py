"""Batched sampling with transformers' ``generate``: KV cache, left padding, stop strings.

Why not transformers' own ``stop_strings``: its matcher also looks at the
prompt's tail, so a prompt ending in part of a stop string can stop a sample
before it starts. ``StopOnStrings`` only reads the tokens a row generated, and
records the step at which each row stopped, which gives exact finish reasons
even when pad and eos are the same token.

Prompts that share a token prefix (the system turn, few-shot examples) run
that prefix once: its KV cache is copied into each batch and the rest of each
prompt is padded *between* prefix and suffix, so positions stay exact
(``reuse_prefix``; DESIGN.md measured 3.26 s -> 0.69 s on a 454-token prefix).

Decoding appends keys/values in place (``kvcache.GrowingCache``) instead of
``DynamicCache``'s per-step ``torch.cat``, which profiling showed to be most of
the sampling time once a long prefix is replicated over a batch. With SDPA
models the shared prefix is not replicated at all: it is kept once and
attended to by all rows together (``shared_prefix``, Hydragen-style).

With those caches the batch also shrinks as rows finish (``decode``: generate's
sampling loop, the same tokens for a seed, without computing rows that ended).

Log-probs are computed by one teacher-forced pass over the finished sequences
(``sequence_logprobs``): exact under the raw distribution and without keeping
[steps, vocab] tensors. Raw logits come from ``output_logits`` (unprocessed, unlike
``output_scores``) and are kept only when asked for.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from contextlib import nullcontext

import torch
from transformers import GenerationConfig, StoppingCriteria, StoppingCriteriaList

from selfbake.generation.backend import Backend
from selfbake.generation.decode import decode
from selfbake.generation.kvcache import (
    cache_keyword,
    common_prefix_len,
    growing_cache,
    returned_cache,
    supports_growing_cache,
)
from selfbake.generation.params import Sample, SamplingParams
from selfbake.generation.shared_prefix import SharedPrefixCache, can_share_prefix, use_shared_prefix_attention


class StopOnStrings(StoppingCriteria):
    """Stop a row once its generated text contains any stop string; remember when."""

    def __init__(self, tokenizer, stops: list[str], prompt_len: int, batch: int, device):
        self.tokenizer = tokenizer
        self.stops = [s for s in stops if s]
        # A character may span up to 4 byte-level tokens; +2 covers merges at the edges.
        self.window = 4 * max(len(s) for s in self.stops) + 2
        self.prompt_len = prompt_len
        self.fired_at = torch.full((batch,), -1, dtype=torch.long)
        self.device = device

    def __call__(self, input_ids: torch.LongTensor, scores, **kwargs) -> torch.BoolTensor:
        new = input_ids[:, self.prompt_len :]
        steps = new.shape[1]
        tails = self.tokenizer.batch_decode(new[:, -self.window :].tolist(), skip_special_tokens=False)
        done = torch.zeros(input_ids.shape[0], dtype=torch.bool)
        for row, tail in enumerate(tails):
            if self.fired_at[row] >= 0:
                done[row] = True
            elif any(s in tail for s in self.stops):
                self.fired_at[row] = steps
                done[row] = True
        return done.to(input_ids.device)

    def hit(self, generated: list[int]) -> bool:
        """Whether one row's generated tokens contain a stop string (for ``decode``)."""
        tail = self.tokenizer.decode(generated[-self.window :], skip_special_tokens=False)
        return any(s in tail for s in self.stops)


@torch.no_grad()
def sequence_logprobs(
    model, sequences: torch.Tensor, attention_mask: torch.Tensor, n_new: int
) -> torch.Tensor:
    """Log-prob of each of the last ``n_new`` tokens under the raw model distribution, [B, n_new]."""
    position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
    out = model(
        input_ids=sequences,
        attention_mask=attention_mask,
        position_ids=position_ids,
        logits_to_keep=n_new + 1,
        use_cache=False,
    )
    logits = out.logits[:, :-1, :].float()
    targets = sequences[:, -n_new:]
    return torch.log_softmax(logits, dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)


# below this the split attention's extra steps cost more than the replicated prefix's memory traffic
# (measured on a 2-core CPU: 16 shared tokens, 1.23-1.66 s replicated vs 1.58-2.31 s shared)
SHARED_ATTENTION_MIN_TOKENS = 64


class TransformersBackend(Backend):
    def __init__(
        self,
        model,
        tokenizer,
        *,
        batch_size: int = 32,
        use_cache: bool = True,
        reuse_prefix: bool = True,
        min_prefix_tokens: int = 8,
        on_batch: Callable[[int], None] | None = None,
        in_place_cache: bool = True,
        prefix_attention: bool = True,
        drop_finished: bool = True,
    ):
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.use_cache = use_cache
        self.reuse_prefix = reuse_prefix and use_cache
        self.min_prefix_tokens = min_prefix_tokens
        self.on_batch = on_batch
        self.in_place_cache = in_place_cache and use_cache and supports_growing_cache(model)
        self.prefix_attention = prefix_attention and self.in_place_cache and can_share_prefix(model)
        self.drop_finished = drop_finished
        self.cache_key = cache_keyword(model)  # "cache" on current transformers, "past_key_values" before
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        eos = model.generation_config.eos_token_id
        if eos is None:
            eos = tokenizer.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, list) else [eos]) - {None}

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def generation_config(self, params: SamplingParams) -> GenerationConfig:
        sampling = {}
        if not params.greedy:
            sampling = dict(temperature=params.temperature, top_p=params.top_p, top_k=params.top_k)
        return GenerationConfig(
            max_new_tokens=params.max_new_tokens,
            do_sample=not params.greedy,
            repetition_penalty=params.repetition_penalty,
            eos_token_id=sorted(self.eos_ids | set(params.stop_token_ids)) or None,
            pad_token_id=self.tokenizer.pad_token_id,
            bos_token_id=self.tokenizer.bos_token_id,
            use_cache=self.use_cache,
            output_logits=params.return_logits,
            return_dict_in_generate=True,
            **sampling,
        )

    def generate(self, prompts: list[str], params: SamplingParams) -> list[Sample]:
        if params.seed is not None:
            torch.manual_seed(params.seed)
        expanded = [(i, p) for i, p in enumerate(prompts) for _ in range(params.n)]
        prefix = self._shared_prefix(prompts) if self.reuse_prefix else None
        samples: list[Sample] = []
        for start in range(0, len(expanded), self.batch_size):
            chunk = expanded[start : start + self.batch_size]
            samples.extend(self._generate_batch([i for i, _ in chunk], [p for _, p in chunk], params, prefix))
            if self.on_batch:
                self.on_batch(len(chunk))
        return samples

    @torch.no_grad()
    def _shared_prefix(self, prompts: list[str]):
        """(prefix token ids, its KV cache) when every prompt starts with the same tokens, else None."""
        ids = [self.tokenizer(p, add_special_tokens=False).input_ids for p in prompts]
        n = common_prefix_len(ids)
        if n < self.min_prefix_tokens:
            return None
        out = self.model(input_ids=torch.tensor([ids[0][:n]], device=self.device), use_cache=True)
        return ids[0][:n], returned_cache(out)

    def _encode(self, texts: list[str], prefix, max_new_tokens: int) -> dict:
        """Left-padded batch, or prefix + padding + suffix with the prefix's cache attached."""
        if prefix is None:
            enc = dict(
                self.tokenizer(
                    texts, return_tensors="pt", padding=True, padding_side="left", add_special_tokens=False
                ).to(self.device)
            )
            if self.in_place_cache:
                enc[self.cache_key] = growing_cache(self.model, enc["input_ids"].shape[1] + max_new_tokens)
            return enc
        prefix_ids, cache = prefix
        suffixes = [self.tokenizer(t, add_special_tokens=False).input_ids[len(prefix_ids) :] for t in texts]
        width = max(len(s) for s in suffixes)
        pad = self.tokenizer.pad_token_id
        rows = [prefix_ids + [pad] * (width - len(s)) + s for s in suffixes]
        mask = [[1] * len(prefix_ids) + [0] * (width - len(s)) + [1] * len(s) for s in suffixes]
        if self.prefix_attention and len(prefix_ids) >= SHARED_ATTENTION_MIN_TOKENS:
            batch_cache = SharedPrefixCache(cache, reserve=width + max_new_tokens)
        elif self.in_place_cache:
            batch_cache = growing_cache(self.model, len(rows[0]) + max_new_tokens)
            for layer, source in zip(batch_cache.layers, cache.layers, strict=True):
                n = len(texts)
                layer.update(source.keys.expand(n, -1, -1, -1), source.values.expand(n, -1, -1, -1))
        else:
            batch_cache = copy.deepcopy(cache)
            batch_cache.batch_repeat_interleave(len(texts))
        return {
            "input_ids": torch.tensor(rows, device=self.device),
            "attention_mask": torch.tensor(mask, device=self.device),
            self.cache_key: batch_cache,
        }

    @torch.no_grad()
    def _generate_batch(
        self, indices: list[int], texts: list[str], params: SamplingParams, prefix=None
    ) -> list[Sample]:
        enc = self._encode(texts, prefix, params.max_new_tokens)
        prompt_len = enc["input_ids"].shape[1]
        criteria = StoppingCriteriaList()
        stopper = None
        if any(params.stop):
            stopper = StopOnStrings(self.tokenizer, params.stop, prompt_len, len(texts), self.device)
            criteria.append(stopper)
        shared = isinstance(enc.get(self.cache_key), SharedPrefixCache)
        ending_ids = self.eos_ids | set(params.stop_token_ids)
        with use_shared_prefix_attention(self.model) if shared else nullcontext():
            if self.drop_finished and self.in_place_cache:
                decoded = decode(
                    self.model,
                    enc["input_ids"],
                    enc["attention_mask"],
                    enc[self.cache_key],
                    params,
                    end_ids=ending_ids,
                    stop_hit=stopper.hit if stopper is not None else None,
                )
                generated = [d.ids for d in decoded]
                logits = [d.logits for d in decoded] if params.return_logits else None
                if stopper is not None:
                    stopper.fired_at = torch.tensor([d.stopped_at for d in decoded])
                width = max(len(ids) for ids in generated)
                pad = self.tokenizer.pad_token_id
                new = torch.tensor(
                    [ids + [pad] * (width - len(ids)) for ids in generated], device=self.device
                )
                sequences = torch.cat([enc["input_ids"], new], dim=1)
            else:
                out = self.model.generate(
                    **enc,
                    generation_config=self.generation_config(params),
                    stopping_criteria=criteria,
                )
                sequences = out.sequences
                new = sequences[:, prompt_len:]
                generated = new.cpu().tolist()
                logits = torch.stack(out.logits, dim=1).float().cpu() if params.return_logits else None
        logprobs = None
        if params.logprobs and new.shape[1] > 0:
            mask = torch.cat([enc["attention_mask"], torch.ones_like(new)], dim=1)
            logprobs = sequence_logprobs(self.model, sequences, mask, new.shape[1]).cpu()
        samples = []
        for row, ids in enumerate(generated):
            length, reason = len(ids), "length"
            for pos, tok in enumerate(ids):
                if tok in ending_ids:
                    length, reason = pos + 1, ("eos" if tok in self.eos_ids else "stop")
                    break
            if (
                stopper is not None
                and 0 <= stopper.fired_at[row]
                and (reason == "length" or stopper.fired_at[row] < length)
            ):
                length, reason = int(stopper.fired_at[row]), "stop"
            ids = ids[:length]
            text = self.tokenizer.decode(ids, skip_special_tokens=True)
            matched = None
            if reason == "stop" and stopper is not None and int(stopper.fired_at[row]) == length:
                found = [(text.find(s), s) for s in params.stop if s and s in text]
                if found:  # a stop string made of special tokens is not in the decoded text
                    cut, matched = min(found)
                    text = text[:cut]
            samples.append(
                Sample(
                    prompt_index=indices[row],
                    text=text,
                    token_ids=ids,
                    finish_reason=reason,
                    stop=matched,
                    prompt_tokens=int(enc["attention_mask"][row].sum()),
                    logprobs=logprobs[row, :length].tolist() if logprobs is not None else None,
                    logits=logits[row][:length] if logits is not None else None,
                )
            )
        return samples
