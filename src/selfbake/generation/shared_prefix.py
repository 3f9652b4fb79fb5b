"""Attention over a prefix every row shares, read once per batch instead of once per row.

Hydragen (Juravsky et al., arXiv 2402.05099): when all rows of a batch start
with the same tokens (a bake's system prompt, a task's instructions), their
keys and values are the same for every row. Decoding with a per-row copy of
them makes every step read B copies of the prefix; profiled on the bundled
model (64 rows, 217-char prompt, 2-core CPU) attention was 40 % of sampling,
bound by that memory traffic. Here the prefix is kept once ([1, kv heads,
P, D]); attention is split into the prefix part (all rows' queries against
the one prefix: a single matmul) and the per-row suffix part, and the two are
normalised together by one softmax over the concatenated scores.

``SharedPrefixCache`` holds the prefix once and the suffix in place (a
``GrowingLayer`` buffer); its key views carry the prefix to
``shared_prefix_attention``, registered with transformers' attention and mask
interfaces under ``ATTENTION``. ``use_shared_prefix_attention(model)`` switches
a model to it for the duration of a ``generate`` call; anything without a
prefix (e.g. a teacher pass) falls through to SDPA unchanged.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from transformers import AttentionInterface
from transformers.cache_utils import Cache, DynamicCache
from transformers.integrations.sdpa_attention import repeat_kv, sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

from selfbake.generation.kvcache import GrowingLayer

ATTENTION = "selfbake_shared_prefix"
_UNSUPPORTED = (
    "softcap",
    "s_aux",
    "sinks",
    "sliding_window",
)  # attention variants the split path does not do


class SharedPrefixLayer(GrowingLayer):
    """One layer: the prefix's keys/values once ([1, kv heads, P, D]), the rows' own tokens in place."""

    def __init__(self, prefix_keys: torch.Tensor, prefix_values: torch.Tensor, reserve: int = 0):
        super().__init__(reserve)
        self.prefix = (prefix_keys, prefix_values)

    @property
    def prefix_len(self) -> int:
        return self.prefix[0].shape[-2]

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        keys, values = super().update(key_states, value_states)
        keys.selfbake_prefix = self.prefix  # read by shared_prefix_attention
        return keys, values

    def get_seq_length(self) -> int:
        return self.prefix_len + (self.length if self.is_initialized else 0)

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        return self.get_seq_length() + query_length, 0

    def batch_repeat_interleave(self, repeats: int) -> None:
        if self.is_initialized and self.length:
            super().batch_repeat_interleave(repeats)

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        if self.is_initialized and self.length:
            super().batch_select_indices(indices)

    def crop(self, tokens_to_remove: int) -> None:
        if tokens_to_remove and -tokens_to_remove > (self.length if self.is_initialized else 0):
            raise ValueError("cannot crop into the shared prefix")
        super().crop(tokens_to_remove)


class SharedPrefixCache(DynamicCache):
    """A cache whose layers share one prefix (from a one-row cache of it) and grow the rest in place."""

    def __init__(self, prefix: Cache, reserve: int = 0):
        Cache.__init__(
            self, layers=[SharedPrefixLayer(layer.keys, layer.values, reserve) for layer in prefix.layers]
        )


def shared_prefix_attention(
    module, query, key, value, attention_mask, dropout: float = 0.0, scaling=None, **kwargs
):
    """Exact softmax attention over [shared prefix ; row suffix], the prefix's keys read once for all rows."""
    prefix = getattr(key, "selfbake_prefix", None)
    # no prefix; attention variants the split does not do; or a prompt's first pass, where SDPA's fused
    # kernel over one materialised copy is faster: plain SDPA over [prefix ; suffix]
    if prefix is None or dropout or query.shape[2] > 1 or any(kwargs.get(k) for k in _UNSUPPORTED):
        if prefix is not None:
            n = key.shape[0]
            key = torch.cat([prefix[0].expand(n, -1, -1, -1), key], dim=2)
            value = torch.cat([prefix[1].expand(n, -1, -1, -1), value], dim=2)
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
    prefix_keys, prefix_values = prefix
    batch, heads, _, dim = query.shape
    kv_heads, p_len = prefix_keys.shape[1], prefix_keys.shape[-2]
    groups = heads // kv_heads
    scale = dim**-0.5 if scaling is None else scaling

    def per_row(x):  # [kv heads, B * groups, d] -> [B, heads, 1, d]
        return x.view(kv_heads, batch, groups, -1).permute(1, 0, 2, 3).reshape(batch, heads, 1, -1)

    def per_kv_head(x):  # [B, heads, 1, d] -> [kv heads, B * groups, d]
        return (
            x.reshape(batch, kv_heads, groups, -1).permute(1, 0, 2, 3).reshape(kv_heads, batch * groups, -1)
        )

    # decoding, one query per row. Prefix scores: all rows' queries (and a kv head's query heads) against
    # the single copy, one [kv heads, B * groups, P] matmul, no repeated keys; suffix scores: each row's
    # own tokens, masked where the mask's columns after the prefix say so (padding only). One softmax
    # over both, then each part's weights against its values.
    query = query * scale  # scaled before the mask is added, as SDPA does
    p_scores = per_row(torch.matmul(per_kv_head(query), prefix_keys[0].transpose(-1, -2)))
    k, v = repeat_kv(key, groups), repeat_kv(value, groups)
    s_scores = torch.matmul(query, k.transpose(-1, -2))
    if attention_mask is not None:
        mask = attention_mask[..., -1:, p_len : p_len + k.shape[-2]]
        s_scores = s_scores.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else s_scores + mask
    weights = torch.softmax(torch.cat([p_scores, s_scores], dim=-1), dim=-1)
    out = per_row(torch.matmul(per_kv_head(weights[..., :p_len]), prefix_values[0]))
    out = out + torch.matmul(weights[..., p_len:], v)
    return out.transpose(1, 2).contiguous(), None


AttentionInterface.register(ATTENTION, shared_prefix_attention)
AttentionMaskInterface.register(ATTENTION, sdpa_mask)


def can_share_prefix(model) -> bool:
    """SDPA models (the default), where the shared-prefix path is a drop-in."""
    return getattr(model.config, "_attn_implementation", None) == "sdpa"


@contextmanager
def use_shared_prefix_attention(model):
    """Switch ``model`` to ``shared_prefix_attention`` while the block runs: its config and the config of
    every attention module (the same object in transformers' models; a wrapper's may differ)."""
    configs = [model.config] + [
        m.config for m in model.modules() if hasattr(m, "layer_idx") and hasattr(m, "config")
    ]
    unique = list({id(c): c for c in configs}.values())
    before = [c._attn_implementation for c in unique]
    try:
        for c in unique:
            c._attn_implementation = ATTENTION
        yield
    finally:
        for c, name in zip(unique, before, strict=True):
            c._attn_implementation = name
