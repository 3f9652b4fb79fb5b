"""Bake, half-bake, pursue and bake in sequence: a prompt u becomes LoRA weights.

Prompt Baking (Bhargava et al., arXiv 2409.13697). The teacher is the same
PeftModel with its adapter disabled (so it cannot drift with training), shown u
as the system turn; the student is the adapter, shown no system turn. Steps:

1. sample train and held-out trajectories from the prompted teacher
   (``trajectories.sample``, shared-prefix KV cache);
2. keep the teacher's log-probs on them (the teacher is frozen within a bake):
   the sampler's own logits at each sampled token, or one teacher pass
   (``loss.teacher_targets``) where those are not kept or do not line up;
3. train the adapter on the chunked fp32 KL; every ``eval_every`` steps measure
   held-out KL and strength s = 1 - KL(teacher||baked)/KL(teacher||unbaked);
4. stop at the target strength (half-baking: the adapter is bisected between
   the two checkpoints around the crossing until the measured strength is
   within 0.02 of the target) or when held-out KL stops falling (full bake;
   the best checkpoint is kept).

Pursuit (section 5 of the paper): round r's teacher is the round r-1 baked
model prompted with u; its targets are frozen before round r trains. Sequences
merge each bake into the weights before the next; since LoRA deltas add, the
saved adapters stacked in order equal the merged model; earlier layers are
kept by a KL anchor on their x0 (``bake_sequence(keep_earlier=True)``).
"""

from __future__ import annotations

import copy
import math
import random
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from pydantic import Field, field_validator

from selfbake.baking import loss as L
from selfbake.baking import packed
from selfbake.baking.fused_lora import fused_lora
from selfbake.baking.resume import BakeState
from selfbake.baking.trajectories import (
    Encoded,
    Question,
    Trajectory,
    encode,
    encode_pair,
    load_questions,
    sample,
)
from selfbake.config import Config, comma_list
from selfbake.errors import UserError
from selfbake.generation import SamplingParams
from selfbake.generation.kvcache import supports_growing_cache


class BakeSettings(Config):
    """How one bake trains. The CLI's ``BakeConfig`` extends this with model, prompt and output settings."""

    n_train: int = Field(256, gt=0, description="training trajectories (one per x0 question)")
    n_val: int = Field(64, gt=0, description="held-out trajectories for validation KL and strength")
    temperature: float = Field(
        1.0,
        gt=0.0,
        description="trajectory sampling temperature (1 = the prompted model's own distribution)",
    )
    max_new_tokens: int = Field(96, gt=0, description="trajectory length cap, tokens per model turn")
    strength: float | None = Field(
        None, gt=0.0, le=1.0, description="target strength for half-baking (absent = bake fully)"
    )
    rank: int = Field(8, gt=0, description="LoRA rank")
    alpha: float = Field(16.0, gt=0.0, description="LoRA alpha")
    target_modules: str = Field(
        "all-linear", description="LoRA target modules: all-linear, comma-separated names, or a regex (peft)"
    )
    lr: float = Field(3e-3, gt=0.0, description="AdamW learning rate")
    train_batch_size: int = Field(16, gt=0, description="trajectories per optimiser step")
    max_epochs: int = Field(10, gt=0, description="epochs over the trajectories at most")
    # 3 stopped the bundled reasoning bake at strength 0.968 while its held-out KL could still fall by a third
    patience: int = Field(6, gt=0, description="evaluations without a 1% fall in held-out KL before stopping")
    eval_every: int = Field(
        0,
        ge=0,
        description="optimiser steps between validations (0 = every step when half-baking, else 4 per epoch)",
    )
    kl: Literal["full", "topk"] = Field(
        "full", description="exact full-vocabulary KL, or top-k with a tail bucket (approximate, faster)"
    )
    top_k: int = Field(256, gt=0, description="k for kl=topk")
    teacher_cache: Literal["auto", "logprobs", "hidden"] = Field(
        "auto",
        description="full KL: keep the frozen teacher's log-probs [tokens, vocab], or its final hidden "
        "states [tokens, hidden] with log-probs recomputed per chunk (exact, any vocabulary); "
        "auto: log-probs up to 1 GiB",
    )
    chunk: int = Field(
        0, ge=0, description="rows of [rows, vocab] fp32 logits at once (0 = as many as fit 64 MiB)"
    )
    select: Literal["best", "last"] = Field(
        "best", description="full bake: keep the checkpoint with the lowest held-out KL, or the last"
    )
    tools: list[str] = Field(default_factory=list, description="tools trajectories may call")
    max_tool_calls: int = Field(4, ge=0, description="tool calls per trajectory at most")
    retain: list[str] = Field(
        default_factory=list,
        description="task families whose own-prompt behaviour the adapter must keep (a KL anchor to the base)",
    )
    n_retain: int = Field(128, gt=0, description="anchor trajectories, split over the retain families")
    retain_weight: float = Field(1.0, ge=0.0, description="weight of the anchor KL in the loss")
    seed: int = Field(0, description="random seed")
    sample_batch_size: int = Field(64, gt=0, description="trajectories per generation batch")
    group_by_length: bool = Field(
        False,
        description="train on batches of similar-length trajectories (fixed batch groups; held-out KL after "
        "12 steps 9% higher on the bundled model; with padding_free there is no padding to save)",
    )
    padding_free: bool = Field(
        True,
        description="run each batch's sequences concatenated in one row, attention within each (same numbers "
        "as padded batches, ~20% faster steps measured); models that fail a packing probe run padded",
    )

    @field_validator("tools", "retain", mode="before")
    @classmethod
    def _tools_list(cls, value):
        return comma_list(value)


@dataclass
class BakeResult:
    model: Any  # PeftModel with the baked adapter active
    prompt: str
    strength: float
    kl_unbaked: float
    kl_baked: float
    history: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    sample_seconds: float = 0.0
    train_seconds: float = 0.0
    trajectory_tokens: int = 0
    trained_tokens: int = 0
    steps: int = 0
    val: list[Trajectory] = field(default_factory=list, repr=False)
    train: list[Trajectory] = field(default_factory=list, repr=False)
    nll: dict[str, Any] = field(default_factory=dict)
    kl_mode: str = "full"
    adapter_state: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)

    _SAVED = (
        "strength", "kl_unbaked", "kl_baked", "history", "seconds", "sample_seconds", "train_seconds",
        "trajectory_tokens", "trained_tokens", "steps", "nll", "kl_mode", "adapter_state",
    )  # fmt: skip

    def saved(self) -> dict[str, Any]:
        """What a resumed run needs of this finished bake (everything but the model and trajectories)."""
        return {k: getattr(self, k) for k in self._SAVED}

    def summary(self) -> dict[str, Any]:
        return {
            "prompt": self.prompt,
            "strength": round(self.strength, 4),
            "kl_unbaked": round(self.kl_unbaked, 5),
            "kl_baked": round(self.kl_baked, 5),
            "seconds": round(self.seconds, 2),
            "sample_seconds": round(self.sample_seconds, 2),
            "train_seconds": round(self.train_seconds, 2),
            "trajectory_tokens": self.trajectory_tokens,
            "trained_tokens": self.trained_tokens,
            "tokens_per_s": round(self.trajectory_tokens / self.seconds, 1) if self.seconds else None,
            "steps": self.steps,
            "kl_mode": self.kl_mode,
            "nll_alignment": self.nll,
        }


def load_adapter_state(model, state: dict[str, torch.Tensor]) -> None:
    """Copy saved adapter weights (``BakeResult.adapter_state``) back into the model in place."""
    params = dict(model.named_parameters())
    with torch.no_grad():
        for k, v in state.items():
            params[k].copy_(v)


def with_adapter(model, settings: BakeSettings, name: str = "default"):
    """Wrap a causal LM in a fresh zero-initialised LoRA adapter (a PeftModel is returned as is)."""
    if isinstance(model, PeftModel):
        return model
    targets = settings.target_modules
    config = LoraConfig(
        r=settings.rank,
        lora_alpha=settings.alpha,
        lora_dropout=0.0,
        # "q_proj,v_proj" is a list of names; one name, "all-linear" or a regex stays a string (peft's rules)
        target_modules=[t.strip() for t in targets.split(",") if t.strip()] if "," in targets else targets,
        task_type="CAUSAL_LM",
    )
    torch.manual_seed(settings.seed)
    try:
        return get_peft_model(model, config, adapter_name=name)
    except ValueError as exc:  # peft's NoMatchingPeftModuleError and friends: a bad --target-modules
        raise UserError(f"--target-modules {targets!r}: {str(exc).splitlines()[0]}") from None


def check_adapter(model, settings: BakeSettings) -> None:
    """Refuse settings the adapter cannot honour, before any sampling."""
    if settings.kl == "full" and settings.teacher_cache == "hidden" and not L.head_is_frozen(model):
        raise UserError(
            "--teacher-cache hidden needs a frozen LM head, but the adapter trains it "
            "(drop the head from --target-modules, or use --teacher-cache logprobs)"
        )


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


class Baker:
    """One bake's state: the model, its encoded trajectories, the frozen teacher targets."""

    def __init__(self, model, tokenizer, prompt: str, settings: BakeSettings):
        self.model = with_adapter(model, settings)
        check_adapter(self.model, settings)
        self.tokenizer = tokenizer
        self.prompt = prompt
        self.settings = settings
        self.pad = _pad_id(tokenizer)
        self.anchors: list[tuple[str | None, list[Question], tuple[str, ...]]] = []
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

    def sample(self, questions: list[Question], teacher_uses_adapter: bool) -> list[Trajectory]:
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

    def retain_set(self, form: TargetForm) -> tuple[list[Encoded], list[L.Targets]]:
        """Anchor trajectories: contexts whose current behaviour the adapter must keep, scored by the model
        as it was before this bake (adapter off), with the same input for teacher and student.

        The bake's KL only says what the unprompted model does on x0; without an
        anchor the adapter also rewrites behaviour elsewhere (measured on the first
        shipped bundled model: a reasoning bake took bignum-with-calculator from
        0.747 to 0.003; a greeting bake after a tool bake erased the unprompted
        tool calls). Anchors come from
        ``settings.retain`` (other families under their own prompts) and from
        ``self.anchors`` (in a sequence: earlier layers' x0, unprompted).
        """
        from selfbake.baking.measure import FORGETTING_FAMILIES

        s = self.settings
        groups = list(self.anchors)
        for family in s.retain:
            system, levels, tools = FORGETTING_FAMILIES[family]
            spec = f"task:{family}:{','.join(map(str, levels))}"
            per = -(-s.n_retain // len(s.retain))
            groups.append((system, load_questions(spec, per, s.seed + 1), tools))
        encs: list[Encoded] = []
        params = SamplingParams(temperature=s.temperature, max_new_tokens=s.max_new_tokens, seed=s.seed + 1)
        for system, questions, tools in groups:
            with self.model.disable_adapter():
                trajectories = sample(
                    self.model,
                    self.tokenizer,
                    system,
                    questions,
                    params,
                    tools=list(tools) or None,
                    batch_size=s.sample_batch_size,
                    max_tool_calls=s.max_tool_calls,
                )
            encs += [e for e in (encode(self.tokenizer, system, t) for t in trajectories) if any(e.trained)]
        return encs, self.targets(encs, form, teacher_uses_adapter=False) if encs else []

    def restore(self, saved: dict[str, Any], state: BakeState, advance=None) -> BakeResult:
        """The finished bake a killed run saved (``BakeResult.saved``), its adapter loaded into the model."""
        self.load_state(saved["adapter_state"])
        train_t, val_t, _ = state.sampled()
        if advance:
            advance(saved["steps"])
        return BakeResult(model=self.model, prompt=self.prompt, train=train_t, val=val_t, **saved)

    def trainable_state(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in self.model.named_parameters() if v.requires_grad}

    def load_state(self, state: dict[str, torch.Tensor]) -> None:
        load_adapter_state(self.model, state)

    def bisect(self, low, high, target: float, student_val, targets_val, kl_start: float, tol: float = 0.02):
        """Interpolate the adapter between two checkpoints that straddle the target strength.

        One optimiser step can jump past the target; the LoRA weights on the
        segment between the checkpoints are searched by bisection (each probe
        one held-out KL pass) until the measured strength is within ``tol``.
        """
        best = min((low, high), key=lambda c: abs(c[2] - target))
        lo, hi = 0.0, 1.0
        for _ in range(12):
            if abs(best[2] - target) <= tol:
                break
            t = (lo + hi) / 2
            state = {k: low[1][k] + t * (high[1][k] - low[1][k]) for k in low[1]}
            self.load_state(state)
            kl = self.val_kl(student_val, targets_val)
            strength = 1.0 - kl / kl_start if kl_start > 0 else 1.0
            probe = (kl, state, strength)
            if abs(strength - target) < abs(best[2] - target):
                best = probe
            if strength < target:
                lo = t
            else:
                hi = t
        return best

    def run(
        self,
        train_q: list[Question],
        val_q: list[Question],
        *,
        teacher_uses_adapter: bool = False,
        state: BakeState | None = None,
        **hooks,
    ) -> BakeResult:
        """Sample, then ``fit`` (``hooks``: its log/advance/checkpoint/step_offset). With ``state``,
        finished sampling and training are taken from it."""
        started = time.perf_counter()
        sampled = state.sampled() if state else None
        if sampled:
            train_t, val_t, info = sampled
            started -= info["seconds"]
        else:
            train_t = self.sample(train_q, teacher_uses_adapter)
            val_t = self.sample(val_q, teacher_uses_adapter)
            if state:
                state.save_sampled(train_t, val_t, time.perf_counter() - started)
        return self.fit(
            train_t, val_t, teacher_uses_adapter=teacher_uses_adapter, started=started, state=state, **hooks
        )

    def fit(
        self,
        train_t: list[Trajectory],
        val_t: list[Trajectory],
        *,
        teacher_uses_adapter: bool = False,
        log: Callable[..., None] | None = None,
        advance: Callable[[int], None] | None = None,
        checkpoint: Callable[..., None] | None = None,
        step_offset: int = 0,
        started: float | None = None,
        state: BakeState | None = None,
    ) -> BakeResult:
        """Train on given trajectories (``run`` samples them first).

        ``checkpoint(model, prompt=, step=, val_kl=, strength=, best=)`` is called at
        every validation, with the adapter as it is at that step. With ``state`` the
        loop's state is saved at every validation, and a saved one is resumed from.
        """
        s = self.settings
        started = time.perf_counter() if started is None else started
        kept_train, teacher_train, student_train = self.encode_kept(train_t)
        kept_val, teacher_val, student_val = self.encode_kept(val_t)
        if not student_train or not student_val:
            raise ValueError("no trajectory has a token to train on (every sample was empty)")
        n_tokens = sum(sum(e.trained) for e in student_train + student_val)
        form = self.form = target_form(s, self.model, n_tokens)
        targets_train = self.targets(teacher_train, form, teacher_uses_adapter, kept_train)
        targets_val = self.targets(teacher_val, form, teacher_uses_adapter, kept_val)
        for t in train_t + val_t:  # now held as targets
            t.sampled_logits = None
        retain_encs, retain_targets = self.retain_set(form) if s.retain or self.anchors else ([], [])
        retain_order = list(range(len(retain_encs)))
        retain_cursor = len(retain_order)
        sample_seconds = time.perf_counter() - started
        traj_tokens = sum(len(e.trajectory_ids) for e in student_train + student_val)

        trainable = [p for p in self.model.parameters() if p.requires_grad]
        optimiser = torch.optim.AdamW(trainable, lr=s.lr, weight_decay=0.0)
        steps_per_epoch = math.ceil(len(student_train) / s.train_batch_size)
        eval_every = s.eval_every or (1 if s.strength is not None else max(1, steps_per_epoch // 4))
        chosen = None
        order = list(range(len(student_train)))
        rng = random.Random(s.seed)
        lengths = [len(e.prompt_ids) + len(e.trajectory_ids) for e in student_train]
        epoch, position, batches = 0, 0, None  # the epoch's batches and the next one to train on
        saved = state.training() if state else None
        if saved:  # a killed run: go on from its last validation, exactly
            state.rewind_metrics(saved["metrics_mark"])
            kl_start, history, stale, step = (saved[k] for k in ("kl_start", "history", "stale", "step"))
            epoch, position, batches, order = (saved[k] for k in ("epoch", "position", "batches", "order"))
            best, previous = saved["best"], saved["previous"]
            retain_order, retain_cursor = saved["retain_order"], saved["retain_cursor"]
            rng.setstate(saved["rng"])
            self.load_state(saved["adapter"])
            optimiser.load_state_dict(saved["optimiser"])
            started = time.perf_counter() - saved["seconds"]
            train_started = time.perf_counter() - saved["train_seconds"]
            if advance:
                advance(step)
        else:
            sampled = state.sampled_info() if state else None
            if sampled:  # a killed run that had not validated yet: drop what it logged
                state.rewind_metrics(sampled["metrics_mark"])
            kl_start = self.val_kl(student_val, targets_val)
            history = [{"step": step_offset, "val_kl": kl_start, "strength": 0.0}]
            if log:
                log(step=step_offset, val_kl=kl_start, strength=0.0)
            best = (kl_start, self.trainable_state(), 0.0)
            previous = best
            stale = 0
            step = 0
            train_started = time.perf_counter()
        while epoch < s.max_epochs:
            if batches is None:
                rng.shuffle(order)
                batches = _batches(order, lengths, s.train_batch_size, rng, s.group_by_length)
            while position < len(batches):
                idx = batches[position]
                position += 1
                if not self.model.training:
                    self.model.train()
                t0 = time.perf_counter()
                # one fused context for the step's forward and backward: the checkpointed LM-head
                # chunks are recomputed in backward and must take the forward's LoRA path
                with fused_lora(self.model):
                    total, count = self.kl(
                        [student_train[i] for i in idx], [targets_train[i] for i in idx], grad=True
                    )
                    loss = total / max(count, 1)
                    if retain_encs:
                        if retain_cursor >= len(retain_order):
                            rng.shuffle(retain_order)
                            retain_cursor = 0
                        ridx = retain_order[retain_cursor : retain_cursor + s.train_batch_size]
                        retain_cursor += s.train_batch_size
                        r_total, r_count = self.kl(
                            [retain_encs[i] for i in ridx], [retain_targets[i] for i in ridx], grad=True
                        )
                        loss = loss + s.retain_weight * r_total / max(r_count, 1)
                    optimiser.zero_grad(set_to_none=True)
                    loss.backward()
                optimiser.step()
                step += 1
                dt = time.perf_counter() - t0
                tokens = sum(
                    len(student_train[i].prompt_ids) + len(student_train[i].trajectory_ids) for i in idx
                )
                metrics: dict[str, Any] = {
                    "loss": loss.detach().item(),
                    "tokens_per_s": round(tokens / dt, 1),
                }
                if step % eval_every == 0:
                    kl = self.val_kl(student_val, targets_val)
                    strength = 1.0 - kl / kl_start if kl_start > 0 else 1.0
                    metrics.update(val_kl=kl, strength=strength)
                    history.append({"step": step_offset + step, "val_kl": kl, "strength": strength})
                    current = (kl, self.trainable_state(), strength)
                    if s.strength is not None and strength >= s.strength:
                        chosen = self.bisect(
                            previous, current, s.strength, student_val, targets_val, kl_start
                        )
                    elif kl < best[0] * 0.99:
                        best, stale = current, 0
                    else:
                        stale += 1
                    previous = current
                    if checkpoint:
                        checkpoint(
                            self.model,
                            prompt=self.prompt,
                            step=step_offset + step,
                            val_kl=kl,
                            strength=strength,
                            best=best is current,
                        )
                if log:
                    log(step=step_offset + step, **metrics)
                stop = chosen is not None or (s.strength is None and stale >= s.patience)
                if state and "val_kl" in metrics and not stop:
                    state.save_training(
                        {
                            "step": step,
                            "epoch": epoch,
                            "position": position,
                            "batches": batches,
                            "order": order,
                            "rng": rng.getstate(),
                            "retain_order": retain_order,
                            "retain_cursor": retain_cursor,
                            "adapter": self.trainable_state(),
                            "optimiser": optimiser.state_dict(),
                            "best": best,
                            "previous": previous,
                            "stale": stale,
                            "history": history,
                            "kl_start": kl_start,
                            "seconds": time.perf_counter() - started,
                            "train_seconds": time.perf_counter() - train_started,
                        }
                    )
                if advance:
                    advance(1)
                if stop:
                    break
            if chosen is not None or (s.strength is None and stale >= s.patience):
                break
            epoch, position, batches = epoch + 1, 0, None
        if chosen is None:
            if s.select == "last":
                chosen = (None, self.trainable_state(), None)
            elif s.strength is None:
                chosen = best
            else:  # the target was never reached: keep the strongest checkpoint
                chosen = max((best, previous), key=lambda c: c[2])
        self.load_state(chosen[1])
        kl_final, nll = self.held_out(student_val, targets_val)
        train_seconds = time.perf_counter() - train_started
        return BakeResult(
            model=self.model,
            prompt=self.prompt,
            strength=1.0 - kl_final / kl_start if kl_start > 0 else 1.0,
            kl_unbaked=kl_start,
            kl_baked=kl_final,
            history=history,
            seconds=time.perf_counter() - started,
            sample_seconds=sample_seconds,
            train_seconds=train_seconds,
            trajectory_tokens=traj_tokens,
            trained_tokens=n_tokens,
            steps=step,
            val=val_t,
            train=train_t,
            kl_mode=form.describe(),
            adapter_state=chosen[1],
            nll=nll,
        )


def _batches(
    order: list[int], lengths: list[int], size: int, rng: random.Random, group_by_length: bool
) -> list[list[int]]:
    """Batches in ``order``; grouped by length, megabatches of 4 batches are sorted by length before
    splitting and the batches shuffled (as transformers' ``group_by_length``), so little is padding."""
    if not group_by_length:
        return [order[i : i + size] for i in range(0, len(order), size)]
    batches = []
    for i in range(0, len(order), 4 * size):
        mega = sorted(order[i : i + 4 * size], key=lambda j: -lengths[j])
        batches += [mega[k : k + size] for k in range(0, len(mega), size)]
    rng.shuffle(batches)
    return batches


def pearson(a: list[float], b: list[float]) -> float:
    n = len(a)
    if n < 2:
        return float("nan")
    ma, mb = sum(a) / n, sum(b) / n
    cov = sum((x - ma) * (y - mb) for x, y in zip(a, b, strict=True))
    va = sum((x - ma) ** 2 for x in a)
    vb = sum((y - mb) ** 2 for y in b)
    return cov / math.sqrt(va * vb) if va > 0 and vb > 0 else float("nan")


def _split_questions(
    questions: list[Question], settings: BakeSettings
) -> tuple[list[Question], list[Question]]:
    return questions[: settings.n_train], questions[settings.n_train : settings.n_train + settings.n_val]


def bake(
    model,
    tokenizer,
    prompt: str,
    questions: list[Question],
    settings: BakeSettings,
    *,
    anchors=(),
    state: BakeState | None = None,
    **hooks,
) -> BakeResult:
    """Bake ``prompt`` into a LoRA adapter. ``questions`` holds n_train + n_val x0s (train first).

    ``anchors``: (system, questions, tools) groups whose current behaviour must be kept.
    ``state``: where a killed run left its work (``resume.BakeState``); finished work is not redone.
    """
    if len(questions) < settings.n_train + settings.n_val:
        raise ValueError(f"need {settings.n_train + settings.n_val} x0 questions, got {len(questions)}")
    train_q, val_q = _split_questions(questions, settings)
    baker = Baker(model, tokenizer, prompt, settings)
    baker.anchors = list(anchors)
    return _run_or_restore(baker, train_q, val_q, state, hooks)


def _run_or_restore(
    baker: Baker, train_q, val_q, state: BakeState | None, hooks: dict, **run_args
) -> BakeResult:
    """Run one unit of baking; with ``state``, a finished unit is restored and a killed one resumed."""
    done = state.result() if state else None
    if done:
        return baker.restore(done, state, hooks.get("advance"))
    result = baker.run(train_q, val_q, state=state, **run_args, **hooks)
    if state:
        state.save_result(result.saved())
    return result


def half_bake(
    model,
    tokenizer,
    prompt: str,
    questions: list[Question],
    settings: BakeSettings,
    strength: float = 0.5,
    **hooks,
) -> BakeResult:
    """Bake until the measured held-out strength reaches ``strength`` (not a guessed epoch)."""
    return bake(
        model, tokenizer, prompt, questions, settings.model_copy(update={"strength": strength}), **hooks
    )


def pursue(
    model,
    tokenizer,
    prompt: str,
    questions: list[Question],
    settings: BakeSettings,
    rounds: int = 2,
    *,
    state: BakeState | None = None,
    **hooks,
) -> list[BakeResult]:
    """Round 1 bakes; each later round's teacher is the current baked model prompted with u.

    With ``state``, round r keeps its work in ``state/round_r``."""
    unit = (lambda r: state.unit(f"round_{r}")) if state else (lambda r: None)
    results = [bake(model, tokenizer, prompt, questions, settings, state=unit(1), **hooks)]
    baked = results[0].model
    for r in range(1, rounds):
        round_settings = settings.model_copy(update={"seed": settings.seed + r})
        baker = Baker(baked, tokenizer, prompt, round_settings)
        train_q, val_q = _split_questions(questions, settings)
        results.append(
            _run_or_restore(
                baker,
                train_q,
                val_q,
                unit(r + 1),
                hooks,
                teacher_uses_adapter=True,
                step_offset=sum(x.steps for x in results),
            )
        )
    return results


def merged_copy(peft_model):
    """A plain transformers model with the adapter's weights merged in (the PeftModel is untouched)."""
    return copy.deepcopy(peft_model).merge_and_unload()


def bake_sequence(
    model,
    tokenizer,
    prompts: list[str],
    questions: list[list[Question]],
    settings: list[BakeSettings],
    *,
    keep_earlier: bool = True,
    state: BakeState | None = None,
    **hooks,
) -> tuple[Any, list[BakeResult]]:
    """Bake each prompt on top of the previous ones (merged after each); returns (merged model, layers).

    Each layer's teacher is the current model prompted with its u, which on this
    model's language answers *only* as u says, so a later layer would erase an
    earlier one; ``keep_earlier`` anchors earlier layers' x0 (unprompted, as the
    merged model answers them) with the KL anchor of ``Baker.retain_set``.
    """
    current = model
    layers: list[BakeResult] = []
    anchors: list = []
    for i, (prompt, qs, s) in enumerate(zip(prompts, questions, settings, strict=True), 1):
        result = bake(
            current,
            tokenizer,
            prompt,
            qs,
            s,
            anchors=anchors if keep_earlier else (),
            state=state.unit(f"layer_{i}") if state else None,
            step_offset=sum(x.steps for x in layers),
            **hooks,
        )
        layers.append(result)
        current = merged_copy(result.model)
        # later layers keep this one: its x0, unprompted, as the merged model now answers them
        anchors = anchors + [(None, qs[: max(1, s.n_retain // len(prompts))], tuple(s.tools))]
    return current, layers
