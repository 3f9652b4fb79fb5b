"""The bake's training loop (``Baker``): sample from the teacher, freeze its targets, train the adapter.

Prompt Baking (Bhargava et al., arXiv 2409.13697), steps 1-4 of ``bake``'s docstring:
sampling and the teacher targets come from ``TeacherStudent``; this module adds the KL
anchor (``retain_set``), the optimiser loop with held-out validation, early stopping,
half-bake bisection, checkpoints, and the state a killed run resumes from.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from typing import Any

import torch

from selfbake.baking import loss as L
from selfbake.baking.adapter import load_adapter_state
from selfbake.baking.families import FORGETTING_FAMILIES
from selfbake.baking.fused_lora import fused_lora
from selfbake.baking.result import BakeResult
from selfbake.baking.resume import BakeState
from selfbake.baking.settings import BakeSettings
from selfbake.baking.teacher_student import TargetForm, TeacherStudent, target_form
from selfbake.baking.trajectories import Encoded, Question, Trajectory, encode, load_questions, sample
from selfbake.generation import SamplingParams


class Baker(TeacherStudent):
    """One bake's state: the model, its encoded trajectories, the frozen teacher targets."""

    def __init__(self, model, tokenizer, prompt: str, settings: BakeSettings):
        super().__init__(model, tokenizer, prompt, settings)
        self.anchors: list[tuple[str | None, list[Question], tuple[str, ...]]] = []

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

    def restore(self, saved: dict[str, Any], state: BakeState, advance=None, sampled=None) -> BakeResult:
        """The finished bake a killed run saved (``BakeResult.saved``), its adapter loaded into the model."""
        self.load_state(saved["adapter_state"])
        train_t, val_t, _ = state.sampled()
        if advance:
            advance(saved["steps"])
        if sampled:
            sampled(len(train_t) + len(val_t))
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
        sampled: Callable[[int], None] | None = None,
        **hooks,
    ) -> BakeResult:
        """Sample, then ``fit`` (``hooks``: its log/advance/checkpoint/step_offset). With ``state``,
        finished sampling and training are taken from it. ``sampled(n)`` counts sampled trajectories."""
        started = time.perf_counter()
        done = state.sampled() if state else None
        if done:
            train_t, val_t, info = done
            started -= info["seconds"]
            if sampled:
                sampled(len(train_q) + len(val_q))
        else:
            train_t = self.sample(train_q, teacher_uses_adapter, sampled)
            val_t = self.sample(val_q, teacher_uses_adapter, sampled)
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
                    "train_tokens_per_s": round(tokens / dt, 1),  # this step: prompt + trajectory tokens
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
