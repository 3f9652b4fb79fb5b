"""The student's LoRA layers with the scaling and the sum folded into one matmul: a faster bake step.

peft's ``lora.Linear`` computes ``base(x) + lora_B(lora_A(x)) * scaling``: after the rank-r
matmuls comes a multiply and an add over the whole [tokens, out] output, and the multiply
again in backward. On the bundled model those full-size elementwise passes were 10-15 % of a
bake step (torch profiler, 2-core CPU, where they are memory-bound). ``fused_lora`` scales the
small [out, r] ``lora_B`` weight instead and adds the update with ``addmm`` into the base
output, which gives the same values (tested equal, outputs and gradients) with neither pass.

Only plain LoRA is fused: one active adapter, no dropout in effect, no DoRA or other variant,
no LoRA bias, an ``nn.Linear`` base and matching dtypes. With the adapter disabled (the teacher,
sampling) the layer is its base ``nn.Linear``, called directly. Anything else runs peft's own forward.
The patch lives on the model's modules only inside the ``with`` block.
"""

from __future__ import annotations

import types
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from peft.tuners.lora.layer import Linear as LoraLinear
from torch import nn


def _plain_adapter(layer: LoraLinear, x: torch.Tensor) -> str | None:
    """The one adapter to fuse, or None when peft's forward must run."""
    if layer.disable_adapters or layer.merged or len(layer.active_adapters) != 1:
        return None
    name = layer.active_adapters[0]
    if name not in layer.lora_A or name in getattr(layer, "lora_variant", {}):
        return None
    dropout = layer.lora_dropout[name]
    no_dropout = isinstance(dropout, nn.Identity) or (
        isinstance(dropout, nn.Dropout) and (dropout.p == 0 or not dropout.training)
    )
    plain = (
        no_dropout
        and type(layer.base_layer) is nn.Linear
        and layer.lora_B[name].bias is None
        and x.dtype == layer.lora_A[name].weight.dtype == layer.base_layer.weight.dtype
    )
    return name if plain else None


def _fused_forward(self: LoraLinear, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
    base = self.base_layer
    if self.disable_adapters and not self.merged and not args and not kwargs and type(base) is nn.Linear:
        return nn.functional.linear(x, base.weight, base.bias)  # what peft's forward does, without its checks
    name = None if args or kwargs else _plain_adapter(self, x)
    if name is None:
        return type(self).forward(self, x, *args, **kwargs)
    out = nn.functional.linear(x, base.weight, base.bias)
    low_rank = nn.functional.linear(x, self.lora_A[name].weight)
    update = (self.lora_B[name].weight * self.scaling[name]).t()
    fused = torch.addmm(out.reshape(-1, out.shape[-1]), low_rank.reshape(-1, low_rank.shape[-1]), update)
    return fused.view(out.shape)


@contextmanager
def fused_lora(model: nn.Module) -> Iterator[nn.Module]:
    """Run ``model``'s peft LoRA linear layers fused inside the block; peft's forward again after it."""
    layers = [m for m in model.modules() if isinstance(m, LoraLinear) and "forward" not in vars(m)]
    for layer in layers:
        layer.forward = types.MethodType(_fused_forward, layer)
    try:
        yield model
    finally:
        for layer in layers:
            del layer.forward
