"""The teacher and the student of a bake, and the KL between them on trajectories.

Prompt Baking (Bhargava et al., arXiv 2409.13697): the teacher is the model shown the
prompt u, the student the adapter shown nothing, and the bake minimises
KL(teacher || student) on trajectories the teacher sampled. Training (``baker.Baker``)
and measurement (``measure.strength``) both need this machinery, so it sits below them:
sampling from the teacher, encoding teacher/student pairs, the frozen teacher targets
(sampler logits, log-probs, top-k or hidden states) and held-out KL with NLL alignment.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import torch

from selfbake.baking import loss as L
from selfbake.baking import packed
from selfbake.baking.adapter import check_adapter, with_adapter
from selfbake.baking.fused_lora import fused_lora
from selfbake.baking.settings import BakeSettings
from selfbake.baking.trajectories import Encoded, Question, Trajectory, encode_pair, sample
from selfbake.generation import SamplingParams
from selfbake.generation.kvcache import supports_growing_cache


@dataclass
class _Batch:
    ids: torch.Tensor
    mask: torch.Tensor
    rows: torch.Tensor
    cols: torch.Tensor
    tokens: torch.Tensor
    prefix_len: int = 0


def _layout(encs: list[Encoded], pad_id: int, share_prefix: bool = False) -> _Batch:
    prompts = [e.prompt_ids for e in encs]
    return _Batch(
        *L.batch_layout(prompts, [e.trajectory_ids for e in encs], [e.trained for e in encs], pad_id),
        prefix_len=L.shared_prefix_len(prompts) if share_prefix else 0,
    )


def _pad_id(tokenizer) -> int:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


def _vocab(model) -> int:
    return L.decoder_and_head(model)[1].weight.shape[0]


TARGETS_BUDGET = 1 << 30  # bytes of fp32 teacher log-probs kept before switching to hidden states


@dataclass(frozen=True)
class TargetForm:
    """How the frozen teacher is stored: full log-probs, top-k + tail, or final hidden states."""

    top_k: int | None = None
    keep_hidden: bool = False

    def describe(self) -> str:
        if self.top_k:
            return f"top{self.top_k}+tail"
        return "full (teacher hidden states)" if self.keep_hidden else "full"


def target_form(settings: BakeSettings, model, n_tokens: int) -> TargetForm:
    vocab = _vocab(model)
    if settings.kl == "topk":
        return TargetForm(top_k=min(settings.top_k, vocab))
    cache = settings.teacher_cache
    if cache == "auto":
        cache = "logprobs" if n_tokens * vocab * 4 <= TARGETS_BUDGET else "hidden"
    if cache == "hidden" and not L.head_is_frozen(model):  # explicit "hidden" was refused in Baker
        cache = "logprobs"
    return TargetForm(keep_hidden=cache == "hidden")


class TeacherStudent:
    """One model and one prompt u, seen two ways: the teacher (adapter off, u as the system turn) and the
    student (adapter on, no system turn). Samples trajectories from the teacher, keeps its frozen targets
    and measures the student's KL to them."""

    def __init__(self, model, tokenizer, prompt: str, settings: BakeSettings):
        self.model = with_adapter(model, settings)
        check_adapter(self.model, settings)
        self.tokenizer = tokenizer
        self.prompt = prompt
        self.settings = settings
        self.pad = _pad_id(tokenizer)
        self.chunk = settings.chunk or max(16, (64 << 20) // (4 * _vocab(self.model)))
        self.share_prefix = supports_growing_cache(self.model)  # full attention: a prefix cache is exact
        self.decoder, _ = L.decoder_and_head(self.model)
        self.pack = settings.padding_free and self.share_prefix and packed.supports_packing(self.decoder)
        self.teacher_passes = 0  # trajectories the last ``targets`` call had to run the teacher on

    def teacher_context(self, teacher_uses_adapter: bool):
        return nullcontext() if teacher_uses_adapter else self.model.disable_adapter()

    def keeps_sampler_logits(self, n_questions: int) -> bool:
        """Keep the sampler's logits as teacher targets when they would be stored as log-probs anyway."""
        s = self.settings
        if s.tools or s.teacher_cache == "hidden":
            return False
        return n_questions * s.max_new_tokens * _vocab(self.model) * 4 <= TARGETS_BUDGET

    def sample(
        self,
        questions: list[Question],
        teacher_uses_adapter: bool,
        on_batch: Callable[[int], None] | None = None,
    ) -> list[Trajectory]:
        s = self.settings
        params = SamplingParams(temperature=s.temperature, max_new_tokens=s.max_new_tokens, seed=s.seed)
        with self.teacher_context(teacher_uses_adapter), fused_lora(self.model):
            return sample(
                self.model,
                self.tokenizer,
                self.prompt,
                questions,
                params,
                tools=s.tools or None,
                batch_size=s.sample_batch_size,
                max_tool_calls=s.max_tool_calls,
                keep_logits=self.keeps_sampler_logits(len(questions)),
                on_batch=on_batch,
            )

    def encode_kept(
        self, trajectories: list[Trajectory]
    ) -> tuple[list[Trajectory], list[Encoded], list[Encoded]]:
        """(trajectories, teacher, student) encodings of the trajectories with a token to train on."""
        pairs = [(t, *encode_pair(self.tokenizer, self.prompt, t)) for t in trajectories]
        keep = [p for p in pairs if any(p[2].trained)]
        return [p[0] for p in keep], [p[1] for p in keep], [p[2] for p in keep]

    def encode(self, trajectories: list[Trajectory]) -> tuple[list[Encoded], list[Encoded]]:
        _, teacher, student = self.encode_kept(trajectories)
        return teacher, student

    @torch.no_grad()
    def targets(
        self,
        teacher: list[Encoded],
        form: TargetForm,
        teacher_uses_adapter: bool,
        sampled: list[Trajectory] | None = None,
    ) -> list[L.Targets]:
        """Frozen teacher targets. A trajectory whose sampler logits were kept (``sampled``, aligned with
        ``teacher``) and whose trained tokens are exactly the sampled ones takes its targets from them: the
        sampler was this teacher, so only the others need a teacher pass."""
        out: list[L.Targets | None] = [None] * len(teacher)
        if sampled is not None and not form.keep_hidden:
            for i, (enc, trajectory) in enumerate(zip(teacher, sampled, strict=True)):
                trained = [t for t, keep in zip(enc.trajectory_ids, enc.trained, strict=True) if keep]
                if trajectory.sampled_logits is not None and trained == trajectory.sampled_ids:
                    lp = torch.log_softmax(trajectory.sampled_logits.float(), dim=-1)
                    out[i] = L.logprob_targets(lp, torch.tensor(trained), form.top_k)
        todo = [i for i, t in enumerate(out) if t is None]
        self.teacher_passes = len(todo)
        bs = self.settings.train_batch_size
        with self.teacher_context(teacher_uses_adapter):
            self.model.eval()
            for start in range(0, len(todo), bs):
                rows = todo[start : start + bs]
                encs = [teacher[i] for i in rows]
                hidden, tokens = self.hidden(encs)
                t = L.teacher_targets(self.model, hidden, tokens, form.top_k, self.chunk, form.keep_hidden)
                for i, part in zip(rows, L.split(t, [sum(e.trained) for e in encs]), strict=True):
                    out[i] = part
        return out

    def hidden(self, encs: list[Encoded]) -> tuple[torch.Tensor, torch.Tensor]:
        """Final hidden states at the positions that predict trained tokens, and those tokens: one
        padding-free row where the model allows it (``packed``), else a right-padded batch."""
        prompts = [e.prompt_ids for e in encs]
        trajectories, trained = [e.trajectory_ids for e in encs], [e.trained for e in encs]
        if self.pack:
            prefix_len = L.shared_prefix_len(prompts)
            ids, positions, bounds, cols, tokens = packed.layout(prompts, trajectories, trained, prefix_len)
            prefix = prompts[0][:prefix_len]
            return packed.packed_hidden(self.decoder, ids, positions, bounds, cols, prefix), tokens
        b = _layout(encs, self.pad, self.share_prefix)
        return L.gathered_hidden(self.model, b.ids, b.mask, b.rows, b.cols, b.prefix_len), b.tokens

    def kl(self, student: list[Encoded], targets: list[L.Targets], *, grad: bool) -> tuple[torch.Tensor, int]:
        with torch.set_grad_enabled(grad), fused_lora(self.model):
            hidden, tokens = self.hidden(student)
            total = L.kl_sum(self.model, hidden, L.concat(targets), self.chunk)
        return total, int(tokens.numel())

    @torch.no_grad()
    def val_kl(self, student: list[Encoded], targets: list[L.Targets]) -> float:
        self.model.eval()
        total, count = 0.0, 0
        bs = self.settings.train_batch_size
        for start in range(0, len(student), bs):
            kl, n = self.kl(student[start : start + bs], targets[start : start + bs], grad=False)
            total, count = total + float(kl), count + n
        return total / max(count, 1)

    @torch.no_grad()
    def held_out(self, student: list[Encoded], targets: list[L.Targets]) -> tuple[float, dict[str, Any]]:
        """Held-out KL per token and NLL alignment from one pass: the per-trajectory mean NLL of the sampled
        tokens, baked-unprompted vs the teacher, and their Pearson r^2."""
        self.model.eval()
        total, count = 0.0, 0
        baked: list[float] = []
        bs = self.settings.train_batch_size
        for start in range(0, len(student), bs):
            encs = student[start : start + bs]
            with fused_lora(self.model):
                hidden, tokens = self.hidden(encs)
            total += float(L.kl_sum(self.model, hidden, L.concat(targets[start : start + bs]), self.chunk))
            count += int(tokens.numel())
            lp = L.student_token_logprobs(self.model, hidden, tokens, self.chunk)
            for part in lp.split([sum(e.trained) for e in encs]):
                baked.append(-float(part.mean()))
        teacher = [-float(t.token_logprobs.mean()) for t in targets]
        return total / max(count, 1), {
            "r2": round(pearson(baked, teacher) ** 2, 4),
            "n": len(baked),
            "baked_mean_nll": round(sum(baked) / len(baked), 4),
            "teacher_mean_nll": round(sum(teacher) / len(teacher), 4),
        }


def pearson(a: list[float], b: list[float]) -> float:
    n = len(a)
    if n < 2:
        return float("nan")
    ma, mb = sum(a) / n, sum(b) / n
    cov = sum((x - ma) * (y - mb) for x, y in zip(a, b, strict=True))
    va = sum((x - ma) ** 2 for x in a)
    vb = sum((y - mb) ** 2 for y in b)
    return cov / math.sqrt(va * vb) if va > 0 and vb > 0 else float("nan")
