"""The baking loss: forward KL(teacher || student) on trajectory tokens, fp32, in chunks.

Prompt Baking (Bhargava et al., arXiv 2409.13697), eq. 2: the KL between the
prompted model's next-token distribution and the baked model's unprompted one,
summed over the positions that predict the trajectory tokens and averaged per
token. What makes it cheap and correct here:

- the decoder runs once; only the hidden states at positions that predict a
  trained token are gathered (the first trajectory token is predicted from the
  last prompt position, and is included), so vocab logits for prompt positions
  never exist;
- those rows go through the LM head in chunks, in fp32, under activation
  checkpointing, so at most [chunk, vocab] logits live at once, in the forward
  and in the backward pass;
- the teacher is frozen within a bake, so its log-probs are computed once
  (``teacher_targets``) over the whole vocabulary, or as top-k with a tail
  bucket (k+1 outcomes, exact KL of the coarsened distributions) when the
  vocabulary is large.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.checkpoint import checkpoint


@dataclass
class Targets:
    """Teacher log-probs at one trajectory's trained positions."""

    logprobs: torch.Tensor  # [n, V] (full) or [n, k] (top-k), fp32
    indices: torch.Tensor | None  # [n, k] token ids for top-k, None for full
    tail: torch.Tensor | None  # [n] log of the mass outside the top k
    token_logprobs: torch.Tensor  # [n] log-prob of the sampled token

    def nbytes(self) -> int:
        parts = [self.logprobs, self.indices, self.tail, self.token_logprobs]
        return sum(p.numel() * p.element_size() for p in parts if p is not None)


def causal_lm(model):
    """The transformers causal LM inside a PeftModel (LoRA layers already injected), or the model."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def decoder_and_head(model):
    lm = causal_lm(model)
    return getattr(lm, lm.base_model_prefix), lm.get_output_embeddings()


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
        for j, keep in enumerate(m):
            if keep:
                rows.append(r)
                cols.append(len(p) + j - 1)  # position that predicts trajectory token j
                targets.append(t[j])
    return ids, mask, torch.tensor(rows), torch.tensor(cols), torch.tensor(targets, dtype=torch.long)


def gathered_hidden(model, ids, mask, rows, cols) -> torch.Tensor:
    """Final hidden states at the predicting positions only: [n_trained, hidden]."""
    decoder, _ = decoder_and_head(model)
    device = next(model.parameters()).device
    out = decoder(input_ids=ids.to(device), attention_mask=mask.to(device), use_cache=False)
    return out.last_hidden_state[rows.to(device), cols.to(device)]


def _logprobs(head, hidden: torch.Tensor) -> torch.Tensor:
    return torch.log_softmax(head(hidden).float(), dim=-1)


@torch.no_grad()
def teacher_targets(
    model, hidden: torch.Tensor, tokens: torch.Tensor, top_k: int | None, chunk: int
) -> Targets:
    """Teacher log-probs for gathered rows, computed [chunk, V] at a time."""
    _, head = decoder_and_head(model)
    parts, idx_parts, tail_parts, tok_parts = [], [], [], []
    for start in range(0, hidden.shape[0], chunk):
        lp = _logprobs(head, hidden[start : start + chunk])
        tok_parts.append(lp.gather(-1, tokens[start : start + chunk, None].to(lp.device)).squeeze(-1).cpu())
        if top_k:
            values, indices = lp.topk(top_k, dim=-1)
            parts.append(values.cpu())
            idx_parts.append(indices.to(torch.int32).cpu())
            tail_parts.append(_log1mexp(torch.logsumexp(values, dim=-1)).cpu())
        else:
            parts.append(lp.cpu())
    return Targets(
        torch.cat(parts),
        torch.cat(idx_parts) if top_k else None,
        torch.cat(tail_parts) if top_k else None,
        torch.cat(tok_parts),
    )


def _log1mexp(x: torch.Tensor) -> torch.Tensor:
    """log(1 - exp(x)) for x <= 0, stable; the tail bucket's log-mass."""
    x = x.clamp(max=-1e-7)
    return torch.where(x > -0.693, torch.log(-torch.expm1(x)), torch.log1p(-torch.exp(x)))


def _kl_chunk(weight_holder, hidden, teacher_lp, indices, tail):
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
            targets.logprobs[sl].to(device),
            targets.indices[sl].to(device) if targets.indices is not None else None,
            targets.tail[sl].to(device) if targets.tail is not None else None,
        )
        if grad_checkpoint and torch.is_grad_enabled():
            total = total + checkpoint(_kl_chunk, head, *args, use_reentrant=False)
        else:
            total = total + _kl_chunk(head, *args)
    return total


def student_token_logprobs(model, hidden: torch.Tensor, tokens: torch.Tensor, chunk: int) -> torch.Tensor:
    """Log-prob of each sampled token under the student, [n] (for NLL alignment)."""
    _, head = decoder_and_head(model)
    out = []
    with torch.no_grad():
        for start in range(0, hidden.shape[0], chunk):
            lp = _logprobs(head, hidden[start : start + chunk])
            out.append(lp.gather(-1, tokens[start : start + chunk, None].to(lp.device)).squeeze(-1).cpu())
    return torch.cat(out) if out else torch.zeros(0)


def concat(targets: list[Targets]) -> Targets:
    top = targets[0].indices is not None
    return Targets(
        torch.cat([t.logprobs for t in targets]),
        torch.cat([t.indices for t in targets]) if top else None,
        torch.cat([t.tail for t in targets]) if top else None,
        torch.cat([t.token_logprobs for t in targets]),
    )


def split(targets: Targets, sizes: list[int]) -> list[Targets]:
    out, start = [], 0
    for n in sizes:
        sl = slice(start, start + n)
        out.append(
            Targets(
                targets.logprobs[sl],
                targets.indices[sl] if targets.indices is not None else None,
                targets.tail[sl] if targets.tail is not None else None,
                targets.token_logprobs[sl],
            )
        )
        start += n
    return out
