"""A KV cache that appends in place: transformers' ``DynamicCache`` without the per-step copy.

``DynamicLayer.update`` runs ``torch.cat`` on every decoding step, copying the
whole cache each time — O(length²) memory traffic per sequence. With a long
shared system prompt replicated over a batch, that copy is what sampling
spends its time on: profiled on the bundled model (64 rows, 217-char prompt,
2-core CPU), ``torch.cat`` in the cache was 71 % of ``generate``'s time, the
model's matmuls 7 %.

``GrowingLayer`` keeps a buffer with spare room (sized up front when the final
length is known, doubled when not), writes new keys/values into it, and hands
attention a view of the filled part. Everything else — masks, lengths,
``get_seq_length``, batch expansion — behaves as ``DynamicLayer`` does, so it
drops into ``model.generate(cache=...)`` for any model whose layers
are all full attention (sliding-window models keep transformers' own cache).

transformers 5.2x renamed the cache argument and output field from
``past_key_values`` to ``cache`` and warns (FutureWarning) on the old name;
``cache_keyword`` / ``returned_cache`` use the name the installed version reads.
"""

from __future__ import annotations

import inspect

import torch
from transformers.cache_utils import Cache, DynamicCache, DynamicLayer


class GrowingLayer(DynamicLayer):
    def __init__(self, reserve: int = 0):
        super().__init__()
        self.reserve = reserve
        self.length = 0

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        super().lazy_initialization(key_states, value_states)
        self._keys = self._values = None
        self.length = 0

    def _ensure(self, like: torch.Tensor, needed: int) -> None:
        capacity = 0 if self._keys is None else self._keys.shape[-2]
        if needed <= capacity:
            return
        size = max(needed, self.reserve, 2 * capacity)
        shape = (*like.shape[:-2], size, like.shape[-1])
        keys = like.new_empty(shape)
        values = like.new_empty(shape)
        if self.length:
            keys[..., : self.length, :] = self._keys[..., : self.length, :]
            values[..., : self.length, :] = self._values[..., : self.length, :]
        self._keys, self._values = keys, values

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        end = self.length + key_states.shape[-2]
        self._ensure(key_states, end)
        self._keys[..., self.length : end, :] = key_states
        self._values[..., self.length : end, :] = value_states
        self.length = end
        self.keys = self._keys[..., :end, :]
        self.values = self._values[..., :end, :]
        return self.keys, self.values

    def _rebuild(self, keys: torch.Tensor, values: torch.Tensor) -> None:
        self._keys = self._values = None
        self.length = 0
        self.update(keys, values)

    def batch_repeat_interleave(self, repeats: int) -> None:
        if self.get_seq_length() > 0:
            self._rebuild(
                self.keys.repeat_interleave(repeats, dim=0), self.values.repeat_interleave(repeats, dim=0)
            )

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        if self.get_seq_length() > 0:
            self._rebuild(self.keys[indices, ...], self.values[indices, ...])

    def crop(self, tokens_to_remove: int) -> None:
        super().crop(tokens_to_remove)
        if self.is_initialized and self.keys is not None:
            self.length = self.keys.shape[-2]

    def reset(self) -> None:
        super().reset()
        self._keys = self._values = None
        self.length = 0


def common_prefix_len(seqs: list[list[int]]) -> int:
    """Tokens every sequence starts with, at most the shortest less one (a row must keep a token to run)."""
    if not seqs:
        return 0
    first, n = seqs[0], 0
    limit = min(len(x) for x in seqs) - 1
    while n < limit and all(x[n] == first[n] for x in seqs):
        n += 1
    return n


def supports_growing_cache(model) -> bool:
    """All layers full attention (no sliding window, no linear-attention or hybrid layers)."""
    config = model.config.get_text_config(decoder=True)
    types = getattr(config, "layer_types", None)
    if types and any(t != "full_attention" for t in types):
        return False
    return not getattr(config, "sliding_window", None) or not getattr(config, "use_sliding_window", True)


class GrowingCache(DynamicCache):
    """A ``DynamicCache`` made of ``GrowingLayer``s, each with room for ``reserve`` tokens up front."""

    def __init__(self, n_layers: int, reserve: int = 0):
        Cache.__init__(self, layers=[GrowingLayer(reserve) for _ in range(n_layers)])


def cache_keyword(model) -> str:
    """The forward/generate argument that takes a KV cache: ``cache`` (current) or ``past_key_values`` (older)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"


def returned_cache(output):
    """The KV cache a forward pass with ``use_cache=True`` returned, under either field name."""
    return output["cache"] if "cache" in output.keys() else output["past_key_values"]


def growing_cache(model, reserve: int = 0) -> GrowingCache:
    return GrowingCache(model.config.get_text_config(decoder=True).num_hidden_layers, reserve)
