"""Prompt baking: the loss, the teacher/student split, the training loop, the outputs and the CLI."""

from __future__ import annotations

import json
import warnings

import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM

from selfbake.baking import (
    Baker,
    BakeSettings,
    Trajectory,
    bake,
    encode_pair,
    half_bake,
    load_baked,
    load_questions,
    strength,
)
from selfbake.baking import loss as L
from selfbake.baking.bake import TargetForm, _layout, with_adapter
from selfbake.cli import main
from selfbake.generation import SamplingParams, TransformersBackend
from selfbake.models import load, render_chat

PROMPT = "Zebra-quokka rules: always answer in steps."
FULL = TargetForm()
SUMMARY_KEYS = ("strength", "kl_unbaked", "kl_baked", "seconds", "trajectory_tokens")
SUMMARY_KEYS += ("trajectory_tokens_per_s_end_to_end",)  # sampling + training, not the per-step rate


def fresh(spec="random:llama-tiny"):
    return load(spec, device="cpu", dtype="float32", seed=0)


def trajectories(n=6):
    return [
        Trajectory(
            f"What is {i} + {i + 1}?", [{"role": "assistant", "content": f"{i} + {i + 1} = {2 * i + 1}"}]
        )
        for i in range(n)
    ]


def small_settings(**kw):
    base = dict(n_train=8, n_val=4, max_new_tokens=12, train_batch_size=4, max_epochs=2, lr=1e-2, rank=4)
    return BakeSettings(**{**base, **kw})


def sublist(needle, hay):
    return any(hay[i : i + len(needle)] == needle for i in range(len(hay) - len(needle) + 1))


@pytest.mark.parametrize("spec", ["random:llama-tiny", "random:qwen2-tiny"])
def test_student_input_never_contains_the_prompt_tokens(spec):
    _, tok = fresh(spec)
    prompt_ids = tok(PROMPT, add_special_tokens=False).input_ids
    default_ids = tok("You are a helpful assistant", add_special_tokens=False).input_ids
    for t in trajectories(3):
        teacher, student = encode_pair(tok, PROMPT, t)
        assert sublist(prompt_ids, teacher.prompt_ids)
        whole_student = student.prompt_ids + student.trajectory_ids
        assert not sublist(prompt_ids, whole_student)
        assert not sublist(default_ids, whole_student)  # no template-inserted system prompt either
        assert teacher.trajectory_ids == student.trajectory_ids
        trained = [i for i, k in zip(student.trajectory_ids, student.trained, strict=True) if k]
        assert tok.decode(trained) == t.answer + tok.eos_token  # the answer and the turn's end, nothing else


def test_tool_results_are_context_not_trained():
    _, tok = fresh()
    t = Trajectory(
        "What is 12345 * 6789?",
        [
            {"role": "assistant", "content": "<call>calculator: 12345 * 6789</call>"},
            {"role": "tool", "name": "calculator", "content": "83810205"},
            {"role": "assistant", "content": "Answer: 83810205"},
        ],
    )
    _, student = encode_pair(tok, PROMPT, t)

    def text(keep):
        return tok.decode(
            [i for i, k in zip(student.trajectory_ids, student.trained, strict=True) if k == keep]
        )

    assert "<call>calculator: 12345 * 6789</call>" in text(True) and "Answer: 83810205" in text(True)
    assert "83810205" not in text(True).replace("Answer: 83810205", "")
    assert "tool" in text(False)


def test_first_trajectory_token_position_is_trained():
    _, tok = fresh()
    encs = [encode_pair(tok, PROMPT, t)[1] for t in trajectories(3)]
    b = _layout(encs, tok.pad_token_id)
    pairs = set(zip(b.rows.tolist(), b.cols.tolist(), strict=True))
    for r, e in enumerate(encs):
        assert (r, len(e.prompt_ids) - 1) in pairs  # predicts trajectory token 0
        assert (
            r,
            len(e.prompt_ids) + len(e.trajectory_ids) - 1,
        ) not in pairs  # nothing predicts past the end
    assert len(pairs) == sum(sum(e.trained) for e in encs)
    assert b.tokens[0].item() == encs[0].trajectory_ids[0]


def _baker():
    model, tok = fresh()
    return Baker(model, tok, PROMPT, small_settings()), tok


def test_kl_is_exactly_zero_when_the_student_is_given_the_prompt():
    baker, tok = _baker()
    teacher = [encode_pair(tok, PROMPT, t)[0] for t in trajectories(4)]
    targets = baker.targets(teacher, FULL, teacher_uses_adapter=False)
    total, n = baker.kl(teacher, targets, grad=False)  # adapter on but empty, same input as the teacher
    assert n > 0 and total.item() == 0.0
    top = baker.targets(teacher, TargetForm(top_k=8), teacher_uses_adapter=False)
    assert abs(baker.kl(teacher, top, grad=False)[0].item()) < 1e-5


def test_loss_has_gradients_and_topk_bounds_full_kl():
    baker, tok = _baker()
    pairs = [encode_pair(tok, PROMPT, t) for t in trajectories(4)]
    teacher, student = [p[0] for p in pairs], [p[1] for p in pairs]
    targets = baker.targets(teacher, FULL, teacher_uses_adapter=False)
    baker.model.train()
    total, n = baker.kl(student, targets, grad=True)
    loss = total / n
    assert loss.requires_grad and loss.item() > 0
    loss.backward()
    grads = [p.grad for name, p in baker.model.named_parameters() if "lora_B" in name]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)
    full = baker.kl(student, targets, grad=False)[0].item()
    vocab = L.decoder_and_head(baker.model)[1].weight.shape[0]
    exact = baker.kl(student, baker.targets(teacher, TargetForm(top_k=vocab), False), grad=False)[0].item()
    coarse = baker.kl(student, baker.targets(teacher, TargetForm(top_k=4), False), grad=False)[0].item()
    assert exact == pytest.approx(full, rel=1e-4)
    assert 0 <= coarse <= full + 1e-6  # coarsening can only lose divergence


def test_teacher_hidden_states_give_the_same_full_kl_and_gradient_as_stored_logprobs():
    baker, tok = _baker()
    pairs = [encode_pair(tok, PROMPT, t) for t in trajectories(4)]
    teacher, student = [p[0] for p in pairs], [p[1] for p in pairs]
    with torch.no_grad():  # a non-empty adapter, so the student differs from the teacher
        for name, p in baker.model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
    stored = baker.targets(teacher, FULL, False)
    kept = baker.targets(teacher, TargetForm(keep_hidden=True), False)
    hidden_size = baker.model.config.hidden_size
    assert all(t.logprobs is None and t.hidden.shape[1] == hidden_size for t in kept)
    assert sum(t.nbytes() for t in kept) < sum(t.nbytes() for t in stored)  # H < V here too
    results = []
    for targets in (stored, kept):
        baker.model.zero_grad()
        total, _ = baker.kl(student, targets, grad=True)
        total.backward()
        grad = next(p.grad.clone() for name, p in baker.model.named_parameters() if "lora_A" in name)
        results.append((total.item(), grad))
    assert results[0][0] > 0 and results[0][0] == pytest.approx(results[1][0], rel=1e-5)
    assert torch.allclose(results[0][1], results[1][1], atol=1e-6)


def test_the_shared_system_turn_runs_once_and_gives_the_same_targets_kl_and_gradient():
    baker, tok = _baker()
    long_prompt = PROMPT + " Write every intermediate result on its own line, then the answer."
    baker.prompt = long_prompt
    pairs = [encode_pair(tok, long_prompt, t) for t in trajectories(5)]
    teacher, student = [p[0] for p in pairs], [p[1] for p in pairs]
    assert _layout(teacher, baker.pad, True).prefix_len >= len(tok(long_prompt).input_ids)
    with torch.no_grad():
        for name, p in baker.model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
    results = []
    for share in (False, True):
        baker.share_prefix = share
        targets = baker.targets(teacher, FULL, False)
        baker.model.zero_grad()
        total, _ = baker.kl(teacher, targets, grad=True)  # student given the prompt: prefix path with grad
        total.backward()
        grad = next(p.grad.clone() for name, p in baker.model.named_parameters() if "lora_A" in name)
        results.append(
            (torch.cat([t.logprobs for t in targets]), baker.kl(student, targets, grad=False)[0], grad)
        )
    assert torch.allclose(results[0][0], results[1][0], atol=1e-4)
    assert results[0][1].item() == pytest.approx(results[1][1].item(), rel=1e-4)
    assert torch.allclose(results[0][2], results[1][2], atol=1e-5) and results[0][2].abs().sum() > 0


def test_a_chunk_of_one_row_gives_the_same_loss_and_gradient():
    baker, tok = _baker()
    pairs = [encode_pair(tok, PROMPT, t) for t in trajectories(3)]
    targets = baker.targets([p[0] for p in pairs], FULL, False)
    student = [p[1] for p in pairs]
    results = []
    for chunk in (1, 4096):
        baker.chunk = chunk
        baker.model.zero_grad()
        total, _ = baker.kl(student, targets, grad=True)
        total.backward()
        grad = next(p.grad.clone() for name, p in baker.model.named_parameters() if "lora_B" in name)
        results.append((total.item(), grad))
    assert results[0][0] == pytest.approx(results[1][0], rel=1e-4)  # fp32 sums in another order
    assert torch.allclose(results[0][1], results[1][1], atol=1e-5)


def test_bake_lowers_kl_changes_the_adapter_and_leaves_the_teacher_alone():
    model, tok = fresh("bundled")
    prompt = "Think step by step."
    probe = tok(render_chat(tok, "What is 1 + 2 * 3?", prompt), return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        before = model(**probe).logits.clone()
    questions = load_questions("task:arithmetic:2,3", 24, seed=0)
    result = bake(
        model, tok, prompt, questions, small_settings(n_train=16, n_val=8, lr=3e-3, max_new_tokens=48)
    )
    peft_model = result.model
    with torch.no_grad(), peft_model.disable_adapter():
        teacher_after = peft_model(**probe).logits
        assert torch.equal(teacher_after, before)
    with torch.no_grad():
        assert not torch.allclose(peft_model(**probe).logits, before)
    assert result.kl_baked < result.kl_unbaked and result.strength > 0
    assert result.history[0]["strength"] == 0.0 and result.steps > 0
    summary = result.summary()
    for key in SUMMARY_KEYS:
        assert summary[key] is not None
    assert 0.0 <= summary["nll_alignment"]["r2"] <= 1.0


def test_strength_helper_measures_a_finished_bake_as_the_bake_did():
    model, tok = fresh("bundled")
    questions = load_questions("task:arithmetic:2,3", 24, seed=0)
    settings = small_settings(n_train=16, n_val=8, lr=3e-3, max_new_tokens=48)
    result = bake(model, tok, "Think step by step.", questions, settings)
    measured = strength(result.model, tok, "Think step by step.", result.val, settings)
    assert measured["n"] == result.nll["n"] == 8
    assert measured["strength"] == pytest.approx(result.strength, abs=1e-4)
    assert measured["kl_unbaked"] == pytest.approx(result.kl_unbaked, rel=1e-4)
    assert measured["nll_alignment"]["r2"] == pytest.approx(result.nll["r2"], abs=1e-3)
    fresh_draw = strength(result.model, tok, "Think step by step.", questions[16:], settings)  # sampled here
    assert fresh_draw["n"] == 8 and 0.0 < fresh_draw["strength"] <= 1.0
    with pytest.raises(ValueError, match="PeftModel"):
        strength(fresh("bundled")[0], tok, "Think step by step.", result.val, settings)


def test_prefix_reuse_gives_the_same_greedy_samples():
    model, tok = fresh()
    prompts = [render_chat(tok, f"Question number {i}?", PROMPT) for i in range(5)]
    params = SamplingParams(temperature=0.0, max_new_tokens=10)
    shared = TransformersBackend(model, tok, batch_size=3, reuse_prefix=True)
    assert shared._shared_prefix(prompts) is not None
    plain = TransformersBackend(model, tok, batch_size=3, reuse_prefix=False).generate(prompts, params)
    reused = shared.generate(prompts, params)
    assert [s.token_ids for s in reused] == [s.token_ids for s in plain]


@pytest.mark.parametrize("form", [FULL, TargetForm(top_k=8)])
def test_teacher_targets_from_the_samplers_logits_equal_a_teacher_pass(form):
    model, tok = fresh("bundled")
    baker = Baker(model, tok, "Think step by step.", small_settings(max_new_tokens=24))
    trajectories = baker.sample(load_questions("task:arithmetic:2,3", 6, seed=0), False)
    kept, teacher, _ = baker.encode_kept(trajectories)
    assert all(t.sampled_logits is not None for t in kept)
    kept[0].sampled_ids = kept[0].sampled_ids[:-1]  # no longer the trained tokens: needs a teacher pass
    from_sampler = baker.targets(teacher, form, False, kept)
    assert baker.teacher_passes == 1
    recomputed = baker.targets(teacher, form, False)
    assert baker.teacher_passes == len(teacher)
    for a, b in zip(from_sampler, recomputed, strict=True):
        assert torch.allclose(a.logprobs, b.logprobs, atol=1e-4)
        assert torch.allclose(a.token_logprobs, b.token_logprobs, atol=1e-4)
        if form.top_k:
            assert torch.equal(a.indices, b.indices)
            assert torch.allclose(a.tail.exp(), b.tail.exp(), atol=1e-5)  # the mass outside the top k


def test_target_modules_take_a_comma_list():
    model, _ = fresh()
    peft_model = with_adapter(model, small_settings(target_modules="q_proj, v_proj"))
    adapted = {name.split(".")[-1] for name, m in peft_model.named_modules() if hasattr(m, "lora_A")}
    assert adapted == {"q_proj", "v_proj"}


def test_a_bake_with_an_adapter_on_the_checkpointed_lm_head_trains_it():
    # the head runs in checkpointed chunks: backward recomputes them, and must use the forward's LoRA path
    model, tok = fresh()
    settings = small_settings(target_modules="q_proj,lm_head", max_epochs=1)
    result = bake(model, tok, PROMPT, load_questions("task:arithmetic:2,3", 12, seed=0), settings)
    head_b = [p for n, p in result.model.named_parameters() if "lm_head.lora_B" in n]
    assert len(head_b) == 1 and head_b[0].abs().sum() > 0 and result.steps > 0


def test_with_adapter_starts_empty():
    model, tok = fresh()
    peft_model = with_adapter(model, small_settings())
    assert all((p == 0).all() for n, p in peft_model.named_parameters() if "lora_B" in n)


def bake_cli_args(out, *extra) -> list[str]:
    """A small ``selfbake bake`` on the bundled model (16 + 8 trajectories, 4 test items per cell)."""
    return [
        "bake",
        "--model",
        "bundled",
        "--n-train",
        "16",
        "--n-val",
        "8",
        "--max-new-tokens",
        "40",
        "--train-batch-size",
        "8",
        "--max-epochs",
        "2",
        "--measure-n",
        "4",
        "--out",
        str(out),
        *extra,
    ]


def _bake_cli(capsys, out, *extra):
    code = main(bake_cli_args(out, *extra))
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return captured.out


def test_cli_bake_writes_adapter_merged_card_and_they_reload(capsys, tmp_path):
    out = tmp_path / "bake"
    text = _bake_cli(capsys, out, "--prompt-file", "bundled:reasoning", "--merge", "--pursue", "1")
    assert "base prompted" in text and "strength" in text
    summary = json.loads((out / "summary.json").read_text())
    for key in (*SUMMARY_KEYS, "behaviour"):
        assert key in summary
    assert len(summary["rounds"]) == 2
    pursuit = summary["pursuit"]  # each round's adapter re-measured, paired against round 1
    assert [row["round"] for row in pursuit] == [1, 2] and "pursuit" in text
    assert pursuit[1]["vs_round_1"]["behaviour"]["n"] == pursuit[0]["accuracy"]["n"] == 4
    assert set(summary["behaviour"]) >= {
        "base_unprompted",
        "base_prompted",
        "baked_unprompted",
        "baked_reprompted",
    }
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert any("strength" in m for m in metrics) and any("train_tokens_per_s" in m for m in metrics)
    assert "bundled:reasoning" in (out / "README.md").read_text()
    for name in ("latest", "best"):  # adapter checkpoints kept, loadable by peft
        assert (out / "checkpoints" / name / "adapter_config.json").exists()
    assert json.loads((out / "checkpoints" / "latest" / "checkpoint.json").read_text())["step"] > 0

    base, tok = fresh("bundled")
    adapter = PeftModel.from_pretrained(base, out / "adapter")  # plain peft
    merged = AutoModelForCausalLM.from_pretrained(out / "merged")  # plain transformers
    ids = tok(render_chat(tok, "What is 2 + 2?"), return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        a, m = adapter(**ids).logits, merged(**ids).logits
        with adapter.disable_adapter():
            plain = adapter(**ids).logits
    assert torch.allclose(a, m, atol=1e-4) and not torch.allclose(a, plain, atol=1e-4)
    params = SamplingParams(temperature=0.0, max_new_tokens=12)
    prompt = [render_chat(tok, "What is 2 + 2?")]
    assert (
        TransformersBackend(adapter, tok).generate(prompt, params)[0].token_ids
        == TransformersBackend(merged, tok).generate(prompt, params)[0].token_ids
    )


def test_cli_sequence_stacked_adapters_equal_the_merged_model(capsys, tmp_path):
    out = tmp_path / "seq"
    _bake_cli(capsys, out, "--sequence", "bundled:tools", "bundled:style-greeting", "--max-tool-calls", "1")
    layers = json.loads((out / "adapter" / "layers.json").read_text())
    assert [x["name"] for x in layers] == ["bundled:tools", "bundled:style-greeting"]
    stacked, tok = load_baked(out)
    merged, _ = load_baked(out, merged=True)
    ids = tok(render_chat(tok, "What is 2 + 2?"), return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        assert torch.allclose(stacked(**ids).logits, merged(**ids).logits, atol=1e-4)
    assert "| 2 | bundled:style-greeting |" in (out / "README.md").read_text()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--prompt", "x", "--prompt-file", "bundled:reasoning"], "exactly one of"),
        (["--prompt-file", "bundled:reasonin"], "did you mean 'bundled:reasoning'"),
        (["--prompt-file", "no/such/file.txt"], "does not exist"),
        (["--prompt", "x", "--x0", "task:nosuch"], "unknown task 'nosuch'"),
        (["--prompt", "x", "--behaviour", "smell"], "unknown behaviour 'smell'"),
        (["--prompt", "x", "--forgetting", "rpn,poetry"], "unknown family 'poetry'"),
        (["--prompt", "   "], "--prompt is empty"),
        (["--sequence", "bundled:tools"], "at least two"),
        (["--prompt", "x", "--strength", "1.5"], "strength"),
        (
            ["--prompt", "x", "--teacher-cache", "hidden", "--target-modules", "q_proj,lm_head"],
            "needs a frozen LM head",
        ),
        (["--prompt", "x", "--target-modules", "nosuch_proj"], "--target-modules 'nosuch_proj'"),
    ],
)
def test_bad_bake_input_is_one_line_and_exit_2(capsys, tmp_path, args, message):
    code = main(["bake", "--model", "random:llama-tiny", "--out", str(tmp_path / "x"), *args])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_teacher_cache_hidden_with_a_trained_head_is_refused_before_the_model_loads(capsys, tmp_path):
    args = ["--prompt", "x", "--teacher-cache", "hidden", "--target-modules", "q_proj,lm_head"]
    code = main(["bake", "--model", str(tmp_path / "no-such-model"), "--out", str(tmp_path / "x"), *args])
    err = capsys.readouterr().err
    assert code == 2 and "needs a frozen LM head" in err and len(err.strip().splitlines()) == 1


def test_bake_help_shows_the_essentials_before_measurement_and_tuning(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["bake", "--help"])
    text = capsys.readouterr().out
    assert exit_info.value.code == 0
    options = text[text.index("options:") :]  # past the usage line, which lists every flag
    order = [
        options.index(f"  {flag} ") for flag in ("--model", "--prompt-file", "--out", "--measure-n", "--lr")
    ]
    assert order == sorted(order)
    assert options.index("essentials:") < options.index("measurement") < options.index("tuning")


def test_a_bake_names_its_run_directory_once_explains_its_terms_and_names_its_rates(capsys, tmp_path):
    out = tmp_path / "tiny"
    tiny = ["--n-train", "4", "--n-val", "2", "--max-new-tokens", "16", "--train-batch-size", "2"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code = main(
            ["bake", "--model", "bundled", "--prompt-file", "bundled:reasoning", "--out", str(out), *tiny]
            + ["--max-epochs", "1", "--measure-n", "2"]
        )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    # no deprecation noise on a user's run (the cache API, peft's is_gradient_checkpointing read)
    assert [str(w.message) for w in caught if issubclass(w.category, FutureWarning)] == []
    assert [line for line in captured.out.splitlines() if "run directory:" in line] == [
        f"run directory: {out} (if killed, run again with --out {out})"
    ]
    assert "held-out KL: per-token" in captured.out and "docs/concepts/strength.md" in captured.out
    for phase in ("sampling trajectories", "training steps", "measuring bundled:reasoning"):
        assert phase in captured.out + captured.err  # a progress bar for each phase
    summary = json.loads((out / "summary.json").read_text())
    assert summary["trajectory_tokens_per_s_end_to_end"] > 0 and "tokens_per_s" not in summary
    assert "tokens_per_s" not in summary["layers"][0]
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert any(m.get("train_tokens_per_s", 0) > 0 for m in metrics)
    assert not any("tokens_per_s" in m for m in metrics)


def test_half_bake_lands_on_the_target_strength():
    model, tok = fresh("bundled")
    questions = load_questions("task:arithmetic:2,3", 24, seed=0)
    settings = small_settings(n_train=16, n_val=8, lr=3e-3, max_new_tokens=48, max_epochs=3)
    result = half_bake(model, tok, "Think step by step.", questions, settings, strength=0.5)
    assert abs(result.strength - 0.5) <= 0.02
    assert result.kl_baked == pytest.approx(result.kl_unbaked * (1 - result.strength), rel=1e-6)


@pytest.mark.slow
def test_bundled_reasoning_bake_meets_the_bars(tmp_path):
    """The README's main command: steps >= 90 % unprompted, accuracy within 3 points, strength >= 0.8."""
    from selfbake.baking import BakeConfig, run_bake

    summary = run_bake(BakeConfig(prompt_file="bundled:reasoning", out=str(tmp_path / "bake")))
    table = summary["behaviour"]
    assert table["baked_unprompted"]["behaviour"]["rate"] >= 0.90
    assert abs(table["baked_unprompted_vs_base_prompted"]["accuracy"]["diff"]) <= 0.03
    assert summary["strength"] >= 0.8 and summary["bake_seconds"] <= 180


def test_retain_anchor_keeps_the_system_prompt_and_starts_at_zero_kl():
    from selfbake.baking.measure import FORGETTING_FAMILIES

    model, tok = fresh("bundled")
    baker = Baker(
        model, tok, "Think step by step.", small_settings(retain=["bignum"], n_retain=4, max_new_tokens=48)
    )
    encs, targets = baker.retain_set(FULL)
    system = FORGETTING_FAMILIES["bignum"][0]
    system_ids = tok(system, add_special_tokens=False).input_ids
    assert encs and all(sublist(system_ids, e.prompt_ids) for e in encs)  # anchor keeps its own prompt
    total, n = baker.kl(encs, targets, grad=False)
    assert n > 0 and total.item() == 0.0  # empty adapter = base: nothing to pull back yet


def test_length_grouped_batches_cover_every_trajectory_once_with_less_padding():
    import random

    from selfbake.baking.bake import _batches

    lengths = [random.Random(i).randint(20, 200) for i in range(70)]
    order = list(range(70))
    random.Random(0).shuffle(order)

    def padding(batches):
        return sum(max(lengths[i] for i in b) * len(b) - sum(lengths[i] for i in b) for b in batches)

    plain = _batches(order, lengths, 16, random.Random(1), False)
    grouped = _batches(order, lengths, 16, random.Random(1), True)
    assert sorted(i for b in grouped for i in b) == list(range(70))
    assert len(grouped) == len(plain) == 5 and max(len(b) for b in grouped) == 16
    assert padding(grouped) < padding(plain) / 2


def test_fused_lora_gives_peft_s_outputs_and_gradients_and_falls_back_where_it_must():
    from peft import LoraConfig, get_peft_model
    from peft.tuners.lora.layer import Linear as LoraLinear

    from selfbake.baking.fused_lora import fused_lora

    model, _ = fresh()
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear"))
    torch.manual_seed(0)
    for name, p in peft_model.named_parameters():
        if "lora_B" in name:  # B starts at 0, which would hide a wrong A gradient
            p.data.normal_(0, 0.05)
    ids = torch.randint(0, 200, (3, 17))

    def run():
        peft_model.zero_grad()
        logits = peft_model(input_ids=ids).logits
        logits.square().mean().backward()
        grads = {n: p.grad.clone() for n, p in peft_model.named_parameters() if p.requires_grad}
        return logits.detach(), grads

    logits, grads = run()
    layers = [m for m in peft_model.modules() if isinstance(m, LoraLinear)]
    calls = []
    with fused_lora(peft_model):
        assert all("forward" in vars(m) for m in layers)
        original = torch.addmm
        torch.addmm = lambda *a, **k: calls.append(1) or original(*a, **k)
        try:
            fused_logits, fused_grads = run()
        finally:
            torch.addmm = original
        with peft_model.disable_adapter():  # the teacher: the base layers called directly, the base logits
            base = peft_model(input_ids=ids).logits
    assert len(calls) == len(layers)
    assert torch.allclose(fused_logits, logits, atol=1e-6)
    for name, grad in grads.items():
        assert torch.allclose(fused_grads[name], grad, atol=1e-7, rtol=1e-5), name
    with peft_model.disable_adapter():
        assert torch.equal(base, peft_model(input_ids=ids).logits)
    assert not any("forward" in vars(m) for m in layers)  # peft's forward is back


def _varied_trajectories(n=5):
    return [
        Trajectory(
            f"What is {i} + {i + 1}?",
            [{"role": "assistant", "content": "step " * (3 * i + 1) + f"= {2 * i + 1}"}],
        )
        for i in range(n)
    ]


@pytest.mark.parametrize("spec", ["random:llama-tiny", "random:qwen2-tiny"])
def test_padding_free_passes_give_the_padded_hidden_states_kl_and_gradients(spec):
    model, tok = fresh(spec)
    baker = Baker(model, tok, PROMPT, small_settings())
    assert baker.pack  # the probe passed: this model runs padding-free
    assert not Baker(fresh(spec)[0], tok, PROMPT, small_settings(padding_free=False)).pack
    torch.manual_seed(0)
    for name, p in baker.model.named_parameters():
        if "lora_B" in name:  # non-zero adapter, so the student differs from the teacher
            p.data.normal_(0, 0.05)
    teacher, student = baker.encode(_varied_trajectories())
    assert L.shared_prefix_len([e.prompt_ids for e in teacher]) > 0  # the system turn runs once
    assert len({len(e.prompt_ids) + len(e.trajectory_ids) for e in student}) == 5  # padding to save
    targets = baker.targets(teacher, FULL, False)

    def run(pack: bool):
        baker.pack = pack
        baker.model.zero_grad()
        with torch.no_grad(), baker.model.disable_adapter():
            teacher_hidden, teacher_tokens = baker.hidden(teacher)
        total, n = baker.kl(student, targets, grad=True)
        prefixed, m = baker.kl(teacher, targets, grad=True)  # gradients through a shared prefix too
        (total / n + prefixed / m).backward()
        grads = {k: p.grad.clone() for k, p in baker.model.named_parameters() if p.requires_grad}
        return teacher_hidden, teacher_tokens, total.detach(), n, grads

    packed_run, padded_run = run(True), run(False)
    assert torch.allclose(packed_run[0], padded_run[0], atol=1e-5)
    assert torch.equal(packed_run[1], padded_run[1])
    assert packed_run[2] > 0 and torch.allclose(packed_run[2], padded_run[2], rtol=1e-5)
    assert packed_run[3] == padded_run[3] == sum(sum(e.trained) for e in student)
    for name, grad in padded_run[4].items():
        assert grad.abs().sum() > 0 and torch.allclose(packed_run[4][name], grad, atol=1e-6, rtol=1e-4), name


def test_packing_probe_refuses_attention_that_crosses_sequences():
    from transformers import AttentionInterface
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    from selfbake.baking import packed

    model, _ = fresh()
    decoder, _ = L.decoder_and_head(model)
    assert packed.supports_packing(decoder)

    def whole_row(module, q, k, v, mask, dropout=0.0, scaling=None, **kwargs):
        return sdpa_attention_forward(module, q, k, v, None, dropout=dropout, scaling=scaling, is_causal=True)

    AttentionInterface.register(packed.ATTENTION, whole_row)
    try:
        assert not packed.supports_packing(decoder)
    finally:
        AttentionInterface.register(packed.ATTENTION, packed._segment_attention)
    assert packed.supports_packing(decoder)


def test_a_padding_free_bake_ends_where_a_padded_one_does():
    questions = load_questions("task:arithmetic:2,3", 24, seed=0)
    results = []
    for padding_free in (True, False):
        model, tok = fresh("bundled")
        settings = small_settings(n_train=16, n_val=8, lr=3e-3, max_new_tokens=48, padding_free=padding_free)
        results.append(bake(model, tok, "Think step by step.", questions, settings))
    packed_bake, padded_bake = results
    assert Baker(fresh("bundled")[0], tok, "Think step by step.", small_settings()).pack  # compared for real
    assert [t.to_record() for t in packed_bake.train] == [t.to_record() for t in padded_bake.train]
    assert packed_bake.steps == padded_bake.steps > 0
    assert packed_bake.kl_unbaked == pytest.approx(padded_bake.kl_unbaked, rel=1e-5)
    assert packed_bake.kl_baked < packed_bake.kl_unbaked
    assert packed_bake.kl_baked == pytest.approx(padded_bake.kl_baked, rel=1e-3)
