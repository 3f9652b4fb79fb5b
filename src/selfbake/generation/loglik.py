"""Log-likelihood of continuations, as lm-evaluation-harness's HF backend computes it.

For each (context, continuation): trailing spaces of the context move to the
continuation; the pair is tokenised whole and the continuation tokens are
whatever follows the context's own tokenisation; no special tokens are added
(an empty context gets the BOS/EOS token as its prefix). The result is the sum
of the continuation tokens' log-probs and whether greedy decoding would have
produced them. Batches are right-padded, so positions need no adjustment.
"""

from __future__ import annotations

import torch


def encode_pair(tokenizer, context: str, continuation: str) -> tuple[list[int], list[int]]:
    spaces = len(context) - len(context.rstrip())
    if spaces:
        continuation = context[-spaces:] + continuation
        context = context[:-spaces]
    whole = tokenizer(context + continuation, add_special_tokens=False).input_ids
    if not context:
        prefix = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
        return [prefix], tokenizer(continuation, add_special_tokens=False).input_ids
    ctx = tokenizer(context, add_special_tokens=False).input_ids
    return ctx, whole[len(ctx) :]


@torch.no_grad()
def loglikelihood(
    model, tokenizer, requests: list[tuple[str, str]], batch_size: int = 16
) -> list[tuple[float, bool]]:
    device = next(model.parameters()).device
    max_len = getattr(model.config, "max_position_embeddings", 2048)
    encoded = [encode_pair(tokenizer, c, x) for c, x in requests]
    results: list[tuple[float, bool]] = [(0.0, True)] * len(requests)
    order = sorted(range(len(encoded)), key=lambda i: -len(encoded[i][0]) - len(encoded[i][1]))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        rows, spans = [], []
        for i in chunk:
            ctx, cont = encoded[i]
            ids = (ctx + cont)[-(max_len + 1) :][:-1]
            rows.append(ids)
            spans.append((len(ids) - len(cont), cont))
        width = max(len(r) for r in rows)
        input_ids = torch.full((len(rows), width), pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for r, ids in enumerate(rows):
            input_ids[r, : len(ids)] = torch.tensor(ids)
            mask[r, : len(ids)] = 1
        logits = model(input_ids=input_ids.to(device), attention_mask=mask.to(device)).logits.float()
        for r, i in enumerate(chunk):
            first, cont = spans[r]
            span = torch.log_softmax(logits[r, first : first + len(cont)], dim=-1)
            target = torch.tensor(cont, device=span.device)
            score = span.gather(-1, target[:, None]).sum().item()
            greedy = bool((span.argmax(-1) == target).all())
            results[i] = (score, greedy)
    return results
