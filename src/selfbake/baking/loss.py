"""The baking loss: forward KL(teacher || student) on trajectory tokens, fp32, in chunks.

Prompt Baking (Bhargava et al., arXiv 2409.13697), eq. 2: the KL between the
prompted model's next-token distribution and the baked model's unprompted one,
summed over the positions that predict the trajectory tokens and averaged per
token. What makes it cheap and correct here:

- the decoder runs once, and a system turn shared by a batch's rows runs once
  for all of them (``shared_prefix_len``); only the hidden states at positions that predict a
  trained token are gathered (the first trajectory token is predicted from the
  last prompt position, and is included), so vocab logits for prompt positions
  never exist;
- those rows go through the LM head in chunks, in fp32, under activation
  checkpointing, so at most [chunk, vocab] logits live at once, in the forward
  and in the backward pass;
- the teacher is frozen within a bake, so its log-probs are computed once
  (``teacher_targets``) over the whole vocabulary; at a large vocabulary the
  teacher's final hidden states are kept instead ([n, hidden], not [n, vocab])
  and its log-probs recomputed per chunk through the frozen LM head — the same
  exact KL for one extra head matmul; or, as an option, top-k with a tail
  bucket (k+1 outcomes, exact KL of the coarsened distributions).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.checkpoint import checkpoint
from transformers.cache_utils import DynamicCache

from selfbake.generation.kvcache import cache_keyword, common_prefix_len, returned_cache


@dataclass
class Targets:
    """Teacher log-probs at one trajectory's trained positions."""

    logprobs: torch.Tensor | None  # [n, V] (full) or [n, k] (top-k), fp32; None when hidden is kept
    indices: torch.Tensor | None  # [n, k] token ids for top-k, None for full
    tail: torch.Tensor | None  # [n] log of the mass outside the top k
    token_logprobs: torch.Tensor  # [n] log-prob of the sampled token
    hidden: torch.Tensor | None = None  # [n, H] teacher final hidden states (full KL, recomputed)

    def nbytes(self) -> int:
        parts = [self.logprobs, self.indices, self.tail, self.token_logprobs, self.hidden]
        return sum(p.numel() * p.element_size() for p in parts if p is not None)


def causal_lm(model):
    """The transformers causal LM inside a PeftModel (LoRA layers already injected), or the model."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def decoder_and_head(model):
    lm = causal_lm(model)
    return getattr(lm, lm.base_model_prefix), lm.get_output_embeddings()


def predicting_positions(prompt_len: int, trained: list[bool]) -> list[int]:
    """Positions (in prompt + trajectory) whose logits predict the trained trajectory tokens.

    Token j of the trajectory sits at ``prompt_len + j`` and is predicted one position earlier, so
    the first trajectory token is predicted by the prompt's last position.
    """
    return [prompt_len + j - 1 for j, keep in enumerate(trained) if keep]


def batch_layout(
    prompts: list[list[int]], trajectories: list[list[int]], trained: list[list[bool]], pad_id: int
):
    """Right-padded input ids + mask, and the (row, position) of every position predicting a trained token."""
    seqs = [p + t for p, t in zip(prompts, trajectories, strict=True)]
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    rows, cols, targets = [], [], []
    for r, (p, t, m) in enumerate(zip(prompts, trajectories, trained, strict=True)):
        ids[r, : len(p) + len(t)] = torch.tensor(p + t)
        mask[r, : len(p) + len(t)] = 1
        positions = predicting_positions(len(p), m)
        rows += [r] * len(positions)
        cols += positions
        targets += [tok for tok, keep in zip(t, m, strict=True) if keep]
    return ids, mask, torch.tensor(rows), torch.tensor(cols), torch.tensor(targets, dtype=torch.long)


def shared_prefix_len(prompts: list[list[int]], minimum: int = 16) -> int:
    """Tokens every prompt starts with (at most the shortest prompt less one), or 0 below ``minimum``."""
    if len(prompts) < 2:  # one row: nothing to share
        return 0
    n = common_prefix_len(prompts)
    return n if n >= minimum else 0


def gathered_hidden(model, ids, mask, rows, cols, prefix_len: int = 0) -> torch.Tensor:
    """Final hidden states at the predicting positions only: [n_trained, hidden].

    With ``prefix_len`` > 0 the rows' shared first tokens (the teacher's system
    turn) run once, and the rest of every row attends to their expanded cache.
    """
    decoder, _ = decoder_and_head(model)
    device = next(model.parameters()).device
    ids, mask, rows, cols = ids.to(device), mask.to(device), rows.to(device), cols.to(device)
    if not prefix_len:
        out = decoder(input_ids=ids, attention_mask=mask, use_cache=False)
        return out.last_hidden_state[rows, cols]
    prefix = returned_cache(decoder(input_ids=ids[:1, :prefix_len], use_cache=True))
    n = ids.shape[0]
    cache = DynamicCache(
        [(layer.keys.expand(n, -1, -1, -1), layer.values.expand(n, -1, -1, -1)) for layer in prefix.layers]
    )
    out = decoder(
        input_ids=ids[:, prefix_len:], attention_mask=mask, use_cache=True, **{cache_keyword(decoder): cache}
    )
    return out.last_hidden_state[rows, cols - prefix_len]


def _logprobs(head, hidden: torch.Tensor) -> torch.Tensor:
    return torch.log_softmax(head(hidden).float(), dim=-1)


def head_is_frozen(model) -> bool:
    """True when the LM head is a plain frozen layer, so teacher and student share it exactly."""
    _, head = decoder_and_head(model)
    wrapped = hasattr(head, "base_layer") or hasattr(head, "original_module")
    return not wrapped and not any(p.requires_grad for p in head.parameters())


@torch.no_grad()
def teacher_targets(
    model,
    hidden: torch.Tensor,
    tokens: torch.Tensor,
    top_k: int | None,
    chunk: int,
    keep_hidden: bool = False,
) -> Targets:
    """Teacher log-probs for gathered rows, computed [chunk, V] at a time (or its hidden states kept)."""
    _, head = decoder_and_head(model)
    parts = []
    for start in range(0, hidden.shape[0], chunk):
        lp = _logprobs(head, hidden[start : start + chunk])
        if keep_hidden:
            token_lp = lp.gather(-1, tokens[start : start + chunk, None].to(lp.device)).squeeze(-1).cpu()
            parts.append(Targets(None, None, None, token_lp, hidden[start : start + chunk].detach().cpu()))
        else:
            parts.append(logprob_targets(lp, tokens[start : start + chunk], top_k))
    return concat(parts)


def logprob_targets(lp: torch.Tensor, tokens: torch.Tensor, top_k: int | None) -> Targets:
    """Targets from teacher log-probs [n, V] at n trained positions and the tokens sampled there."""
    token_lp = lp.gather(-1, tokens[:, None].to(lp.device)).squeeze(-1).cpu()
    if not top_k:
        return Targets(lp.cpu(), None, None, token_lp)
    values, indices = lp.topk(top_k, dim=-1)
    tail = _log1mexp(torch.logsumexp(values, dim=-1))
    return Targets(values.cpu(), indices.to(torch.int32).cpu(), tail.cpu(), token_lp)


def _log1mexp(x: torch.Tensor) -> torch.Tensor:
    """log(1 - exp(x)) for x <= 0, stable; the tail bucket's log-mass."""
    x = x.clamp(max=-1e-7)
    return torch.where(x > -0.693, torch.log(-torch.expm1(x)), torch.log1p(-torch.exp(x)))


def _kl_chunk(weight_holder, hidden, teacher_lp, indices, tail, teacher_hidden=None):
    if teacher_hidden is not None:
        with torch.no_grad():
            teacher_lp = _logprobs(weight_holder, teacher_hidden)
    student_lp = _logprobs(weight_holder, hidden)
    if indices is None:
        return (teacher_lp.exp() * (teacher_lp - student_lp)).sum()
    s_top = student_lp.gather(-1, indices.long())
    s_tail = _log1mexp(torch.logsumexp(s_top, dim=-1))
    kl = (teacher_lp.exp() * (teacher_lp - s_top)).sum(-1) + tail.exp() * (tail - s_tail)
    return kl.sum()


def kl_sum(
    model, hidden: torch.Tensor, targets: Targets, chunk: int, grad_checkpoint: bool = True
) -> torch.Tensor:
    """Sum over rows of KL(teacher || student); student logits exist [chunk, V] at a time, also in backward."""
    _, head = decoder_and_head(model)
    device = hidden.device
    total = hidden.new_zeros((), dtype=torch.float32)
    for start in range(0, hidden.shape[0], chunk):
        sl = slice(start, start + chunk)
        args = (
            hidden[sl],
            _on(targets.logprobs, sl, device),
            _on(targets.indices, sl, device),
            _on(targets.tail, sl, device),
            _on(targets.hidden, sl, device),
        )
        if grad_checkpoint and torch.is_grad_enabled():
            total = total + checkpoint(_kl_chunk, head, *args, use_reentrant=False)
        else:
            total = total + _kl_chunk(head, *args)
    return total


def _on(x: torch.Tensor | None, sl: slice, device) -> torch.Tensor | None:
    if x is None:
        return None
    return x[sl] if device is None else x[sl].to(device)


def student_token_logprobs(model, hidden: torch.Tensor, tokens: torch.Tensor, chunk: int) -> torch.Tensor:
    """Log-prob of each sampled token under the student, [n] (for NLL alignment)."""
    _, head = decoder_and_head(model)
    out = []
    with torch.no_grad():
        for start in range(0, hidden.shape[0], chunk):
            lp = _logprobs(head, hidden[start : start + chunk])
            out.append(lp.gather(-1, tokens[start : start + chunk, None].to(lp.device)).squeeze(-1).cpu())
    return torch.cat(out) if out else torch.zeros(0)


_FIELDS = ("logprobs", "indices", "tail", "token_logprobs", "hidden")


def concat(targets: list[Targets]) -> Targets:
    def cat(name: str):
        parts = [getattr(t, name) for t in targets]
        return None if parts[0] is None else torch.cat(parts)

    return Targets(*(cat(name) for name in _FIELDS))


def split(targets: Targets, sizes: list[int]) -> list[Targets]:
    out, start = [], 0
    for n in sizes:
        sl = slice(start, start + n)
        out.append(Targets(*(_on(getattr(targets, name), sl, None) for name in _FIELDS)))
        start += n
    return out
